"""Recall: full-text search over what each session was about, ranked by bm25 and recency.

The FTS5 table indexes the cleaned first prompt, the compact summary, the tool names
and the file paths a session touched. User queries are turned into quoted terms, so
FTS syntax characters (quotes, *, :, NEAR, parentheses...) never raise.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import sqlite_utils

from clauditor.clock import iso, parse_iso

_TERM = re.compile(r"\w+", re.UNICODE)
# A session loses half its rank every this many days: recent work wins close calls.
RECENCY_HALF_LIFE_DAYS = 14.0
CANDIDATES = 200


@dataclass(frozen=True)
class RecallHit:
    session_id: str
    score: float
    row: dict[str, Any]


def fts_query(text: str, *, any_term: bool = False) -> str | None:
    """User text → a safe FTS5 query: each word quoted, prefix-matched, ANDed (or ORed)."""
    terms = [t.lower() for t in _TERM.findall(text)][:16]
    if not terms:
        return None
    joiner = " OR " if any_term else " "
    return joiner.join(f'"{t}"*' for t in terms)


def recall(
    db: sqlite_utils.Database,
    text: str,
    *,
    limit: int = 10,
    days: float | None = None,
    now: float,
) -> list[RecallHit]:
    hits = _search(db, text, days=days, now=now, any_term=False)
    if not hits:  # every word is too strict for a fuzzy memory: fall back to any word
        hits = _search(db, text, days=days, now=now, any_term=True)
    return hits[:limit]


def _search(
    db: sqlite_utils.Database, text: str, *, days: float | None, now: float, any_term: bool
) -> list[RecallHit]:
    query = fts_query(text, any_term=any_term)
    if query is None:
        return []
    sql = """
        select s.*, bm25(session_search_fts, 4.0, 2.0, 1.0, 1.5) as bm25
        from session_search_fts
        join session_search ss on ss.rowid = session_search_fts.rowid
        join sessions s on s.session_id = ss.session_id
        where session_search_fts match :query {since}
        order by bm25 limit :candidates
    """
    params: dict[str, Any] = {"query": query, "candidates": CANDIDATES}
    since = ""
    if days is not None:
        params["cutoff"] = iso(now - days * 86400.0)
        since = "and s.last_activity_at >= :cutoff"
    found = list(db.query(sql.format(since=since), params))
    # bm25() is lower-is-better and its scale depends on the corpus (in a small history
    # common words get a near-zero IDF): normalise to the best match, then decay by age.
    relevances = [-float(row.pop("bm25")) for row in found]
    best = max(relevances, default=0.0) or 1.0
    hits = []
    for row, relevance in zip(found, relevances, strict=True):
        last = parse_iso(row.get("last_activity_at")) or now
        age_days = max(0.0, (now - last) / 86400.0)
        score = (relevance / best) * math.pow(0.5, age_days / RECENCY_HALF_LIFE_DAYS)
        hits.append(RecallHit(row["session_id"], round(score, 6), row))
    hits.sort(key=lambda h: h.score, reverse=True)
    return hits
