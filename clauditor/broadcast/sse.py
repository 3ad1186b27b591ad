"""`GET /watch`: the hub's events as a Server-Sent Events stream."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi.responses import JSONResponse, StreamingResponse

from clauditor.broadcast.hub import HubFull, WatchHub

PING = b": ping\n\n"
SSE_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # no proxy buffering in between
}


async def sse_frames(
    hub: WatchHub, session_id: str | None, heartbeat: float
) -> AsyncIterator[bytes]:
    """Snapshot first (preloaded), then live events; a comment when quiet. Everything
    queued goes out in one write. Subscribing here, not before the response starts, means
    the `finally` always runs for a registered subscriber (Starlette cancels this
    generator when the client disconnects)."""
    try:
        sub = hub.subscribe(session_id)
    except HubFull:
        return
    try:
        while True:
            batch = await sub.next_batch(heartbeat)
            yield b"".join(e.wire() for e in batch) if batch else PING
    finally:
        hub.unsubscribe(sub)


def watch_response(
    hub: WatchHub, session_id: str | None, heartbeat: float | None = None
) -> StreamingResponse | JSONResponse:
    if hub.subscribers >= hub.max_subscribers:
        detail = f"{hub.subscribers} watch subscribers already"
        return JSONResponse({"error": "too_many_watchers", "detail": detail}, status_code=503)
    return StreamingResponse(
        sse_frames(hub, session_id, heartbeat or hub.heartbeat),
        media_type="text/event-stream",
        headers=SSE_HEADERS,
    )
