"""The Envoy template renders to configs the real Envoy binary accepts."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from clauditor.envoy.config import (
    COMPOSE_SETTINGS,
    EnvoySettings,
    Upstream,
    UpstreamError,
    default_ca_file,
    render,
)
from clauditor.netaddr import HostPort
from clauditor.supervisor import find_envoy

ROOT = Path(__file__).resolve().parent.parent


def _validate(tmp_path: Path, text: str) -> None:
    path = tmp_path / "envoy.yaml"
    path.write_text(text)
    done = subprocess.run(
        [find_envoy(None), "--mode", "validate", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def _embedded(upstream: str) -> EnvoySettings:
    return EnvoySettings(
        listen=HostPort("127.0.0.1", 10000),
        admin=HostPort("127.0.0.1", 9901),
        grpc=HostPort("127.0.0.1", 50051),
        upstream=Upstream.parse(upstream),
        ca_file=default_ca_file(),
    )


def test_top_level_envoy_yaml_is_the_rendered_template() -> None:
    assert (ROOT / "envoy.yaml").read_text() == render(COMPOSE_SETTINGS)


@pytest.mark.parametrize("upstream", ["https://api.anthropic.com", "http://127.0.0.1:8080"])
def test_embedded_config_validates(tmp_path: Path, upstream: str) -> None:
    _validate(tmp_path, render(_embedded(upstream)))


def test_top_level_config_validates(tmp_path: Path) -> None:
    # The compose file's ext_proc host only resolves inside compose; validation does not resolve.
    _validate(tmp_path, (ROOT / "envoy.yaml").read_text())


def test_ext_proc_is_observability_only_and_fail_open() -> None:
    config = yaml.safe_load(render(_embedded("https://api.anthropic.com")))
    listener = config["static_resources"]["listeners"][0]
    assert listener["address"]["socket_address"]["address"] == "127.0.0.1"
    assert config["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    ext_proc = hcm["http_filters"][0]["typed_config"]
    assert ext_proc["failure_mode_allow"] is True
    assert ext_proc["observability_mode"] is True
    assert ext_proc["processing_mode"] == {
        "request_header_mode": "SEND",
        "response_header_mode": "SEND",
        "request_body_mode": "STREAMED",
        "response_body_mode": "STREAMED",
        "request_trailer_mode": "SKIP",
        "response_trailer_mode": "SKIP",
    }
    assert hcm["route_config"]["request_headers_to_remove"] == ["accept-encoding"]
    route = hcm["route_config"]["virtual_hosts"][0]["routes"][0]["route"]
    assert route["timeout"] == "0s"
    assert route["host_rewrite_literal"] == "api.anthropic.com"
    anthropic = config["static_resources"]["clusters"][0]
    tls = anthropic["transport_socket"]["typed_config"]
    assert tls["sni"] == "api.anthropic.com"


def test_plain_http_upstream_has_no_tls() -> None:
    config = yaml.safe_load(render(_embedded("http://127.0.0.1:8080")))
    anthropic = config["static_resources"]["clusters"][0]
    assert "transport_socket" not in anthropic
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    route = hcm["typed_config"]["route_config"]["virtual_hosts"][0]["routes"][0]["route"]
    assert route["host_rewrite_literal"] == "127.0.0.1:8080"


@pytest.mark.parametrize(
    "bad",
    [
        "ftp://x",
        "api.anthropic.com",
        "https://a.com/v1",
        "http://host:notaport",
        "http://host:99999",
        "http://host:0",
    ],
)
def test_bad_upstreams_are_rejected(bad: str) -> None:
    with pytest.raises(UpstreamError):
        Upstream.parse(bad)


def test_admin_as_a_unix_socket_or_off_validates(tmp_path: Path) -> None:
    sock = tmp_path / "admin dir" / 'envoy "admin".sock'  # quoting survives odd paths
    config = yaml.safe_load(render(replace(_embedded("http://127.0.0.1:8080"), admin=sock)))
    assert config["admin"]["address"] == {"pipe": {"path": str(sock), "mode": 0o600}}
    _validate(tmp_path, render(replace(_embedded("http://127.0.0.1:8080"), admin=sock)))
    off = render(replace(_embedded("http://127.0.0.1:8080"), admin=None))
    assert "admin" not in yaml.safe_load(off)
    _validate(tmp_path, off)


def test_the_ext_proc_token_is_sent_as_initial_metadata(tmp_path: Path) -> None:
    settings = replace(_embedded("https://api.anthropic.com"), ext_proc_token="t0k-EN_x")
    text = render(settings)
    _validate(tmp_path, text)
    hcm = yaml.safe_load(text)["static_resources"]["listeners"][0]["filter_chains"][0]
    ext_proc = hcm["filters"][0]["typed_config"]["http_filters"][0]["typed_config"]
    assert ext_proc["grpc_service"]["initial_metadata"] == [
        {"key": "x-clauditor-token", "value": "t0k-EN_x"}
    ]
    assert "t0k-EN_x" not in repr(settings)  # kept out of reprs (logs, tracebacks)
    # Without a token (the compose file) no metadata is sent.
    plain = yaml.safe_load(render(_embedded("https://api.anthropic.com")))
    hcm = plain["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    assert (
        "initial_metadata"
        not in hcm["typed_config"]["http_filters"][0]["typed_config"]["grpc_service"]
    )
