"""The benchmarks still run: each one, at its smallest, completes and prints its tables.

They never fail on a number (docs/performance.md has the numbers); these tests only keep
them from rotting while the code under them changes.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _run(*argv: str, timeout: float = 180) -> str:
    done = subprocess.run(
        [sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def _rows(out: str, setup: str, column: int = 1) -> list[list[str]]:
    """Table rows whose setup column (`column`) is `setup`, as lists of cells."""
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in out.splitlines()]
    return [r for r in rows if len(r) > 2 and r[column] == setup]


def test_latency_benchmark_runs_every_setup() -> None:
    out = _run(
        "-m", "benchmarks.latency", "--setups", "a,b,c,hung", "--levels", "1",
        "--per-session", "1:2,2:1", "--event-delay", "0.001", "--hung-level", "2",
    )  # fmt: skip
    for setup in ("a", "b", "c", "c-hung"):
        (row, *_) = _rows(out, setup)
        assert row[2] == "2/2", row
    assert "ext_proc and flow-control counters" in out


def test_ttfb_benchmark_runs_interleaved() -> None:
    out = _run("-m", "benchmarks.ttfb", "--rounds", "2", "--levels", "1,2")
    for setup in ("a", "b", "b2", "c"):
        assert [r[2] for r in _rows(out, setup)] == ["2/2", "2/2"], setup


def test_throughput_benchmark_runs() -> None:
    out = _run("-m", "benchmarks.throughput", "--quick", "--only", "parse,pipeline,sqlite")
    # events/CPU s then CPU s/1k events, whatever the machine's speed (a loaded CI machine
    # printed 0.0125 where an idle one prints 0.0038).
    rates = [float(x) for x in re.findall(r"\|\s+(\d{5,})\s+\|\s+\d+\.\d+\s+\|", out)]
    assert len(rates) >= 2 and all(r > 1000 for r in rates), out


def test_watch_latency_benchmark_runs() -> None:
    out = _run("benchmarks/watch_latency.py", "--sessions", "1", "--turns", "3")
    assert "missing 0" in out
    assert re.search(r"^all\s+n=\s*\d+", out, re.M), out


def test_statusline_benchmark_runs() -> None:
    out = _run("benchmarks/statusline.py", "--runs", "2", "--sessions", "1")
    assert "line: clauditor · ⤵claude-sonnet-5-5 · ttft " in out
    (row, *_) = _rows(out, "2")  # the n column of the rows: 2 runs each
    assert len(_rows(out, "2")) == 6, out
    assert row[0] == "python -c pass (interpreter start)"


def test_saturation_benchmark_runs() -> None:
    out = _run("-m", "benchmarks.saturation", "--sessions", "2", "--seconds", "3")
    *_, row = [  # the level's row of the final table
        [c.strip() for c in line.strip("|").split("|")]
        for line in out.splitlines()
        if line.startswith("|") and line.strip("| ").startswith("2 ")
    ]
    sent, captured = int(row[1]), int(row[2])
    assert sent > 0 and captured == sent, out  # two sessions: the core keeps up
    assert row[6] == "0", out  # no false errors


def test_api_benchmark_runs() -> None:
    out = _run("-m", "benchmarks.api", "--quick")
    timed = _rows(out, "50 live", column=0) + _rows(out, "50 stored", column=0)
    assert [r[0] for r in timed] == ["50 live"] * 4 + ["50 stored"] * 2, out
    assert all(float(r[2]) > 0 for r in timed), out
