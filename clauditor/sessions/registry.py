"""Claude Code's own session registry: what a proxy never sees, read from the machine.

Claude Code 2.1.332 keeps one file per running process, `<claude dir>/sessions/<pid>.json`
(`$CLAUDE_CONFIG_DIR`, else `~/.claude`): its session id, working directory, name, tmux
pane, and `status` (`idle`, `busy`, `waiting` with `waitingFor`, e.g. "permission
prompt"). The file goes away when the process exits. clauditor reads it, read-only: never
the sibling `<pid>.<hash>.key` (a peer token), never a transcript.

`parse_entry` is pure; `RegistryReader` does the (cheap) directory poll: it re-reads only
files whose size or mtime changed, and drops entries whose process is gone (a crashed
Claude Code leaves its file behind).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MAX_ENTRY_BYTES = 64 * 1024  # a registry file is ~1 KiB; anything larger is not one
MAX_ENTRIES = 512  # processes on one machine; past this the rest are ignored
MAX_TEXT = 512
GIT_ROOT_DEPTH = 64


@dataclass(frozen=True, slots=True)
class RegistryEntry:
    pid: int
    session_id: str
    cwd: str | None = None
    name: str | None = None  # Claude Code's own name for the session
    tmux_pane: str | None = None  # session:@window.%pane
    status: str | None = None  # idle | busy | waiting
    waiting_for: str | None = None  # e.g. "permission prompt"
    version: str | None = None
    kind: str | None = None  # interactive | print...
    entrypoint: str | None = None
    started_at: float | None = None  # seconds (the file says milliseconds)
    status_since: float | None = None
    proc_start: str | None = None  # the process's start in clock ticks (/proc/pid/stat)


def _text(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if isinstance(value, str) and value.strip() and len(value) <= MAX_TEXT:
        return value.strip()
    return None


def _seconds(obj: dict[str, Any], key: str) -> float | None:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value / 1000.0 if 0 < value < 1 << 53 else None


def parse_entry(raw: bytes) -> RegistryEntry | None:
    """One registry file, or None when it is not one (never raises)."""
    if len(raw) > MAX_ENTRY_BYTES:
        return None
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(obj, dict):
        return None
    pid, sid = obj.get("pid"), _text(obj, "sessionId")
    if type(pid) is not int or pid <= 0 or sid is None or len(sid) > 128:
        return None
    proc_start = obj.get("procStart")
    return RegistryEntry(
        pid=pid,
        session_id=sid,
        cwd=_text(obj, "cwd"),
        name=_text(obj, "name"),
        tmux_pane=_text(obj, "tmux"),
        status=_text(obj, "status"),
        waiting_for=_text(obj, "waitingFor"),
        version=_text(obj, "version"),
        kind=_text(obj, "kind"),
        entrypoint=_text(obj, "entrypoint"),
        started_at=_seconds(obj, "startedAt"),
        status_since=_seconds(obj, "statusUpdatedAt") or _seconds(obj, "updatedAt"),
        proc_start=str(proc_start) if isinstance(proc_start, (str, int)) else None,
    )


def project_of(cwd: str | None) -> str | None:
    """The project a directory belongs to: its git root's name, else its own name."""
    if not cwd:
        return None
    path = Path(cwd)
    probe = path
    for _ in range(GIT_ROOT_DEPTH):
        try:
            if (probe / ".git").exists():
                return probe.name or str(probe)
        except OSError:
            break
        if probe.parent == probe:
            break
        probe = probe.parent
    return path.name or str(path)


def default_claude_dir() -> Path:
    configured = os.environ.get("CLAUDE_CONFIG_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".claude"


def process_alive(pid: int, proc_start: str | None) -> bool:
    """Is this the process that wrote the entry? (A pid can be reused after a crash.)"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, another user's: trust the file
    if proc_start is None:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): the kill check is all there is
    # Field 22 (starttime) comes after the parenthesised command name, which may hold spaces.
    fields = stat.rsplit(")", 1)[-1].split()
    return len(fields) < 20 or fields[19] == proc_start


class RegistryReader:
    """Polls `<claude dir>/sessions/*.json`; `poll()` returns the live entries by session."""

    def __init__(
        self,
        claude_dir: Path,
        *,
        alive: Callable[[int, str | None], bool] = process_alive,
    ) -> None:
        self.directory = claude_dir / "sessions"
        self.alive = alive
        self._files: dict[str, tuple[int, int, RegistryEntry | None]] = {}  # name -> cache
        self.polls = 0
        self.bad_files = 0
        self.available = False  # the directory exists (Claude Code >= 2.1.332 ran here)

    def poll(self) -> dict[str, RegistryEntry]:
        self.polls += 1
        seen: dict[str, tuple[int, int, RegistryEntry | None]] = {}
        try:
            with os.scandir(self.directory) as it:
                names = [e for e in it if e.name.endswith(".json") and e.is_file()]
            self.available = True
        except OSError:
            self.available = False
            self._files = {}
            return {}
        for dirent in names[:MAX_ENTRIES]:
            try:
                st = dirent.stat()
            except OSError:
                continue
            cached = self._files.get(dirent.name)
            if cached is not None and cached[:2] == (st.st_size, st.st_mtime_ns):
                seen[dirent.name] = cached
                continue
            entry = self._read(Path(dirent.path), st.st_size)
            seen[dirent.name] = (st.st_size, st.st_mtime_ns, entry)
        self._files = seen
        out: dict[str, RegistryEntry] = {}
        for _, _, entry in seen.values():
            if entry is not None and self.alive(entry.pid, entry.proc_start):
                out[entry.session_id] = entry
        return out

    def _read(self, path: Path, size: int) -> RegistryEntry | None:
        if size > MAX_ENTRY_BYTES:
            self.bad_files += 1
            return None
        try:
            raw = path.read_bytes()
        except OSError:
            return None  # removed between the listing and the read: the process exited
        entry = parse_entry(raw)
        if entry is None:
            self.bad_files += 1
        return entry
