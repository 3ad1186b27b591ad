"""Which real Claude Code CLIs the tests run, one pytest parameter per version.

- `CLAUDE_BINS="2.1.197=/abs/claude,2.1.332=/abs/claude"` (what `.ci/run` exports): one CLI
  per version; each binary's `--version` must say that version.
- else `CLAUDE_BIN`, or `claude` on PATH: a single CLI, labelled by its own `--version`.
- `CLAUDITOR_REQUIRE_CLAUDE=1` (CI): every version in clauditor/data/claude_code.json
  `verified_versions` must be there; a missing one fails instead of skipping.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from clauditor.sim.claude_cli import cli_version

CATALOG = Path(__file__).resolve().parents[2] / "clauditor" / "data" / "claude_code.json"


@dataclass(frozen=True)
class Cli:
    version: str
    binary: str | None = None
    problem: str | None = None  # why it cannot run (skip, or fail when required)


def verified_versions() -> list[str]:
    return list(json.loads(CATALOG.read_text())["verified_versions"])


def required() -> bool:
    return bool(os.environ.get("CLAUDITOR_REQUIRE_CLAUDE"))


def parse_bins(value: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in value.split(","):
        version, sep, path = item.strip().partition("=")
        if sep and version.strip() and path.strip():
            out[version.strip()] = path.strip()
    return out


@functools.cache
def _version_of(binary: str) -> str | None:
    try:
        return cli_version(binary)
    except (OSError, RuntimeError, ValueError):
        return None


@functools.lru_cache(maxsize=1)
def configured() -> tuple[Cli, ...]:
    bins = parse_bins(os.environ.get("CLAUDE_BINS", ""))
    clis: list[Cli] = []
    if bins:
        for version, binary in bins.items():
            if not Path(binary).exists():
                clis.append(Cli(version, None, f"CLAUDE_BINS: {binary} does not exist"))
            elif (found := _version_of(binary)) != version:
                clis.append(Cli(version, None, f"CLAUDE_BINS: {binary} --version says {found}"))
            else:
                clis.append(Cli(version, binary))
    else:
        single = os.environ.get("CLAUDE_BIN") or shutil.which("claude")
        if single and Path(single).exists():
            found = _version_of(single)
            clis.append(
                Cli(found, single) if found else Cli("unknown", None, f"{single} --version failed")
            )
    if required():
        have = {c.version for c in clis}
        clis += [
            Cli(v, None, f"verified version {v} is not in CLAUDE_BINS / CLAUDE_BIN")
            for v in verified_versions()
            if v not in have
        ]
    if not clis:
        clis.append(Cli("none", None, "Claude Code CLI not installed (CLAUDE_BINS, CLAUDE_BIN)"))
    return tuple(clis)


def usable(cli: Cli) -> Cli:
    """cli if it can run; else skip, or fail when CLAUDITOR_REQUIRE_CLAUDE is set."""
    if cli.binary is None:
        if required():
            pytest.fail(f"CLAUDITOR_REQUIRE_CLAUDE is set: {cli.problem}")
        pytest.skip(cli.problem or "no Claude Code CLI")
    return cli
