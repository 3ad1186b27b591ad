"""Read-only access to the recorded Claude Code requests in tests/fixtures."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@cache
def load(name: str) -> tuple[dict[str, Any], ...]:
    lines = (FIXTURES / f"{name}.jsonl").read_text().splitlines()
    return tuple(json.loads(line) for line in lines if line.strip())


def posts(name: str) -> list[dict[str, Any]]:
    return [e for e in load(name) if e["method"] == "POST"]


def all_posts() -> list[tuple[str, int, dict[str, Any]]]:
    out = []
    for path in sorted(FIXTURES.glob("*.jsonl")):
        for i, e in enumerate(posts(path.stem)):
            out.append((path.stem, i, e))
    return out


def headers(entry: dict[str, Any]) -> dict[str, str]:
    return {k.lower(): v for k, v in entry["headers"]}


def body(entry: dict[str, Any]) -> bytes:
    return json.dumps(entry["body"], ensure_ascii=False).encode()
