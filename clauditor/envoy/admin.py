"""Envoy's admin interface: where it listens (`--envoy-admin`) and how clauditor reads it.

The admin can stop all traffic (`POST /drain_listeners`, `/quitquitquit`) and make Envoy
log request headers, API keys included (`POST /logging?level=debug`). On a TCP port any
local process, or a web page through the browser, can do that. So by default it is a
Unix socket of mode 0600 in `up`'s private runtime directory: only this user can
connect. `--envoy-admin` takes:

- nothing (the default): that socket, `<runtime dir>/envoy-admin.sock`;
- a path (absolute, `~/...`, or containing a `/`; `unix:` in front is allowed): a 0600
  socket there;
- `off`: no admin at all (readiness is then Envoy's listener accepting connections);
- `HOST:PORT`: TCP, as before, with a warning that any local process can reach it.
"""

from __future__ import annotations

import os
import re
import socket
import stat
from dataclasses import dataclass
from pathlib import Path

import httpx

from clauditor.netaddr import AddressError, HostPort

SOCKET_NAME = "envoy-admin.sock"
# sun_path holds 108 bytes on Linux, 104 on macOS, the terminating NUL included.
MAX_SOCKET_PATH = 103


@dataclass(frozen=True)
class AdminSocket:
    """A Unix socket; path None: the default one in the runtime directory."""

    path: Path | None = None


@dataclass(frozen=True)
class AdminOff:
    """No admin interface."""


AdminSpec = AdminSocket | AdminOff | HostPort
# Where a started Envoy's admin is: a socket path, a TCP address, or None (off).
AdminTarget = Path | HostPort | None

TCP_WARNING = (
    "--envoy-admin {addr} is a TCP port: any local process, or a web page, can reach "
    "Envoy's admin there and stop all traffic or make Envoy log API keys; leave "
    "--envoy-admin unset for a private (0600) Unix socket"
)


def parse_admin(value: str | None, *, flag: str = "--envoy-admin") -> AdminSpec:
    """The flag's value as an AdminSpec. Raises AddressError with a one-line message."""
    if value is None or value.strip() == "":
        return AdminSocket()
    text = value.strip()
    if text.lower() == "off":
        return AdminOff()
    if text.startswith("unix:"):
        text = text[len("unix:") :]
    elif "/" not in text and not text.startswith("~"):
        try:
            return HostPort.parse(text, flag=flag)
        except AddressError:
            raise AddressError(
                f"{flag} must be a socket path (with a '/'), 'off' or HOST:PORT, got {value!r}"
            ) from None
    path = Path(text).expanduser().absolute()
    check_socket_path(path, flag=flag)
    return AdminSocket(path)


def check_socket_path(path: Path, *, flag: str = "--envoy-admin") -> None:
    """Refuse a path a socket cannot be made at (too long, no such directory, not
    writable, or an existing file that is not a socket)."""
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise AddressError(f"{flag} {path}: too long for a Unix socket (max {MAX_SOCKET_PATH})")
    parent = path.parent
    if not parent.is_dir():
        raise AddressError(f"{flag} {path}: no such directory {parent}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise AddressError(f"{flag} {path}: directory {parent} is not writable")
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise AddressError(f"{flag} {path}: exists and is not a socket")


def socket_in_use(path: Path) -> bool:
    """True when something accepts connections on this Unix socket (a stale socket
    file left by a killed Envoy is not in use: Envoy binds over it)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


def describe(target: AdminTarget) -> str:
    if target is None:
        return "off"
    if isinstance(target, HostPort):
        return target.url
    return f"unix:{target}"


def announce_line(target: AdminTarget) -> str:
    """The line of `up`'s start-up announcement that says where the admin is (tests and
    benchmarks read the socket path from it: announced_socket)."""
    return f"  admin   {describe(target)} (Envoy's admin)"


_ANNOUNCED = re.compile(r"^\s+admin\s+unix:(.+) \(Envoy's admin\)$")


def announced_socket(line: str) -> Path | None:
    found = _ANNOUNCED.match(line.rstrip("\n"))
    return Path(found.group(1)) if found else None


class AdminClient:
    """Reads a running Envoy's admin (over its Unix socket, or TCP): readiness, stats."""

    def __init__(self, target: Path | HostPort, timeout: float = 5.0) -> None:
        self.target = target
        self.timeout = timeout

    def client(self) -> httpx.Client:
        """An httpx client whose relative URLs ("/ready") go to the admin."""
        if isinstance(self.target, HostPort):
            return httpx.Client(base_url=self.target.url, timeout=self.timeout, trust_env=False)
        transport = httpx.HTTPTransport(uds=str(self.target))
        # The host is only the Host header: the socket is the address.
        return httpx.Client(
            base_url="http://envoy-admin",
            transport=transport,
            timeout=self.timeout,
            trust_env=False,
        )

    def get(self, path: str, **params: str) -> httpx.Response:
        if isinstance(self.target, Path) and not socket_in_use(self.target):
            # Checked first: httpx's Unix-socket connect leaks its socket when refused
            # (an Envoy restarting), and a refused admin is the common case while polling.
            raise httpx.ConnectError(f"nothing accepts connections on {self.target}")
        with self.client() as client:
            return client.get(path, params=params or None)

    def ready(self) -> bool:
        try:
            return self.get("/ready").status_code == 200
        except httpx.HTTPError:
            return False

    def stats(self, filter_regex: str) -> dict[str, int]:
        """Envoy's counters and gauges whose names match filter_regex."""
        out: dict[str, int] = {}
        for line in self.get("/stats", filter=filter_regex).text.splitlines():
            key, _, value = line.partition(": ")
            if value.strip().isdigit():
                out[key] = int(value)
        return out

    def stat(self, name: str) -> int:
        """One counter or gauge by its full name (0 when Envoy has not created it yet)."""
        return self.stats(f"^{name.replace('.', '[.]')}$").get(name, 0)
