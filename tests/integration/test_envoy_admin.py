"""Envoy's admin under `clauditor up` is a 0600 Unix socket, not a TCP port anyone can
reach (`POST /drain_listeners` would stop all traffic, `/logging?level=debug` would log
API keys). Real Envoy, real core, fake Anthropic."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from clauditor.envoy.admin import AdminClient
from clauditor.netaddr import free_port
from clauditor.sim.server import FakeUpstream
from tests.helpers import fixture_posts, wait_until
from tests.integration.reliability import bound_sockets, children
from tests.integration.stack import Stack, start_stack

pytestmark = pytest.mark.integration


def _unix_listeners(pids: list[int]) -> set[str]:
    """Paths of the listening Unix sockets these processes hold (/proc/net/unix)."""
    inodes = set()
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            target = os.readlink(fd) if fd.is_symlink() else ""
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    out = set()
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        cols = line.split()
        # Flags 00010000: __SO_ACCEPTCON, a listening socket; column 7 is the inode.
        if len(cols) >= 8 and cols[6] in inodes and cols[3] == "00010000":
            out.add(cols[7])
    return out


def test_admin_is_a_private_unix_socket_and_stats_still_read(stack: Stack) -> None:
    assert stack.admin is not None
    mode = os.stat(stack.admin).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
    # Its directory is this run's private one, and Envoy's rendered config there too.
    runtime = stack.admin.parent
    assert stat.S_IMODE(os.stat(runtime).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(runtime / "envoy.yaml").st_mode) == 0o600

    supervisor = stack.proc.pid
    pids = [supervisor, *children(supervisor)]
    # Envoy listens on TCP for Claude Code only: no admin port (the old 9901 included).
    tcp = {b.port for b in bound_sockets(pids) if b.proto.startswith("tcp")}
    assert tcp == {stack.listen, stack.grpc, stack.api}
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", 9901)) != 0
    assert str(stack.admin) in _unix_listeners(pids)

    # clauditor (and these tests) read the admin through the socket.
    assert stack.envoy_admin.ready()
    assert stack.post_record(fixture_posts("a_plain_text")[0]).status_code == 200
    wait_until(lambda: stack.envoy_stat("http.clauditor.downstream_rq_completed") >= 1)
    assert stack.envoy_stat("cluster.clauditor_ext_proc.upstream_rq_total") >= 1


def _up(tmp_path: Path, fake: FakeUpstream, *extra: str) -> subprocess.CompletedProcess[str]:
    """`clauditor up` that must fail before it starts anything."""
    argv = [
        sys.executable, "-m", "clauditor", "up",
        "--listen", f"127.0.0.1:{free_port()}", "--grpc", f"127.0.0.1:{free_port()}",
        "--api", f"127.0.0.1:{free_port()}", "--upstream", fake.url,
        "--db", str(tmp_path / "c.db"), *extra,
    ]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("/nonexistent-dir/admin.sock", "no such directory /nonexistent-dir"),
        ("/" + "x" * 120 + "/a.sock", "too long for a Unix socket"),
        ("admin.sock", "must be a socket path (with a '/'), 'off' or HOST:PORT"),
    ],
)
def test_an_unusable_admin_value_is_a_one_line_error(
    tmp_path: Path, fake: FakeUpstream, value: str, needle: str
) -> None:
    done = _up(tmp_path, fake, "--envoy-admin", value)
    assert done.returncode == 2  # a bad flag value (click's usage error)
    assert "Traceback" not in done.stderr
    assert needle in done.stderr, done.stderr


def test_a_file_in_the_way_is_refused(tmp_path: Path, fake: FakeUpstream) -> None:
    (tmp_path / "a.sock").write_text("not a socket")
    done = _up(tmp_path, fake, "--envoy-admin", str(tmp_path / "a.sock"))
    assert done.returncode == 2 and "exists and is not a socket" in done.stderr


def test_admin_off_and_an_explicit_socket_path(tmp_path: Path, fake: FakeUpstream) -> None:
    off = start_stack(fake.url, tmp_path / "off", "--envoy-admin", "off")
    try:
        assert off.admin is None
        assert any("admin   off" in line for line in off.log)
        assert off.post_record(fixture_posts("a_plain_text")[0]).status_code == 200
        supervisor = off.proc.pid
        assert _unix_listeners([supervisor, *children(supervisor)]) == set()
    finally:
        assert off.stop() == 0

    # A short path of the user's own (pytest's tmp_path may exceed a socket path's limit).
    own = Path(f"/tmp/clauditor-test-{os.getpid()}.sock")
    mine = start_stack(fake.url, tmp_path / "own", "--envoy-admin", str(own))
    try:
        assert mine.admin == own
        assert stat.S_IMODE(os.stat(own).st_mode) == 0o600
        assert AdminClient(own).ready()
    finally:
        assert mine.stop() == 0
    assert not own.exists()  # removed at exit
