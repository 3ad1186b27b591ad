"""Render Envoy's bootstrap config from the one template clauditor ships."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from importlib import resources
from string import Template
from urllib.parse import urlsplit

from clauditor.envoy.admin import AdminTarget
from clauditor.netaddr import AddressError, HostPort
from clauditor.wire.auth import TOKEN_METADATA

_TLS_BLOCK = """\
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        sni: ${host}
        common_tls_context:
          validation_context:
            trusted_ca: { filename: ${ca_file} }
            match_typed_subject_alt_names:
            - san_type: DNS
              matcher: { exact: ${host} }
"""

# Envoy's admin: on a Unix socket only this user may connect to (mode 0600), or on TCP.
_ADMIN_PIPE = """\
admin:
  address:
    pipe: { path: ${path}, mode: 384 }  # 0600: this user only
"""
_ADMIN_TCP = """\
admin:
  address:
    socket_address: { address: ${host}, port_value: ${port} }
"""

_TOKEN = """\
                initial_metadata:
                - { key: ${key}, value: ${value} }
"""

# Seconds. It holds no request (the exchange is over), but a core that lags keeps what it
# has not read in memory, about hold x the body bytes per second (1 GB at 20 s with 64
# busy sessions), and an exchange cut without its end (Esc, an upstream cut) is concluded
# only this long after it: twice Envoy's 5 s default (docs/performance.md, section 10).
DEFERRED_CLOSE_TIMEOUT = 10.0

# Debian/Ubuntu (and the official Envoy image) keep the system CA bundle here.
SYSTEM_CA_FILE = "/etc/ssl/certs/ca-certificates.crt"


class UpstreamError(AddressError):
    """The --upstream URL cannot be used."""


@dataclass(frozen=True)
class Upstream:
    scheme: str
    host: str
    port: int

    @classmethod
    def parse(cls, url: str) -> Upstream:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UpstreamError(
                f"upstream must be http://host[:port] or https://host[:port], got {url!r}"
            )
        if parts.path not in ("", "/"):
            raise UpstreamError(f"upstream must not have a path, got {url!r}")
        try:
            given = parts.port  # urllib raises on a port that is not a number in range
        except ValueError:
            raise UpstreamError(
                f"upstream port must be a number from 1 to 65535, got {url!r}"
            ) from None
        if given == 0:
            raise UpstreamError(f"upstream port must be a number from 1 to 65535, got {url!r}")
        port = given or (443 if parts.scheme == "https" else 80)
        return cls(parts.scheme, parts.hostname, port)

    @property
    def tls(self) -> bool:
        return self.scheme == "https"

    @property
    def host_header(self) -> str:
        default = 443 if self.tls else 80
        return self.host if self.port == default else f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host_header}"


@dataclass(frozen=True)
class EnvoySettings:
    listen: HostPort
    admin: AdminTarget  # a socket path, a TCP address, or None: no admin
    grpc: HostPort
    upstream: Upstream
    ca_file: str = SYSTEM_CA_FILE
    # Sent as x-clauditor-token on every ext_proc stream (the core refuses others); None:
    # none sent (the compose file: that core runs without a token).
    ext_proc_token: str | None = field(default=None, repr=False)
    # How long Envoy keeps an exchange's side stream after the exchange ended, for a core
    # that lags behind to read it; past it, Envoy resets the stream and what the core had
    # not read is lost (recorded unobserved / partial). The core ends each side stream
    # itself once it read the response's end, so only a lagging core's streams wait.
    deferred_close_timeout: float = DEFERRED_CLOSE_TIMEOUT


def default_ca_file() -> str:
    """A CA bundle Envoy can read: certifi's (shipped with httpx) works on every OS."""
    try:
        import certifi

        return certifi.where()
    except ImportError:  # pragma: no cover - certifi comes with httpx
        return SYSTEM_CA_FILE


def _yaml_host(host: str) -> str:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host
    return f'"{host}"'


def _token_block(token: str | None) -> str:
    if token is None:
        return ""
    # This file is written 0600: the token must not be readable by other users.
    return Template(_TOKEN).substitute(key=TOKEN_METADATA, value=json.dumps(token))


def _admin_block(admin: AdminTarget) -> str:
    if admin is None:
        return ""  # Envoy without an `admin` section serves no admin at all
    if isinstance(admin, HostPort):
        return Template(_ADMIN_TCP).substitute(host=_yaml_host(admin.host), port=admin.port)
    # A JSON string is a YAML double-quoted scalar: any path is quoted safely.
    return Template(_ADMIN_PIPE).substitute(path=json.dumps(str(admin)))


def render(settings: EnvoySettings) -> str:
    template = Template(resources.files("clauditor.envoy").joinpath("envoy.yaml.tmpl").read_text())
    up = settings.upstream
    tls = Template(_TLS_BLOCK).substitute(host=up.host, ca_file=settings.ca_file) if up.tls else ""
    return template.substitute(
        admin=_admin_block(settings.admin),
        ext_proc_token=_token_block(settings.ext_proc_token),
        listen_host=_yaml_host(settings.listen.host),
        listen_port=settings.listen.port,
        grpc_host=_yaml_host(settings.grpc.host),
        grpc_port=settings.grpc.port,
        upstream_host=_yaml_host(up.host),
        upstream_port=up.port,
        upstream_host_header=up.host_header,
        upstream_tls=tls,
        deferred_close_timeout=_duration(settings.deferred_close_timeout),
    )


def _duration(seconds: float) -> str:
    """A protobuf Duration as Envoy's YAML takes it: "60s", "0.5s"."""
    return f"{seconds:g}s"


# The top-level envoy.yaml (docker compose): Envoy listens on all interfaces *inside*
# its container; compose publishes the port on the host's 127.0.0.1 only. Its admin stays
# on the container's own loopback (TCP, for the compose healthcheck), published nowhere:
# only processes inside the Envoy container reach it.
COMPOSE_SETTINGS = EnvoySettings(
    listen=HostPort("0.0.0.0", 10000),
    admin=HostPort("127.0.0.1", 9901),
    grpc=HostPort("clauditor", 50051),
    upstream=Upstream("https", "api.anthropic.com", 443),
    ca_file=SYSTEM_CA_FILE,
)
