"""The fake Anthropic upstream in a process of its own, sized by the request it answers.

`python -m benchmarks.upstream [--port N]` prints `port N` once it listens, then serves
until SIGTERM / SIGINT. The newest user message says what to stream back:
`[[fake:events N]]` (total SSE events, >= 7) and `[[fake:delay S]]` (seconds between
events). Exchanges are not kept: bodies of up to 2 MB would pile up in memory.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

from clauditor.sim.exchange import Exchange
from clauditor.sim.replies import Reply, parse_directives
from clauditor.sim.server import FakeUpstream

# message_start, ping, content_block_start, content_block_stop, message_delta, message_stop
FRAME_EVENTS = 6
DELTA_CHARS = 24  # a text_delta of a few tokens, as Anthropic streams them
_WORDS = "the quick brown fox jumps over a lazy dog while Claude edits some code "


def _text(n_chars: int) -> str:
    return (_WORDS * (n_chars // len(_WORDS) + 1))[:n_chars]


def events_directive(payload: dict[str, Any]) -> int | None:
    """N from `[[fake:events N]]` in the newest user message's text blocks."""
    messages = payload.get("messages")
    if not isinstance(messages, list):
        return None
    for m in reversed(messages):
        if not isinstance(m, dict) or m.get("role") != "user":
            continue
        content = m.get("content")
        blocks = [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []
        text = "\n".join(str(b.get("text", "")) for b in blocks if b.get("type") == "text")
        for kind, args, _ in parse_directives(text):
            if kind == "events":
                try:
                    return max(FRAME_EVENTS + 1, int(args))
                except ValueError:
                    return None
        return None
    return None


class BenchUpstream(FakeUpstream):
    def _default_reply(self, payload: dict[str, Any], n: int, seen: int, stream: bool) -> Reply:
        reply = super()._default_reply(payload, n, seen, stream)
        events = events_directive(payload)
        if events is not None:
            deltas = events - FRAME_EVENTS
            reply.text = _text(deltas * DELTA_CHARS)
            reply.text_chunks = deltas
            reply.tool_calls = []
        return reply

    def _record(self, ex: Exchange) -> None:
        with self._cond:
            self._cond.notify_all()


async def serve(port: int) -> None:
    upstream = BenchUpstream(port=port, idle_timeout=3600.0)
    await upstream.start()
    print(f"port {upstream.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await upstream.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.port))
    sys.exit(0)


if __name__ == "__main__":
    main()
