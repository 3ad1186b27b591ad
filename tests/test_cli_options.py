"""`up` takes every option of `serve` and hands each one on to the core it starts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from clauditor.cli import main, serve, up


def test_up_accepts_every_serve_option() -> None:
    def opts(command: Any) -> set[str]:
        return {o for p in command.params for o in p.opts}

    assert opts(serve) <= opts(up), opts(serve) - opts(up)


def test_every_core_option_reaches_the_core_through_up(
    tmp_path: Path, no_start: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("CLAUDITOR_NO_PROMPTS", "CLAUDITOR_DB"):
        monkeypatch.delenv(name, raising=False)
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"models": {}}))
    # Every core option away from its default.
    core_args = [
        *("--grpc", "127.0.0.1:50999", "--api", "127.0.0.1:9999"),
        *("--upstream", "http://127.0.0.1:8081", "--db", str(tmp_path / "h.db")),
        *("--idle-timeout", "12.5", "--end-timeout", "99.0"),
        *("--no-prompts", "--retention-days", "7.0"),
        *("--otlp-endpoint", "http://127.0.0.1:4317", "--prices", str(prices)),
        *("--weekly-token-budget", "1000000"),
        *("--allow-host", "clauditor", "--allow-host", "core.local"),
        *("--log-level", "debug"),
    ]
    runner = CliRunner()
    done = runner.invoke(main, ["serve", *core_args], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    direct = no_start.pop("serve")

    done = runner.invoke(main, ["up", *core_args], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    cfg = no_start.pop("up")
    assert "--idle-timeout" in cfg.serve_args and "--end-timeout" in cfg.serve_args

    # What `up` starts: `serve` with the supervisor's own settings and the forwarded rest.
    child = [
        *("--grpc", str(cfg.grpc), "--api", str(cfg.api)),
        *("--db", str(cfg.db), "--upstream", cfg.upstream.url),
        *cfg.serve_args,
    ]
    done = runner.invoke(main, ["serve", *child], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    assert no_start.pop("serve") == direct


def test_defaults_forward_nothing_surprising(tmp_path: Path, no_start: dict[str, Any]) -> None:
    done = CliRunner().invoke(main, ["up", "--db", str(tmp_path / "h.db")])
    assert done.exit_code == 0, done.output
    args = no_start["up"].serve_args
    assert "--no-prompts" not in args and "--allow-non-loopback" not in args
    assert "--otlp-endpoint" not in args and "--allow-host" not in args
    assert args[args.index("--log-level") + 1] == "info"


def test_the_ext_proc_token_never_goes_on_a_command_line(
    tmp_path: Path, no_start: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CLAUDITOR_EXT_PROC_TOKEN", raising=False)
    runner = CliRunner()
    db = ["--db", str(tmp_path / "h.db")]
    done = runner.invoke(main, ["serve", *db], catch_exceptions=False)
    assert done.exit_code == 0 and no_start.pop("serve").ext_proc_token is None
    env = {"CLAUDITOR_EXT_PROC_TOKEN": "from-env"}
    done = runner.invoke(main, ["serve", *db], env=env, catch_exceptions=False)
    assert done.exit_code == 0 and no_start.pop("serve").ext_proc_token == "from-env"
    assert "s3cret" not in repr(_core(tmp_path, "s3cret"))  # kept out of reprs and logs

    done = runner.invoke(main, ["up", *db, "--ext-proc-token", "given"], catch_exceptions=False)
    assert done.exit_code == 0
    cfg = no_start.pop("up")
    assert cfg.ext_proc_token == "given"
    assert "given" not in cfg.serve_args  # it reaches the core in its environment instead


def _core(tmp_path: Path, token: str) -> Any:
    from clauditor.core import CoreConfig

    return CoreConfig(db=tmp_path / "h.db", ext_proc_token=token)


def test_up_makes_a_new_token_per_start_and_hands_it_over_in_the_environment(
    tmp_path: Path,
) -> None:
    from clauditor.envoy.admin import AdminSocket
    from clauditor.envoy.config import Upstream
    from clauditor.netaddr import HostPort
    from clauditor.supervisor import Supervisor, UpConfig

    config = UpConfig(
        listen=HostPort("127.0.0.1", 1),
        grpc=HostPort("127.0.0.1", 2),
        api=HostPort("127.0.0.1", 3),
        admin=AdminSocket(),
        upstream=Upstream.parse("http://127.0.0.1:4"),
        db=tmp_path / "h.db",
    )
    one, two = Supervisor(config), Supervisor(config)
    assert one.token != two.token and len(one.token) >= 40
    core, envoy = one._children("envoy", tmp_path / "envoy.yaml")
    assert core.env == {"CLAUDITOR_EXT_PROC_TOKEN": one.token}
    assert one.token not in " ".join(core.argv + envoy.argv)
    assert one.token not in repr(core) and one.token not in repr(config)
