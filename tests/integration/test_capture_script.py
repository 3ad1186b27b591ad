"""scripts/capture_claude_code.py with the real CLI: fixture lines in the captures' format,
the key never anything but the fake one, and a truth the compatibility tests can read."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.compat.clis import Cli
from tests.compat.truth import from_stream_json_files, session_of, wire_of

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
KEYS = {"seq", "ts", "method", "path", "query", "headers", "body", "response", "duration_s"}


def test_capture_writes_request_logs_and_stream_json(claude_cli: Cli, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "capture_claude_code.py"),
         "--claude", str(claude_cli.binary), "--out", str(tmp_path), "tool", "continue_resume"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "n_continue_resume.1.stdout.jsonl",
        "n_continue_resume.2.stdout.jsonl",
        "n_continue_resume.3.stdout.jsonl",
        "n_continue_resume.jsonl",
        "n_tool.jsonl",
        "n_tool.stdout.jsonl",
    ]
    for name, runs, posts in [("n_tool", [""], 2), ("n_continue_resume", [".1", ".2", ".3"], 3)]:
        records = [json.loads(x) for x in (tmp_path / f"{name}.jsonl").read_text().splitlines()]
        assert all(set(r) >= KEYS for r in records)
        assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
        for r in records:
            headers = {k.lower(): v for k, v in r["headers"]}
            assert "authorization" not in headers
            if r["method"] == "POST":
                assert headers["x-api-key"] == "sk-ant-test-fake"
                assert r["response"]["status"] == 200 and r["response"]["usage"]
        truth = from_stream_json_files(tmp_path / f"{name}{k}.stdout.jsonl" for k in runs)
        assert truth.version == claude_cli.version
        wire = wire_of(records, truth.session_id)
        assert len(wire.requests) == posts
        assert {session_of(r) for r in records if r["method"] == "POST"} == {truth.session_id}
    tool = [json.loads(x) for x in (tmp_path / "n_tool.jsonl").read_text().splitlines()]
    (first,) = [r for r in tool if r["response"].get("kind") == "tool_use"]
    assert [b["name"] for b in first["response"]["content"] if b["type"] == "tool_use"] == ["Bash"]
