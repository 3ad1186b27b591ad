"""The one root of what clauditor raises on purpose: an error with a message that says, in
one line, what went wrong and what to do. The CLI maps it to `clauditor: <message>` and
exit 1 (clauditor/cli.py); anything else is a bug and keeps its traceback.

    ClauditorError
    ├── AddressError (ValueError)         a listen / upstream address that cannot be used
    │   └── UpstreamError                 --upstream: not a URL, port out of range...
    ├── PriceError (ValueError)           a --prices file that cannot be read or is wrong
    ├── RuntimeDirError                   clauditor's private runtime directory
    ├── StoreError                        the database file cannot be used
    │   └── SchemaTooNew                  written by a newer clauditor: kept, not migrated
    ├── CoreError                         the core cannot start (ports, database...)
    ├── UpError                           `clauditor up`: Envoy or the core would not run
    ├── SessionIdError (LookupError)      an id or prefix that names no single session
    │   ├── UnknownSession
    │   └── AmbiguousSession              lists the candidates
    ├── SourceError                       neither the core nor the database can answer
    │   └── NotFound
    ├── WatchUnavailable                  `clauditor watch`: the core is not reachable
    ├── TmuxError                         `watch --tmux`: tmux missing or refusing
    ├── JumpError                         `clauditor jump`: no pane to go to
    └── HubFull                           too many /watch subscribers

(`clauditor statusline` keeps its own small error inside its stdlib-only path: it never
escapes, the status line always prints.)
"""

from __future__ import annotations


class ClauditorError(Exception):
    """Something clauditor reports in one line; see the tree above."""
