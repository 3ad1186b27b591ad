"""Whatever the database, `clauditor up` starts and Envoy routes (real Envoy, real core,
real SQLite files):

- a file the core cannot use (not SQLite, truncated, damaged pages, another program's
  schema, a folder in the way) is moved aside, kept, and a fresh one made: one line says
  where the old one went;
- what a fresh file cannot fix (a newer clauditor's schema, an immutable file, a path
  nothing can be created at, a read-only file system) pauses the history with its reason
  in /api/stats, live views working, and no SIGBUS when the -shm cannot be written;
- the database deleted while the core runs is noticed and made again, the API never 500;
- the files turned read-only at run time (the -shm too) pause the store, and it resumes
  by itself, losing nothing;
- a 2 MiB disk filled up: writes pause ("disk full") and resume once space frees, the
  WAL cut back.

Before: 7 of these 9 start-up cases ended `up` with an error (Envoy never listened), the
deleted file left /api/sessions answering 500, and an immutable -shm killed the core
with SIGBUS.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from clauditor.sim.server import FakeUpstream
from clauditor.store.schema import SCHEMA_VERSION
from tests.helpers import fixture_posts, wait_until
from tests.integration.reliability import PacedSession, integrity, stored_counts
from tests.integration.stack import Stack, start_stack

pytestmark = pytest.mark.integration

BASH = '[[fake:tool Bash {"command": "ls"}]]'


def _seeded(db: Path) -> None:
    """A real clauditor database with one stored session (what a user has)."""
    from clauditor.store.database import open_database

    conn = open_database(db)
    with conn.conn:
        conn["sessions"].insert({"session_id": "old-session", "status": "ended", "turns": 3})
    conn.execute("pragma wal_checkpoint(TRUNCATE)")
    conn.conn.close()


def _not_sqlite(db: Path) -> None:
    db.write_text("these are my notes, not a database\n" * 200)


def _truncated(db: Path) -> None:
    _seeded(db)
    with open(db, "r+b") as fh:
        fh.truncate(db.stat().st_size // 2 + 100)


def _garbage_pages(db: Path) -> None:
    _seeded(db)
    data = bytearray(db.read_bytes())
    for offset in range(4096, len(data), 4096):  # every page but the header's
        data[offset + 8 : offset + 4000] = os.urandom(3992)
    db.write_bytes(bytes(data))


def _foreign_schema(db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.execute("create table sessions (id integer primary key, note text)")
    conn.commit()
    conn.close()


def _directory(db: Path) -> None:
    db.mkdir()
    (db / "something.txt").write_text("kept")


def _newer_schema(db: Path) -> None:
    _seeded(db)
    conn = sqlite3.connect(db)
    conn.execute("insert into schema_version (version) values (?)", [SCHEMA_VERSION + 5])
    conn.commit()
    conn.close()


def _empty_file(db: Path) -> None:
    db.touch()


def _garbage_wal(db: Path) -> None:
    _seeded(db)
    Path(f"{db}-wal").write_bytes(os.urandom(20_000))


MOVED_ASIDE: dict[str, Callable[[Path], None]] = {
    "not_sqlite": _not_sqlite,
    "truncated": _truncated,
    "garbage_pages": _garbage_pages,
    "foreign_schema": _foreign_schema,
    "directory": _directory,
}
USED_AS_IS: dict[str, Callable[[Path], None]] = {
    "empty_file": _empty_file,
    "garbage_wal": _garbage_wal,
}


def _routes_and_tracks(stack: Stack, fake: FakeUpstream, tracked: bool = True) -> str:
    sid = str(uuid.uuid4())
    record = fixture_posts("a_plain_text")[0]
    assert stack.post_record(record, session_id=sid).status_code == 200
    assert stack.get("/api/sessions").status_code == 200
    if tracked:
        stack.session_when(sid, requests=1, in_flight=0)
    return sid


def _stored_ids(db: Path) -> set[str]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return {r[0] for r in conn.execute("select session_id from sessions")}
    finally:
        conn.close()


@pytest.mark.parametrize("variant", sorted(MOVED_ASIDE))
def test_unusable_database_is_moved_aside(variant: str, fake: FakeUpstream, tmp_path: Path) -> None:
    db = tmp_path / "clauditor.db"
    MOVED_ASIDE[variant](db)
    before = sorted(p.name for p in tmp_path.iterdir())
    stack = start_stack(fake.url, tmp_path)
    try:
        sid = _routes_and_tracks(stack, fake)
        assert stack.get("/api/stats").json()["store"]["paused"] is None
        wait_until(lambda: sid in _stored_ids(db), timeout=10)
    finally:
        assert stack.stop() == 0
    moved = [p for p in tmp_path.iterdir() if ".corrupt-" in p.name]
    main = [p for p in moved if p.name.count("-") == 1 or p.is_dir()]
    assert len(main) == 1, sorted(p.name for p in tmp_path.iterdir())
    told = [line for line in stack.log if "could not be used" in line]
    assert len(told) == 1 and str(main[0]) in told[0] and "kept" in told[0]
    assert before == ["clauditor.db"] or before[0] == "clauditor.db"
    if variant == "directory":
        assert (main[0] / "something.txt").read_text() == "kept"
    assert integrity(db) == "ok"


@pytest.mark.parametrize("variant", sorted(USED_AS_IS))
def test_odd_but_usable_database_is_kept(variant: str, fake: FakeUpstream, tmp_path: Path) -> None:
    db = tmp_path / "clauditor.db"
    USED_AS_IS[variant](db)
    stack = start_stack(fake.url, tmp_path)
    try:
        sid = _routes_and_tracks(stack, fake)
        wait_until(lambda: sid in _stored_ids(db), timeout=10)
    finally:
        assert stack.stop() == 0
    assert not [p for p in tmp_path.iterdir() if ".corrupt-" in p.name]
    if variant == "garbage_wal":
        assert "old-session" in _stored_ids(db)


def test_newer_schema_pauses_history_and_keeps_the_file(fake: FakeUpstream, tmp_path: Path) -> None:
    db = tmp_path / "clauditor.db"
    _newer_schema(db)
    stack = start_stack(fake.url, tmp_path)
    try:
        _routes_and_tracks(stack, fake)
        store = stack.get("/api/stats").json()["store"]
        assert store["paused"] == "schema newer than this clauditor"
        assert f"v{SCHEMA_VERSION + 5} is newer" in store["last_error"]
        assert 'clauditor_store_paused{clauditor_reason="schema newer' in stack.get("/metrics").text
    finally:
        assert stack.stop() == 0
    assert not [p for p in tmp_path.iterdir() if ".corrupt-" in p.name]
    assert "old-session" in _stored_ids(db)  # untouched
    assert len([line for line in stack.log if "is newer than this clauditor" in line]) == 1


def _chattr(flag: str, *paths: Path) -> bool:
    done = subprocess.run(
        ["chattr", flag, *map(str, paths)], capture_output=True, timeout=10, check=False
    )
    return done.returncode == 0


@pytest.fixture
def immutable_ok(tmp_path: Path) -> None:
    probe = tmp_path / "probe"
    probe.touch()
    if not _chattr("+i", probe):
        pytest.skip("chattr +i not possible here (needs CAP_LINUX_IMMUTABLE, ext4/tmpfs/xfs)")
    _chattr("-i", probe)
    probe.unlink()


def test_immutable_database_pauses_then_resumes(
    fake: FakeUpstream, tmp_path: Path, immutable_ok: None
) -> None:
    """An immutable file (root cannot write, rename or chmod it either): paused as
    read-only at start, traffic tracked live; writable again, it resumes on its own."""
    db = tmp_path / "clauditor.db"
    _seeded(db)
    assert _chattr("+i", db)
    try:
        stack = start_stack(fake.url, tmp_path)
        try:
            sid = _routes_and_tracks(stack, fake)
            assert stack.get("/api/stats").json()["store"]["paused"] == "read-only"
            assert any(s["session_id"] == "old-session" for s in stack.sessions())
        finally:
            _chattr("-i", db)
        wait_until(lambda: sid in _stored_ids(db), timeout=15)
        assert stack.get("/api/stats").json()["store"]["paused"] is None
    finally:
        _chattr("-i", db)
        assert stack.stop() == 0
    assert "old-session" in _stored_ids(db)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """Mount a tmpfs (as root) with the given options; unmounted at the end."""
    mounted: list[Path] = []

    def mount(options: str) -> Path:
        where = tmp_path / f"disk{len(mounted)}"
        where.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
            capture_output=True,
            timeout=10,
            check=False,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        mounted.append(where)
        return where

    yield mount
    for where in reversed(mounted):
        for _ in range(20):  # the core may still be closing its files
            if subprocess.run(["umount", str(where)], capture_output=True, timeout=10).returncode:
                time.sleep(0.25)
                continue
            break
        else:
            subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=10)


def test_read_only_file_system_with_a_stale_shm(
    fake: FakeUpstream, tmp_path: Path, tmpfs: Callable[[str], Path]
) -> None:
    """The history on read-only media, a -shm left by a killed core beside it: no
    SIGBUS, history readable (read-only, immutable), new traffic tracked live."""
    disk = tmpfs("size=4m,mode=0700")
    db = disk / "clauditor.db"
    _seeded(db)
    writer = subprocess.run(  # a process killed with its WAL and -shm open
        ["python3", "-c", "import sqlite3,os,signal; c=sqlite3.connect(os.sys.argv[1]);"
         "c.execute('insert into sessions (session_id, status) values (\"wal-only\", \"ended\")');"
         "c.commit(); os.kill(os.getpid(), signal.SIGKILL)", str(db)],
        capture_output=True, timeout=30, check=False,
    )  # fmt: skip
    assert writer.returncode == -9 and Path(f"{db}-shm").exists()
    done = subprocess.run(["mount", "-o", "remount,ro", str(disk)], capture_output=True)
    assert done.returncode == 0, done.stderr
    stack = start_stack(fake.url, disk.parent, "--db", str(db))
    try:
        pid = stack.core_pid()
        _routes_and_tracks(stack, fake)
        assert stack.get("/api/stats").json()["store"]["paused"] == "read-only"
        listed = {s["session_id"] for s in stack.sessions()}
        assert "old-session" in listed  # checkpointed rows read fine
        assert stack.core_pid() == pid
    finally:
        assert stack.stop() == 0
    assert not [line for line in stack.log if "core exited" in line]


def test_database_deleted_while_running_is_recreated(fake: FakeUpstream, tmp_path: Path) -> None:
    stack = start_stack(fake.url, tmp_path)
    db = stack.db
    try:
        first = _routes_and_tracks(stack, fake)
        wait_until(lambda: first in _stored_ids(db), timeout=10)
        for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
            path.unlink(missing_ok=True)
        # The API answers all along (it used to be 500: "no such table: sessions").
        statuses = set()
        for _ in range(40):
            statuses.add(stack.get("/api/sessions").status_code)
            statuses.add(stack.get("/api/summary").status_code)
            if stack.get("/api/stats").json()["store"]["db_recreated"]:
                break
            time.sleep(0.1)
        assert statuses == {200}
        assert stack.get("/api/stats").json()["store"]["db_recreated"] == 1
        second = _routes_and_tracks(stack, fake)
        wait_until(lambda: db.exists() and second in _stored_ids(db), timeout=10)
    finally:
        assert stack.stop() == 0
    assert integrity(db) == "ok"
    assert len([line for line in stack.log if "was deleted or replaced" in line]) == 1


def test_files_read_only_at_run_time_shm_included_no_sigbus(
    fake: FakeUpstream, tmp_path: Path, loop: asyncio.AbstractEventLoop, immutable_ok: None
) -> None:
    """db, -wal, -shm and their folder immutable while the core runs (before: the next
    reader's connection died of SIGBUS, and so did the core)."""
    stack = start_stack(fake.url, tmp_path)
    db = stack.db
    frozen = [db, Path(f"{db}-wal"), Path(f"{db}-shm"), tmp_path]
    sessions = [PacedSession(stack.proxy_url) for _ in range(3)]
    try:
        pid = stack.core_pid()

        async def turns(tag: str) -> None:
            for s in sessions:
                assert (await s.turn(f"{tag} {BASH}")).statuses == [200, 200]

        loop.run_until_complete(turns("before"))
        wait_until(lambda: len(stored_counts(db)) == 3, timeout=10)
        assert _chattr("+i", *frozen)
        try:
            loop.run_until_complete(turns("while frozen"))

            async def new() -> str:
                async with PacedSession(stack.proxy_url) as s:
                    assert (await s.turn(f"new while frozen {BASH}")).statuses == [200, 200]
                    return s.session_id

            fresh = loop.run_until_complete(new())
            stack.session_when(fresh, turns=1, requests=2, in_flight=0)
            for s in sessions:
                stack.session_when(s.session_id, turns=2, requests=4, in_flight=0)
            assert stack.get("/api/summary").status_code == 200
            store = wait_until(
                lambda: (st := stack.get("/api/stats").json()["store"])["paused"] and st,
                timeout=10,
            )
            assert store["paused"] == "read-only"
            assert stack.core_pid() == pid
        finally:
            _chattr("-i", *frozen)
        wait_until(lambda: stack.get("/api/stats").json()["store"]["paused"] is None, 15)
        wait_until(lambda: fresh in stored_counts(db), timeout=10)
        for s in sessions:
            loop.run_until_complete(s.aclose())
        assert stack.core_pid() == pid
    finally:
        _chattr("-i", *frozen)
        code = stack.stop()
    assert code == 0
    counts = stored_counts(db)
    assert all(counts[s.session_id][:2] == (2, 4) for s in sessions)
    assert counts[fresh][:2] == (1, 2)
    assert not [line for line in stack.log if "core exited" in line]


def _fill(disk: Path, leave: int) -> Path:
    """Fill the disk but for about `leave` bytes."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for _ in range(4096):  # bounded: a 2 MiB disk takes ~2000 blocks of 1 KiB
            if os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize <= leave:
                break
            try:
                os.write(fd, b"\0" * 1024)
            except OSError:
                break
    finally:
        os.close(fd)
    return filler


def test_tiny_disk_fills_pauses_and_recovers(
    fake: FakeUpstream, tmp_path: Path, loop: asyncio.AbstractEventLoop,
    tmpfs: Callable[[str], Path],
) -> None:  # fmt: skip
    """A 2 MiB disk: traffic fills it; the store pauses ("disk full", counted), live views
    go on, and once space frees the rows kept land and the WAL is cut back."""
    disk = tmpfs("size=2m,mode=0700")
    db = disk / "clauditor.db"
    stack = start_stack(fake.url, tmp_path, "--db", str(db))
    ids: list[str] = []
    try:
        _routes_and_tracks(stack, fake)
        filler = _fill(disk, leave=48 * 1024)

        async def drive(n: int) -> None:
            for i in range(n):
                async with PacedSession(stack.proxy_url) as s:
                    prompt = f"fill the disk {i} " + "lorem ipsum " * 300
                    assert (await s.turn(f"{prompt} {BASH}")).statuses == [200, 200]
                    ids.append(s.session_id)

        def paused() -> bool:
            return stack.get("/api/stats").json()["store"]["paused"] == "disk full"

        for _ in range(20):  # bounded: each round adds ~10 sessions of rows
            loop.run_until_complete(drive(10))
            if paused():
                break
        assert paused(), stack.get("/api/stats").json()["store"]
        loop.run_until_complete(drive(5))  # more while paused: live, kept in memory
        for sid in ids[-5:]:
            stack.session_when(sid, turns=1, requests=2, in_flight=0)
        assert stack.get("/api/sessions").status_code == 200
        filler.unlink()
        wait_until(lambda: stack.get("/api/stats").json()["store"]["paused"] is None, 20)
        wait_until(lambda: set(ids) <= set(stored_counts(db)), timeout=15)
        store = stack.get("/api/stats").json()["store"]
        assert store["rows_dropped"] == 0 and store["write_errors"] > 0
    finally:
        code = stack.stop()
    assert code == 0
    assert integrity(db) == "ok"
    wal = Path(f"{db}-wal")
    assert not wal.exists() or wal.stat().st_size <= 2 * 1024 * 1024
    print(f"\ntiny disk: {len(ids)} sessions, {store['write_errors']} failed writes, all stored")
