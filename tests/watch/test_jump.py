"""`clauditor jump`: the tmux commands that land in a session's pane."""

from __future__ import annotations

import pytest

from clauditor.watch.jump import JumpError, jump_commands, tmux_target


def test_a_pane_claude_code_names_becomes_tmux_targets() -> None:
    assert tmux_target("cc:@3.%12") == ("cc", "@3", "%12")
    assert jump_commands("cc:@3.%12", inside_tmux=True) == [
        ["tmux", "switch-client", "-t", "cc"],
        ["tmux", "select-window", "-t", "@3"],
        ["tmux", "select-pane", "-t", "%12"],
    ]
    assert jump_commands("cc:@3.%12", inside_tmux=False)[-1] == [
        "tmux",
        "attach-session",
        "-t",
        "cc",
    ]


@pytest.mark.parametrize("bad", ["", "cc", "cc:@3", "cc:3.%1", "cc:@3.1"])
def test_anything_else_is_a_clear_error(bad: str) -> None:
    with pytest.raises(JumpError, match="not a tmux pane"):
        tmux_target(bad)
