"""`clauditor watch --tmux` in a real tmux server (its own -L socket), read with capture-pane."""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from clauditor.sim.claude import SyntheticSession
from tests.helpers import wait_until
from tests.integration.stack import Stack

# CI installs tmux and sets CLAUDITOR_REQUIRE_TMUX: there a missing tmux fails, not skips.
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("tmux") is None and not os.environ.get("CLAUDITOR_REQUIRE_TMUX"),
        reason="tmux is not installed (apt-get install tmux)",
    ),
]

A = "a1000000-0000-4000-8000-0000000000a1"
B = "b2000000-0000-4000-8000-0000000000b2"


class TmuxServer:
    def __init__(self, tmp: Path) -> None:
        self.socket = f"clauditor-test-{os.getpid()}-{tmp.name}"[:90]
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TMUX")}
        self.env.update(LANG="C.UTF-8", LC_ALL="C.UTF-8", TERM="xterm-256color")

    def __call__(self, *args: str, check: bool = True) -> str:
        proc = subprocess.run(
            ["tmux", "-u", "-L", self.socket, "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=10,
            check=False,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"tmux {args}: {proc.stderr}")
        return proc.stdout

    def panes(self) -> dict[str, str]:
        out = self("list-panes", "-a", "-F", "#{pane_id}\t#{pane_title}", check=False)
        return dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)

    def capture(self, pane: str) -> str:
        return self("capture-pane", "-p", "-t", pane, check=False)


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[TmuxServer]:
    server = TmuxServer(tmp_path)
    yield server
    server("kill-server", check=False)


def drive(stack: Stack) -> None:
    async def one(sid: str, prompts: list[str]) -> None:
        async with SyntheticSession(stack.proxy_url, session_id=sid) as s:
            for prompt in prompts:
                await s.turn(prompt)

    async def main() -> None:
        await asyncio.gather(
            one(A, ['list the temp dir [[fake:tool Bash {"command": "ls -la /tmp"}]]']),
            one(
                B,
                [
                    'read the entry point [[fake:tool Read {"file_path": "/srv/app/main.py"}]]',
                    "now explain it",
                ],
            ),
        )

    asyncio.run(main())


def test_one_pane_per_session_with_titles_and_tool_calls(stack: Stack, tmux: TmuxServer) -> None:
    command = shlex.join(
        [sys.executable, "-m", "clauditor", "watch", "--tmux", "--url", stack.api_url]
    )
    tmux("new-session", "-d", "-s", "watch", "-x", "220", "-y", "50", command)
    overview = next(iter(tmux.panes()))
    wait_until(lambda: "clauditor watch --tmux" in tmux.capture(overview), timeout=15)

    drive(stack)
    titles = {
        A: f"list the temp dir · opus-4-8 · {A[:8]}",
        B: f"read the entry point · opus-4-8 · {B[:8]}",
    }
    panes = wait_until(
        lambda: (p := tmux.panes()) and set(titles.values()) <= set(p.values()) and p,
        timeout=20,
    )
    assert len(panes) == 3
    assert panes[overview] == "clauditor · overview"
    by_title = {title: pane for pane, title in panes.items()}
    a_pane, b_pane = by_title[titles[A]], by_title[titles[B]]

    wait_until(lambda: "Bash ls -la /tmp" in tmux.capture(a_pane), timeout=15)
    wait_until(lambda: "Read /srv/app/main.py" in tmux.capture(b_pane), timeout=15)
    a_text, b_text = tmux.capture(a_pane), tmux.capture(b_pane)
    assert "list the temp dir" in a_text and "/srv/app/main.py" not in a_text
    assert "read the entry point" in b_text and "turn 2" in b_text
    over = wait_until(lambda: (t := tmux.capture(overview)) and "read the entry" in t and t)
    assert "list the temp dir" in over and "2 sessions" in over

    # Ctrl-C in the overview closes the panes it created (and so its own window).
    tmux("send-keys", "-t", overview, "C-c")
    wait_until(lambda: not (set(tmux.panes()) & {a_pane, b_pane}), timeout=15)
