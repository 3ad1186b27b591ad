"""The ext_proc token: how Envoy proves to the core that a side stream comes from it.

The core's gRPC port is on loopback, but any local process can open a stream there and
inject forged exchanges (sessions, a made-up cost). `up` makes a random token per start,
renders it into Envoy's ext_proc `grpc_service.initial_metadata` (a 0600 file) and hands
it to the core in its environment (never on a command line, which every user can read).
The core then refuses every stream without it. Kept free of grpc imports: the CLI and
the Envoy config renderer use it too.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterable

TOKEN_METADATA = "x-clauditor-token"  # gRPC metadata keys are lower case
TOKEN_ENV = "CLAUDITOR_EXT_PROC_TOKEN"


def new_token() -> str:
    return secrets.token_urlsafe(32)


def presented(metadata: Iterable[tuple[str, str | bytes]] | None) -> bytes:
    """The token a stream's metadata carries (the last one if several), b"" if none."""
    sent = b""
    for key, value in metadata or ():
        if key == TOKEN_METADATA:
            sent = value.encode() if isinstance(value, str) else bytes(value)
    return sent


def matches(sent: bytes, expected: bytes) -> bool:
    return hmac.compare_digest(sent, expected)  # constant time: no guessing by timing
