"""A history with known numbers for `clauditor report`: 3 days, 2 priced models and an
unknown one, 4 sessions in 2 projects, and rows outside the window.

Costs are written at the catalog's list prices (USD per million tokens), computed by
hand: Opus 5.5 input 4, output 20, 5 min write 5, 1 h write 8, read 0.2; Sonnet 5.5
input 2, output 10, 5 min write 2.5, 1 h write 4, read 0.1 (since 2026-10-07).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlite_utils

from clauditor.sessions.timing import TIME_PARTS
from clauditor.store.database import open_database
from clauditor.store.schema import MIGRATIONS

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc).timestamp()
OPUS, SONNET, UNKNOWN = "claude-opus-5-5", "claude-sonnet-5-5", "claude-opus-6"
S1, S2, S3, S4, S0 = ("aaaa1111-s1", "bbbb2222-s2", "cccc3333-s3", "dddd4444-s4", "eeee0000-s0")


def _request(
    uid: str,
    session: str,
    at: str,
    model: str,
    tokens: tuple[int, int, int, int, int],
    costs: tuple[float, float, float, float, float] | None,
    ttft: float | None,
    error: str | None = None,
) -> dict[str, Any]:
    """tokens: input, output, cache read, cache creation (all), of which 1 h; costs: by
    class (input, output, 5 min write, 1 h write, read), None when unpriced."""
    inp, out, read, creation, one_hour = tokens
    row: dict[str, Any] = {
        "uid": uid,
        "session_id": session,
        "turn": 1,
        "kind": "main",
        "model_requested": model,
        "model_responded": model,
        "stream": 1,
        "status": 200,
        "started_at": f"{at}.000Z",
        "ended_at": f"{at}.900Z",
        "ttft_ms": ttft,
        "input_tokens": inp,
        "output_tokens": out,
        "cache_read_tokens": read,
        "cache_creation_tokens": creation,
        "cache_creation_1h_tokens": one_hour,
        "error_type": error,
        "cost_usd": None if costs is None else sum(costs),
    }
    for name, value in zip(
        ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read"),
        costs or (None,) * 5,
        strict=True,
    ):
        row[f"cost_{name}_usd"] = value
    return row


REQUESTS = [
    # 11-28: s1 on Opus 0.244, s2 on Sonnet 0.304 (its writes all 1 h)
    _request("r1", S1, "2026-11-28T09:00:00", OPUS, (1000, 5000, 200_000, 20_000, 0),
             (0.004, 0.1, 0.1, 0.0, 0.04), 500),
    _request("r2", S2, "2026-11-28T10:00:00", SONNET, (2000, 10_000, 400_000, 40_000, 40_000),
             (0.004, 0.1, 0.0, 0.16, 0.04), 300),
    # 11-29: s1 0.162, s3 0.404 (10k of its 30k writes are 1 h), and a failed stream of s3
    _request("r3", S1, "2026-11-29T09:00:00", OPUS, (500, 2500, 300_000, 10_000, 0),
             (0.002, 0.05, 0.05, 0.0, 0.06), 700),
    _request("r4", S3, "2026-11-29T11:00:00", OPUS, (1000, 10_000, 100_000, 30_000, 10_000),
             (0.004, 0.2, 0.1, 0.08, 0.02), 1200),
    _request("r7", S3, "2026-11-29T11:10:00", OPUS, (0, 0, 0, 0, 0),
             (0.0, 0.0, 0.0, 0.0, 0.0), 100, error="sse_error"),
    # 11-30: only s4, on a model the catalog lacks: unpriced
    _request("r5", S4, "2026-11-30T08:00:00", UNKNOWN, (3000, 1000, 50_000, 0, 0), None, 900),
    # 11-27: before the window
    _request("r6", S0, "2026-11-27T10:00:00", OPUS, (0, 100_000, 0, 0, 0),
             (0.0, 2.0, 0.0, 0.0, 0.0), 50),
]  # fmt: skip

SESSIONS = [
    {"session_id": sid, "project": project, "model": model, "first_prompt": prompt}
    for sid, project, model, prompt in (
        (S1, "api", OPUS, "fix the auth middleware"),
        (S2, "api", SONNET, "write the release notes"),
        (S3, "web", OPUS, "make the login page faster"),
        (S4, "web", UNKNOWN, "try the new model"),
        (S0, "api", OPUS, "last week's work"),
    )
]

# (session, turn, started_at, trigger, time parts in ms). Over the window they add up to
# 41,000 waiting for the model, 4,000 generating, 35,000 tools, 18,000 you, 1,000 retries
# and 1,000 in subagents: 100,000 ms, so each share is its thousands in percent.
TURNS = [
    (S1, 1, "2026-11-28T09:00:00", "prompt", (10_000, 1000, 8000, 5000, 0, None)),
    (S2, 1, "2026-11-28T10:00:00", "prompt", (6000, 500, 5000, 2000, 0, None)),
    (S2, 2, "2026-11-28T10:30:00", "task_notification", (2000, 500, 0, 0, 0, None)),
    (S1, 2, "2026-11-29T09:00:00", "prompt", (8000, 1000, 9000, 3000, 0, None)),
    (S3, 1, "2026-11-29T11:00:00", "prompt", (9000, 500, 7000, 4000, 1000, 1000)),
    (S4, 1, "2026-11-30T08:00:00", "prompt", (6000, 500, 6000, 4000, 0, None)),
    (S0, 1, "2026-11-27T10:00:00", "prompt", (99_000,) * 6),
]


# The last schema whose turns have no time breakdown columns.
V4 = 4


def _v4_database(path: Path) -> sqlite_utils.Database:
    """A file as clauditor v4 left it: migrated no further (readers never migrate)."""
    db = sqlite_utils.Database(path)
    db.execute("create table schema_version (version integer not null)")
    for version, migration in enumerate(MIGRATIONS[:V4], start=1):
        migration(db)
        db.execute("insert into schema_version (version) values (?)", [version])
    return db


def seed(path: Path, *, time_columns: bool = True) -> Path:
    """Write the rows into a fresh database at path, with the turn time breakdown filled
    in; without time_columns, into a v4 file, whose turns have no such columns."""
    db = open_database(path) if time_columns else _v4_database(path)
    db.table("sessions").insert_all(
        {**s, "status": "ended", "started_at": "2026-11-27T00:00:00.000Z"} for s in SESSIONS
    )
    db.table("requests").insert_all(REQUESTS)
    db.table("turns").insert_all(
        {
            "session_id": sid,
            "turn": turn,
            "started_at": f"{at}.000Z",
            "trigger": trigger,
            "outcome": "completed",
            **(dict(zip(TIME_PARTS, parts, strict=True)) if time_columns else {}),
        }
        for sid, turn, at, trigger, parts in TURNS
    )
    db.conn.commit()
    db.conn.close()
    return path
