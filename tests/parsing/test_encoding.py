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


def _zeros_gzip(inflated: int) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\0" * (1 << 20)
    return b"".join(c.compress(block) for _ in range(inflated // len(block))) + c.flush()


@pytest.mark.parametrize("size", [1 << 20, 64 * 1024, 1500])
def test_gzip_bomb_stops_early_in_bounded_memory(size: int) -> None:
    """1 MB that inflates to 1 GiB: stopped by the ratio bound a few MB in, whatever the
    chunking, and never one allocation the size of the whole output."""
    import tracemalloc

    bomb = _zeros_gzip(1 << 30)
    dec = BodyDecoder("gzip")
    tracemalloc.start()
    try:
        total = 0
        for i in range(0, len(bomb), size):
            total += len(dec.feed(bomb[i : i + size]))
            if dec.failed:
                break
        total += len(dec.flush())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (dec.failed, dec.too_large) == (True, True)
    assert total < 8 << 20
    assert peak < 32 << 20
    assert dec.feed(b"more") == b""


def test_absolute_cap_without_a_high_ratio() -> None:
    """Random-ish data compresses little: the ratio bound never trips, the cap does."""
    import random

    rng = random.Random(7)
    data = bytes(rng.getrandbits(8) for _ in range(1 << 16)) * 40  # 2.5 MiB, ratio ~40
    dec = BodyDecoder("gzip", max_output_bytes=1 << 20)
    out = decode_in_chunks(dec, gzip.compress(data), 4096)
    assert (dec.failed, dec.too_large) == (True, True)
    assert len(out) <= 1 << 20


def test_compressible_json_under_the_bounds_decodes() -> None:
    """A real body can compress well (repeated tool output): below the floor it is kept."""
    data = b'{"type": "text", "text": "the same line of a log file"}, ' * 60_000  # 3.4 MB
    encoded = gzip.compress(data)
    assert len(data) / len(encoded) > 250  # above the ratio, below the floor
    dec = BodyDecoder("gzip")
    assert decode_in_chunks(dec, encoded, 16384) == data
    assert (dec.failed, dec.too_large) == (False, False)
