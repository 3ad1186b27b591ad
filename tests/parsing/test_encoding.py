"""BodyDecoder: identity, gzip, deflate (zlib and raw), unsupported and corrupt input."""

from __future__ import annotations

import gzip
import zlib

import pytest

from clauditor.parsing.encoding import BodyDecoder

PAYLOAD = b'{"hello": "world"}' * 500


def decode_in_chunks(dec: BodyDecoder, data: bytes, size: int) -> bytes:
    out = b"".join(dec.feed(data[i : i + size]) for i in range(0, len(data), size))
    return out + dec.flush()


def raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


@pytest.mark.parametrize("coding", [None, "", "identity", " Identity "])
def test_identity_passthrough(coding: str | None) -> None:
    dec = BodyDecoder(coding)
    assert dec.feed(b"abc") == b"abc"
    assert dec.flush() == b""
    assert (dec.supported, dec.failed) == (True, False)


@pytest.mark.parametrize(
    ("coding", "encoded"),
    [
        ("gzip", gzip.compress(PAYLOAD)),
        ("x-gzip", gzip.compress(PAYLOAD)),
        ("GZIP", gzip.compress(PAYLOAD)),
        ("deflate", zlib.compress(PAYLOAD)),
        ("deflate", raw_deflate(PAYLOAD)),
        ("gzip, identity", gzip.compress(PAYLOAD)),
    ],
)
@pytest.mark.parametrize("size", [1, 7, 4096])
def test_compressed_any_chunking(coding: str, encoded: bytes, size: int) -> None:
    dec = BodyDecoder(coding)
    assert decode_in_chunks(dec, encoded, size) == PAYLOAD
    assert (dec.supported, dec.failed) == (True, False)


def test_multi_member_gzip() -> None:
    data = gzip.compress(b"part one,") + gzip.compress(b"part two")
    assert decode_in_chunks(BodyDecoder("gzip"), data, 5) == b"part one,part two"


@pytest.mark.parametrize("coding", ["br", "zstd", "compress", "gzip, br", "weird"])
def test_unsupported_outputs_nothing(coding: str) -> None:
    dec = BodyDecoder(coding)
    assert dec.feed(b"\x1f\x8b whatever") == b""
    assert dec.flush() == b""
    assert (dec.supported, dec.failed) == (False, False)


def test_corrupt_gzip_fails_and_stops() -> None:
    dec = BodyDecoder("gzip")
    assert dec.feed(b"this is not gzip at all") == b""
    assert dec.failed is True
    assert dec.feed(gzip.compress(b"later")) == b""
    assert dec.flush() == b""


def test_corrupt_after_valid_prefix_keeps_what_was_decoded() -> None:
    good = zlib.compress(PAYLOAD)
    bad_tail = good[30:-4] + b"\x00\x00\x00\x00"  # wrong Adler-32 checksum
    dec = BodyDecoder("deflate")
    first = dec.feed(good[:30])
    rest = dec.feed(bad_tail)
    assert dec.failed is True
    assert len(first) > 0
    assert PAYLOAD.startswith(first + rest)
    assert dec.feed(b"more") == b""


def test_one_byte_deflate_body_fails_at_flush() -> None:
    dec = BodyDecoder("deflate")
    assert dec.feed(b"x") == b""
    assert dec.flush() == b""
    assert dec.failed is True


def test_decompression_bomb_is_cut() -> None:
    bomb = gzip.compress(b"\0" * 2_000_000)
    dec = BodyDecoder("gzip", max_output_bytes=100_000)
    out = decode_in_chunks(dec, bomb, 65536)
    assert dec.failed is True
    assert len(out) <= 100_001
