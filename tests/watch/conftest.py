from __future__ import annotations

from io import StringIO
from typing import Any

from rich.console import Console, RenderableType

from clauditor.clock import iso

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z
A = "aaaaaaaa-1111-4111-8111-111111111111"
B = "bbbbbbbb-2222-4222-8222-222222222222"
C = "cccccccc-3333-4333-8333-333333333333"


def ev(type_: str, sid: str | None, at: float, /, **fields: Any) -> dict[str, Any]:
    """A /watch event as the core sends it, at T0 + at seconds."""
    return {"type": type_, "session_id": sid, "ts": iso(T0 + at), "seq": 0, **fields}


def text(renderable: RenderableType, width: int = 100) -> str:
    """Render into a StringIO console of fixed width, no colour; right-stripped lines."""
    out = StringIO()
    Console(file=out, width=width, color_system=None, legacy_windows=False).print(renderable)
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines())
