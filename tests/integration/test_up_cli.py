"""`clauditor up` / `serve` start-up errors and clean shutdown, as a user sees them."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from clauditor.netaddr import HostPort, free_port, port_in_use
from clauditor.sim.server import FakeUpstream
from tests.helpers import fixture_posts, wait_until
from tests.integration.stack import start_stack

pytestmark = pytest.mark.integration


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clauditor", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def _ports() -> list[str]:
    names = ("--listen", "--grpc", "--api")
    return [x for n in names for x in (n, f"127.0.0.1:{free_port()}")]


def _one_line_error(done: subprocess.CompletedProcess[str], needle: str) -> None:
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("clauditor:")]
    assert len(lines) == 1 and needle in lines[0], done.stderr


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        args = _ports()
        args[1] = f"127.0.0.1:{port}"
        done = _run("up", *args, "--db", str(tmp_path / "c.db"))
    _one_line_error(done, f"--listen 127.0.0.1:{port} is already in use")


def test_missing_envoy_is_a_clear_error(tmp_path: Path) -> None:
    done = _run("up", *_ports(), "--db", str(tmp_path / "c.db"), "--envoy", "/nonexistent/envoy")
    _one_line_error(done, "Envoy binary not found")


def test_unwritable_db_path_still_routes(tmp_path: Path) -> None:
    """A database path nothing can be created at: Envoy routes all the same, the core
    serves live views, and the store says why it is paused (it keeps trying)."""
    with FakeUpstream().running_in_thread() as fake:
        stack = start_stack(fake.url, tmp_path, "--db", "/proc/clauditor/clauditor.db")
        try:
            record = fixture_posts("a_plain_text")[0]
            assert stack.post_record(record).status_code == 200
            store = stack.get("/api/stats").json()["store"]
            assert store["state"] == "paused" and store["paused"]
            assert "/proc/clauditor/clauditor.db" in store["last_error"]
            assert stack.get("/api/sessions").status_code == 200
        finally:
            assert stack.stop() == 0
    errors = [line for line in stack.log if "cannot write to /proc/clauditor" in line]
    assert len(errors) == 1, "\n".join(stack.log)


def test_bad_upstream_is_a_clear_error(tmp_path: Path) -> None:
    done = _run("up", *_ports(), "--db", str(tmp_path / "c.db"), "--upstream", "ftp://x")
    _one_line_error(done, "upstream must be")
    for bad in ("http://host:notaport", "http://host:99999"):
        done = _run("up", *_ports(), "--db", str(tmp_path / "c.db"), "--upstream", bad)
        _one_line_error(done, "upstream port must be a number from 1 to 65535")


def test_serve_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = _run(
            "serve", "--grpc", f"127.0.0.1:{port}", "--api", f"127.0.0.1:{free_port()}",
            "--db", str(tmp_path / "c.db"),
        )  # fmt: skip
    _one_line_error(done, "already in use")


def test_sigterm_stops_core_and_envoy(tmp_path: Path) -> None:
    with FakeUpstream().running_in_thread() as fake:
        stack = start_stack(fake.url, tmp_path)
        addrs = [HostPort("127.0.0.1", p) for p in (stack.listen, stack.grpc, stack.api)]
        assert all(port_in_use(a) for a in addrs)
        assert stack.admin is not None and stack.admin.is_socket()
        runtime_dir = stack.admin.parent
        assert stack.stop() == 0
    # Nothing is left listening: Envoy and the core are gone with the supervisor, and so
    # is the runtime directory (Envoy's config, its admin socket).
    assert not any(port_in_use(a) for a in addrs)
    assert not runtime_dir.exists()
    assert "export ANTHROPIC_BASE_URL=http://127.0.0.1:" in "\n".join(stack.log)


def test_children_die_with_a_killed_supervisor(tmp_path: Path) -> None:
    with FakeUpstream().running_in_thread() as fake:
        stack = start_stack(fake.url, tmp_path)
        stack.proc.kill()  # SIGKILL: no chance to clean up; the kernel tells the children
        stack.proc.wait(10)
        addrs = [HostPort("127.0.0.1", p) for p in (stack.listen, stack.grpc, stack.api)]
        wait_until(lambda: not any(port_in_use(a) for a in addrs), timeout=10)


def test_demo_drives_sessions_through_the_stack() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "clauditor", "demo", "--once", "--sessions", "3", "--turns", "2",
         *_ports()],
        capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "demo: drove 3 sessions through Envoy" in done.stdout
    table = [line.split() for line in done.stdout.splitlines() if line[:36].count("-") == 4]
    assert len(table) == 3
    assert [row[1] for row in table] == ["2", "2", "2"]  # two turns each


def test_core_runs_at_low_cpu_priority(tmp_path: Path) -> None:
    """The core only watches: once it serves, every thread of it yields the CPU to Envoy
    and Claude Code (nice 19); it starts at normal priority, so a busy machine does not
    hold up its start, and the supervisor and Envoy keep theirs."""
    import os

    with FakeUpstream().running_in_thread() as fake:
        stack = start_stack(fake.url, tmp_path)
        try:
            core = stack.core_pid()
            threads = [int(t.name) for t in Path(f"/proc/{core}/task").iterdir()]
            assert len(threads) > 1
            assert {os.getpriority(os.PRIO_PROCESS, t) for t in threads} == {19}
            mine = os.getpriority(os.PRIO_PROCESS, 0)
            assert os.getpriority(os.PRIO_PROCESS, stack.proc.pid) == mine
            envoy = [
                int(p.name)
                for p in Path("/proc").iterdir()
                if p.name.isdigit()
                and _parent(int(p.name)) == stack.proc.pid
                and int(p.name) != core
            ]
            assert envoy and all(os.getpriority(os.PRIO_PROCESS, e) == mine for e in envoy)
        finally:
            assert stack.stop() == 0


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def test_core_nice_zero_leaves_the_priority_alone(tmp_path: Path) -> None:
    import os

    with FakeUpstream().running_in_thread() as fake:
        stack = start_stack(fake.url, tmp_path, "--core-nice", "0")
        try:
            core = stack.core_pid()
            assert os.getpriority(os.PRIO_PROCESS, core) == os.getpriority(os.PRIO_PROCESS, 0)
        finally:
            assert stack.stop() == 0


def test_demo_keeps_live_sessions_going_until_ctrl_c() -> None:
    ports = _ports()
    api = f"http://{ports[ports.index('--api') + 1]}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "clauditor", "demo", "--sessions", "1", "--turns", "1", *ports],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: set[str] = set()

    def sessions() -> list[dict]:
        try:
            return httpx.get(f"{api}/api/sessions", timeout=5, trust_env=False).json()["sessions"]
        except httpx.HTTPError:
            return []

    def live_with_a_wait() -> bool:
        rows = [s for s in sessions() if s["project"]]
        seen.update(s["state"] for s in rows)
        return {s["project"] for s in rows} == {"shop-api", "docs-site", "infra"} and (
            "needs_you" in seen
        )

    try:
        wait_until(live_with_a_wait, timeout=60, interval=0.5)
        rows = [s for s in sessions() if s["project"]]
        # Prompts read as a person typed them: the fake's directives stay out of view.
        assert all("[[fake:" not in (s["first_prompt"] or "") for s in rows)
        assert any(s["tool_calls"] for s in rows)
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-2000:]
