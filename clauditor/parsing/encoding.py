"""Content-Encoding decoding for tapped bodies: identity, gzip, deflate; never raises.

Claude Code advertises br and zstd too, but the stdlib cannot decode them; such bodies
are reported as unsupported (no output) and the caller counts them.
"""

from __future__ import annotations

import zlib

_GZIP = frozenset({"gzip", "x-gzip"})
_IDENTITY = frozenset({"", "identity"})
# A decompression bomb stops at whichever bound it reaches first: the absolute size (no
# body Claude Code sends or Anthropic returns comes near it), or, past RATIO_FLOOR, an
# inflation ratio no JSON or SSE text reaches (zlib's own ceiling is ~1032:1; repetitive
# JSON compresses 10-100:1). The ratio bound stops a 1 MB bomb after a few MB of output
# instead of after the whole cap.
DEFAULT_MAX_OUTPUT = 64 * 1024 * 1024
DEFAULT_MAX_RATIO = 250
RATIO_FLOOR = 4 * 1024 * 1024
# Inflate at most this much per zlib call, so one small compressed chunk never turns into
# one huge allocation before the bounds are checked.
_STEP = 1024 * 1024


def _is_zlib_header(b0: int, b1: int) -> bool:
    # RFC 1950: CM=8 (deflate) and the 16-bit header is a multiple of 31.
    return (b0 & 0x0F) == 8 and (b0 >> 4) <= 7 and ((b0 << 8) | b1) % 31 == 0


class BodyDecoder:
    """Stream-decode one body. `supported` False: output nothing; `failed`: corrupt or too
    large, stopped; `too_large` tells the second apart (a decompression bomb)."""

    def __init__(
        self,
        content_encoding: str | None,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT,
        max_ratio: float = DEFAULT_MAX_RATIO,
    ) -> None:
        codings = [c.strip().lower() for c in (content_encoding or "").split(",") if c.strip()]
        codings = [c for c in codings if c not in _IDENTITY]
        self.failed = False
        self.too_large = False
        self.supported = True
        self._mode = "identity"
        self._left = max_output_bytes
        self._max_ratio = max_ratio
        self._in = 0  # compressed bytes consumed
        self._out = 0  # bytes inflated
        self._d: zlib._Decompress | None = None
        self._pending = b""  # deflate: bytes held until the header can be sniffed
        if not codings:
            return
        if len(codings) > 1:
            self.supported = False  # stacked codings: not worth the complexity
        elif codings[0] in _GZIP:
            self._mode = "gzip"
            self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif codings[0] == "deflate":
            self._mode = "deflate"  # zlib-wrapped or raw: decided on the first 2 bytes
        else:
            self.supported = False

    def feed(self, chunk: bytes) -> bytes:
        if self.failed or not self.supported or not chunk:
            return b""
        if self._mode == "identity":
            return chunk
        if self._d is None:
            chunk = self._pending + chunk
            if len(chunk) < 2:
                self._pending = chunk
                return b""
            self._pending = b""
            wbits = zlib.MAX_WBITS if _is_zlib_header(chunk[0], chunk[1]) else -zlib.MAX_WBITS
            self._d = zlib.decompressobj(wbits)
        return self._run(chunk)

    def _run(self, data: bytes) -> bytes:
        d = self._d
        assert d is not None
        out = bytearray()
        try:
            while data:
                piece = d.decompress(data, min(self._left + 1, _STEP))
                tail = d.unconsumed_tail
                self._in += len(data) - len(tail) - (len(d.unused_data) if d.eof else 0)
                self._out += len(piece)
                self._left -= len(piece)
                out += piece
                if self._bomb():
                    self.failed = self.too_large = True
                    return b""  # the caller drops the body anyway: free it now
                if tail:
                    data = tail  # more output waits in this input
                    continue
                if not d.eof:
                    break
                # A finished gzip member may be followed by another (RFC 1952).
                data = d.unused_data
                if self._mode != "gzip" or data[:2] != b"\x1f\x8b":
                    break  # trailing bytes after the stream: ignore them
                d = self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        except zlib.error:
            self.failed = True
        return bytes(out)

    def _bomb(self) -> bool:
        if self._left < 0:
            return True
        return self._out > RATIO_FLOOR and self._out > self._max_ratio * max(self._in, 1)

    def flush(self) -> bytes:
        if self.failed or not self.supported or self._mode == "identity":
            return b""
        if self._d is None:
            if not self._pending:
                return b""
            # A 1-byte deflate body cannot be valid.
            self._pending = b""
            self.failed = True
            return b""
        try:
            tail = self._d.flush()
        except zlib.error:
            self.failed = True
            return b""
        self._out += len(tail)
        self._left -= len(tail)
        if self._bomb():
            self.failed = self.too_large = True
            return b""
        return tail
