"""PaneManager and PaneTitle against a fake tmux: cap, overflow, titles, cleanup by id."""

from __future__ import annotations

from typing import Any

from clauditor.watch.state import WatchState
from clauditor.watch.tmux import PaneManager, PaneTitle
from tests.watch.conftest import ev


class FakeTmux:
    """Enough of tmux for the pane manager: panes, titles, splits, kills."""

    def __init__(self, room: int = 100) -> None:
        self.panes: dict[str, str] = {"%0": ""}  # pane id -> title
        self.calls: list[tuple[str, ...]] = []
        self.room = room  # splits that fit
        self.commands: dict[str, str] = {}

    def __call__(self, *args: str, check: bool = True) -> str:
        self.calls.append(args)
        cmd = args[0]
        if cmd == "display-message":
            return "@1" if args[-1] == "#{window_id}" else "50"
        if cmd == "list-panes":
            if args[-1] == "#{pane_id}":
                return "\n".join(self.panes)
            return "\n".join(f"{p} 100 20" for p in self.panes)
        if cmd == "split-window":
            if self.room <= 0:
                from clauditor.watch.tmux import TmuxError

                raise TmuxError("no space for new pane")
            self.room -= 1
            pane = f"%{len(self.calls)}"
            self.panes[pane] = ""
            self.commands[pane] = args[-1]
            return pane
        if cmd == "select-pane" and "-T" in args:
            self.panes[args[args.index("-t") + 1]] = args[args.index("-T") + 1]
        if cmd == "kill-pane":
            self.panes.pop(args[-1], None)
        return ""


def state_with(*sessions: tuple[str, str]) -> WatchState:
    state = WatchState()
    for sid, name in sessions:
        state.apply(ev("session_start", sid, 0, name=name, model="claude-opus-4-8"))
    return state


def manager(tmux: Any, cap: int = 2) -> PaneManager:
    return PaneManager(tmux, "http://127.0.0.1:9091", "%0", cap=cap, command=["clauditor"])


def test_one_pane_per_live_session_up_to_the_cap() -> None:
    tmux = FakeTmux()
    m = manager(tmux, cap=2)
    m.setup()
    state = state_with(("s1", "one"), ("s2", "two"), ("s3", "three"))
    m.sync(state)
    assert sorted(tmux.panes.values()) == [
        "clauditor · overview",
        "one · opus-4-8 · s1",
        "two · opus-4-8 · s2",
    ]
    assert m.overflow == ["three"]
    pane = m.panes["s1"]
    assert tmux.commands[pane] == ("clauditor watch --session s1 --url http://127.0.0.1:9091")
    m.sync(state)  # idempotent
    assert len(tmux.panes) == 3

    # An ended session's pane makes room for a waiting one.
    state.apply(ev("session_end", "s1", 5))
    m.sync(state)
    assert "s1" not in m.panes and "s3" in m.panes
    assert m.overflow == []


def test_close_all_kills_only_its_own_panes() -> None:
    tmux = FakeTmux()
    tmux.panes["%99"] = "the user's own pane"
    m = manager(tmux)
    m.sync(state_with(("s1", "one")))
    m.close_all()
    assert set(tmux.panes) == {"%0", "%99"}
    killed = [c[-1] for c in tmux.calls if c[0] == "kill-pane"]
    assert killed and "%99" not in killed and "%0" not in killed


def test_no_room_means_listed_in_the_overview() -> None:
    tmux = FakeTmux(room=1)
    m = manager(tmux, cap=8)
    m.sync(state_with(("s1", "one"), ("s2", "two")))
    assert list(m.panes) == ["s1"] and m.overflow == ["two"]


def test_pane_marks_itself_ended() -> None:
    tmux = FakeTmux()
    title = PaneTitle(tmux, "%0", "s1")  # type: ignore[arg-type]
    state = state_with(("s1", "one"))
    title(state)
    title(state)  # unchanged: no tmux call
    state.apply(ev("session_end", "s1", 5))
    title(state)
    sets = [c for c in tmux.calls if c[0] == "select-pane"]
    assert [c[-1] for c in sets] == ["one · opus-4-8 · s1", "one · opus-4-8 · s1 · ended"]


class SizedTmux(FakeTmux):
    def __init__(self, width: int, height: int) -> None:
        super().__init__()
        self.size = f"{width} {height}"

    def __call__(self, *args: str, check: bool = True) -> str:
        if args[0] == "display-message" and args[-1] == "#{window_width} #{window_height}":
            return self.size
        return super().__call__(*args, check=check)


def test_only_the_panes_that_fit_open_and_two_sessions_never_share_a_title() -> None:
    small = SizedTmux(80, 24)
    m = manager(small, cap=8)
    assert m.fits() == 2  # 80x24: two readable panes beside the overview
    names = [(f"s{i}", "same prompt") for i in range(5)]
    m.sync(state_with(*names))
    assert len(m.panes) == 2 and m.overflow == ["same prompt"] * 3
    titles = [t for p, t in small.panes.items() if p != "%0"]
    assert len(set(titles)) == len(titles) == 2
    assert manager(SizedTmux(220, 50), cap=8).fits() == 8
