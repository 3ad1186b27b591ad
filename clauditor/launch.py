"""The `clauditor` executable: `statusline` straight away, everything else through click.

Claude Code runs `clauditor statusline` after every message of every session; importing
the full CLI (click, the Envoy and store modules, httpx) takes ~150 ms of a 50 ms budget.
"""

from __future__ import annotations

import sys


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["statusline"]:
        from clauditor.statusline import fast_main

        code = fast_main(args[1:])
        if code is not None:
            sys.exit(code)
    from clauditor.cli import main as cli_main

    cli_main()
