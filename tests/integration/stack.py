"""Start a real `clauditor up` (core + Envoy child processes) on free loopback ports."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from clauditor.envoy.admin import AdminClient, announced_socket
from clauditor.netaddr import free_port
from tests.helpers import body_bytes, wait_until


@dataclass
class Stack:
    proc: subprocess.Popen[str]
    listen: int
    grpc: int
    api: int
    db: Path
    # Envoy's admin, as `up` announced it: its Unix socket (the default, mode 0600).
    admin: Path | None = None
    log: list[str] = field(default_factory=list)

    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self.listen}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api}"

    def get(self, path: str, **kw: object) -> httpx.Response:
        return httpx.get(f"{self.api_url}{path}", timeout=5.0, trust_env=False, **kw)  # type: ignore[arg-type]

    def core_pid(self) -> int:
        return int(self.get("/api/stats").json()["pid"])

    def core_up(self) -> bool:
        try:
            return self.get("/health").text == "ok"
        except httpx.HTTPError:
            return False

    def sessions(self) -> list[dict]:
        return self.get("/api/sessions").json()["sessions"]

    def session_when(self, session_id: str, timeout: float = 10, **expected: object) -> dict:
        """The listed session once every expected field has its value (bounded wait)."""

        def ready() -> dict | None:
            found = [s for s in self.sessions() if s["session_id"] == session_id]
            if found and all(found[0].get(k) == v for k, v in expected.items()):
                return found[0]
            return None

        return wait_until(ready, timeout=timeout)

    def post_record(
        self,
        record: dict,
        *,
        session_id: str | None = None,
        body: bytes | None = None,
        extra: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Replay a recorded Claude Code request through Envoy (optionally as another
        session, with another body or extra headers)."""
        return httpx.post(
            self.proxy_url + "/v1/messages?beta=true",
            headers=recorded_headers(record, session_id=session_id, extra=extra),
            content=body_bytes(record) if body is None else body,
            timeout=20,
            trust_env=False,
        )

    def session(self, session_id: str) -> dict:
        return self.get(f"/api/sessions/{session_id}").json()

    @property
    def envoy_admin(self) -> AdminClient:
        assert self.admin is not None, "this stack runs Envoy without an admin socket"
        return AdminClient(self.admin)

    def envoy_stat(self, name: str) -> int:
        return self.envoy_admin.stat(name)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)


def settled_detail(stack: Stack, session_id: str, requests: int) -> dict[str, Any]:
    """The session's detail once it holds every request and none is in flight (bounded);
    after the deadline, whatever it holds then, so the comparison reports the difference."""
    last: dict[str, Any] = {}

    def ready() -> bool:
        nonlocal last
        response = stack.get(f"/api/sessions/{session_id}")
        last = response.json() if response.status_code == 200 else {}
        s = last.get("session") or {}
        return s.get("requests", 0) >= requests and s.get("in_flight") == 0

    with contextlib.suppress(TimeoutError):
        wait_until(ready, timeout=15, interval=0.1)
    return last


def recorded_headers(
    record: dict, *, session_id: str | None = None, extra: dict[str, str] | None = None
) -> list[tuple[str, str]]:
    """A fixture request's headers in their order, minus what the HTTP client sets itself."""
    skip = {"host", "content-length", "connection"}
    if session_id is not None:
        skip.add("x-claude-code-session-id")
    headers = [(k, v) for k, v in record["headers"] if k.lower() not in skip]
    if session_id is not None:
        headers.append(("X-Claude-Code-Session-Id", session_id))
    return headers + list((extra or {}).items())


def start_stack(upstream: str, tmp: Path, *extra: str, idle_timeout: float = 300.0) -> Stack:
    ports = [free_port() for _ in range(3)]
    db = tmp / "clauditor.db"
    argv = [
        sys.executable, "-m", "clauditor", "up",
        "--listen", f"127.0.0.1:{ports[0]}",
        "--grpc", f"127.0.0.1:{ports[1]}",
        "--api", f"127.0.0.1:{ports[2]}",
        "--upstream", upstream,
        "--db", str(db),
        "--idle-timeout", str(idle_timeout),
        *extra,
    ]  # fmt: skip
    if "--claude-dir" not in extra:
        # Never the developer's own ~/.claude: their live sessions are not the test's.
        argv += ["--claude-dir", str(tmp / "claude")]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    stack = Stack(proc, *ports, db=db)
    ready = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        with proc.stdout as out:  # closed at the end of the output, not left to the GC
            for line in out:
                stack.log.append(line.rstrip("\n"))
                stack.admin = announced_socket(line) or stack.admin
                if "Stop with Ctrl-C." in line:  # the announcement's last line
                    ready.set()

    threading.Thread(target=pump, daemon=True).start()
    if not ready.wait(40):
        stack.stop()
        raise RuntimeError("clauditor up did not start:\n" + "\n".join(stack.log[-40:]))
    wait_until(stack.core_up, timeout=10)
    return stack
