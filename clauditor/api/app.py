"""The HTTP side: health, JSON APIs over live and stored sessions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Query
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.middleware.trustedhost import TrustedHostMiddleware

if TYPE_CHECKING:
    from clauditor.core import Core

SESSION_STATUSES = ("active", "idle", "ended")


def _days_ok(session: dict[str, Any], cutoff: str | None) -> bool:
    return cutoff is None or (session["last_activity_at"] or "") >= cutoff


def create_app(core: Core) -> FastAPI:
    app = FastAPI(title="clauditor", version=core.version, docs_url="/docs", redoc_url=None)
    # DNS-rebinding guard: a web page cannot reach the API through a hostile name.
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(core.config.allowed_hosts))

    @app.get("/health", response_class=PlainTextResponse)
    async def health() -> str:
        return "ok"

    @app.get("/api/sessions")
    async def sessions(
        limit: int = Query(50, ge=1, le=1000),
        days: float | None = Query(None, gt=0),
        status: str | None = Query(None, pattern="^(active|idle|ended)$"),
    ) -> dict[str, Any]:
        cutoff = core.cutoff_iso(days)
        live = [
            s.as_api()
            for s in core.tracker.sessions.values()
            if (status is None or s.status == status)
        ]
        live = [s for s in live if _days_ok(s, cutoff)]
        seen = {s["session_id"] for s in live}
        stored = await core.store.list_sessions(limit=limit + len(seen), days=days, status=status)
        merged = live + [s for s in stored if s["session_id"] not in seen]
        merged.sort(key=lambda s: s["last_activity_at"] or "", reverse=True)
        return {"sessions": merged[:limit]}

    @app.get("/api/sessions/{session_id}")
    async def session_detail(session_id: str) -> Any:
        live = core.live_detail(session_id)
        if live is not None:
            return live
        stored = await core.store.session_detail(session_id)
        if stored is None:
            return JSONResponse(
                {"error": "not_found", "detail": f"no session {session_id!r}"}, status_code=404
            )
        return stored

    @app.get("/api/stats")
    async def stats() -> dict[str, Any]:
        return core.stats()

    return app
