"""SSEDecoder: WHATWG line/field rules at any chunk boundary."""

from __future__ import annotations

from clauditor.parsing.sse import SSEDecoder, SSEEvent


def feed_all(chunks: list[bytes], dec: SSEDecoder | None = None) -> list[SSEEvent]:
    dec = dec or SSEDecoder()
    out: list[SSEEvent] = []
    for c in chunks:
        out += dec.feed(c)
    return out + dec.flush()


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def test_basic_event_and_default_name() -> None:
    dec = SSEDecoder()
    events = dec.feed(b'event: ping\ndata: {"type":"ping"}\n\ndata: x\n\n')
    assert events == [SSEEvent("ping", '{"type":"ping"}'), SSEEvent("message", "x")]
    assert dec.events == 2
    assert dec.malformed == 0


def test_line_endings_lf_crlf_cr_mixed() -> None:
    data = b"event: a\r\ndata: 1\r\n\r\nevent: b\rdata: 2\r\revent: c\ndata: 3\n\n"
    expected = [SSEEvent("a", "1"), SSEEvent("b", "2"), SSEEvent("c", "3")]
    assert feed_all([data]) == expected
    assert feed_all(bytewise(data)) == expected


def test_crlf_split_between_chunks_is_one_line_end() -> None:
    # "\r" ends one chunk, "\n" starts the next: must not count as an extra blank line.
    events = feed_all([b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"])
    assert events == [SSEEvent("message", "a\nb")]


def test_comments_and_unknown_fields_ignored() -> None:
    data = b": keep-alive\nid: 7\nretry: 10\nfoo: bar\nevent: x\ndata: y\n\n:only comment\n\n"
    assert feed_all([data]) == [SSEEvent("x", "y")]


def test_one_leading_space_stripped_trailing_spaces_kept() -> None:
    data = b'data:  two\ndata:none\ndata: {"a":1}   \n\n'
    assert feed_all([data]) == [SSEEvent("message", ' two\nnone\n{"a":1}   ')]


def test_field_without_colon_and_empty_data() -> None:
    # "data" alone is a data line with an empty value: the event is dispatched with "".
    assert feed_all([b"data\n\n"]) == [SSEEvent("message", "")]
    assert feed_all([b"event: only-name\n\n"]) == []


def test_last_event_name_wins_and_resets_after_dispatch() -> None:
    data = b"event: a\nevent: b\ndata: 1\n\ndata: 2\n\n"
    assert feed_all([data]) == [SSEEvent("b", "1"), SSEEvent("message", "2")]


def test_split_utf8_character() -> None:
    data = "data: héllo 👋 wörld\n\n".encode()
    events = feed_all(bytewise(data))
    assert events == [SSEEvent("message", "héllo 👋 wörld")]


def test_invalid_utf8_is_replaced_and_counted() -> None:
    dec = SSEDecoder()
    events = dec.feed(b"data: a\xffb\n\n")
    assert events == [SSEEvent("message", "a\ufffdb")]
    assert dec.malformed == 1
    assert dec.events == 1


def test_flush_dispatches_final_event_without_blank_line() -> None:
    dec = SSEDecoder()
    assert dec.feed(b"event: message_stop\ndata: {}") == []
    assert dec.flush() == [SSEEvent("message_stop", "{}")]
    dec2 = SSEDecoder()
    assert dec2.feed(b"data: z\n") == []
    assert dec2.flush() == [SSEEvent("message", "z")]
    assert dec2.flush() == []


def test_bom_at_stream_start_is_ignored() -> None:
    assert feed_all([b"\xef\xbb\xbfevent: a\ndata: 1\n\n"]) == [SSEEvent("a", "1")]


def test_oversize_event_dropped_and_counted_then_recovers() -> None:
    dec = SSEDecoder(max_event_bytes=100)
    big = b"data: " + b"x" * 60 + b"\n"
    out = dec.feed(b"event: big\n" + big + big + b"\n" + b"event: ok\ndata: fine\n\n")
    assert out == [SSEEvent("ok", "fine")]
    assert dec.malformed == 1
    assert dec.events == 1


def test_oversize_unterminated_line_across_chunks() -> None:
    dec = SSEDecoder(max_event_bytes=1000)
    out: list[SSEEvent] = []
    out += dec.feed(b"data: ")
    for _ in range(50):
        out += dec.feed(b"y" * 100)  # one endless line, 5 KB
    out += dec.feed(b"\n")  # its tail: must not look like a blank line
    out += dec.feed(b"data: after-tail-same-event\n\n")
    out += dec.feed(b"data: next\n\n")
    assert out == [SSEEvent("message", "next")]
    assert dec.malformed == 1
    assert dec._partial_len == 0


def test_chunk_of_only_lf_after_cr() -> None:
    dec = SSEDecoder()
    assert dec.feed(b"data: a\r") == []
    assert dec.feed(b"\n") == []
    assert dec.feed(b"\r\n") == [SSEEvent("message", "a")]


def test_many_events_in_one_chunk_and_empty_chunks() -> None:
    dec = SSEDecoder()
    payload = b"".join(b"event: e\ndata: %d\n\n" % i for i in range(1000))
    assert dec.feed(b"") == []
    events = dec.feed(payload)
    assert len(events) == 1000
    assert events[999] == SSEEvent("e", "999")
    assert dec.events == 1000
