"""The gates of the README's test command: mypy in strict mode over the package, and the
layer rule as import-linter contracts in pyproject.toml, run on the package and on a copy
of it with one import against the flow, which they must catch (a gate that cannot fail
guards nothing)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def test_the_package_type_checks_strictly() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental"],  # [tool.mypy]: strict, clauditor/
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert run.stdout.startswith("Success: no issues found"), run.stdout


def _lint(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=cwd,
        env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_package_keeps_its_import_contracts() -> None:
    run = _lint(ROOT)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "Contracts: 4 kept, 0 broken." in run.stdout


def _copy(tmp_path: Path) -> None:
    shutil.copytree(
        ROOT / "clauditor", tmp_path / "clauditor", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")


def test_an_import_against_the_flow_breaks_the_contract(tmp_path: Path) -> None:
    _copy(tmp_path)
    # The parser reaching up into the tracker, and into the clock.
    (tmp_path / "clauditor" / "parsing" / "shortcut.py").write_text(
        "from clauditor.sessions.tracker import SessionTracker\n"
        "from clauditor.clock import SystemClock\n"
    )
    run = _lint(tmp_path)
    assert run.returncode == 1, run.stdout[-3000:]
    assert "clauditor.parsing is not allowed to import clauditor.sessions" in run.stdout
    assert "clauditor.parsing.shortcut -> clauditor.clock" in run.stdout
    assert "Contracts: 2 kept, 2 broken." in run.stdout


def test_the_simulator_reusing_the_parsers_breaks_the_contract(tmp_path: Path) -> None:
    _copy(tmp_path)
    # The fake's client reading responses with the parsers it is the oracle for; and the
    # product reaching down into the simulator.
    (tmp_path / "clauditor" / "sim" / "shortcut.py").write_text(
        "from clauditor.parsing.sse import SSEDecoder\n"
    )
    (tmp_path / "clauditor" / "api" / "shortcut.py").write_text(
        "from clauditor.sim.server import FakeUpstream\n"
    )
    run = _lint(tmp_path)
    assert run.returncode == 1, run.stdout[-3000:]
    assert "clauditor.sim.shortcut -> clauditor.parsing.sse" in run.stdout
    assert "clauditor.api is not allowed to import clauditor.sim" in run.stdout
    assert "Contracts: 2 kept, 2 broken." in run.stdout


def test_the_api_reaching_for_the_core_breaks_the_contract(tmp_path: Path) -> None:
    _copy(tmp_path)
    # Even for a type only: the API takes api.deps' protocols, never the Core.
    (tmp_path / "clauditor" / "api" / "shortcut.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from clauditor.core import Core\n"
    )
    run = _lint(tmp_path)
    assert run.returncode == 1, run.stdout[-3000:]
    assert "clauditor.api is not allowed to import clauditor.core" in run.stdout
    assert "clauditor.api.shortcut -> clauditor.core" in run.stdout
    assert "Contracts: 2 kept, 2 broken." in run.stdout
