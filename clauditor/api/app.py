"""The HTTP side: health, JSON APIs over live and stored sessions."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import PlainTextResponse, Response
from starlette.middleware.trustedhost import TrustedHostMiddleware

from clauditor.api import openapi
from clauditor.api.deps import ApiDeps
from clauditor.api.guard import CrossOriginGuard
from clauditor.api.openapi import METRICS_RESPONSES, WATCH_RESPONSES, errors
from clauditor.api.responses import SafeJSONResponse
from clauditor.api.schemas import (
    AlertsOut,
    ClientViewAnswerOut,
    DiagnosisOut,
    ModelsOut,
    RecallOut,
    ReportOut,
    SessionDetailOut,
    SessionListOut,
    StatsOut,
    StatuslineMissingOut,
    StatuslineOut,
    SummaryOut,
)
from clauditor.broadcast.sse import watch_response
from clauditor.clock import iso
from clauditor.sessions.client_view import apply_client_view, needs_you_elsewhere, statusline_view
from clauditor.sessions.ids import AmbiguousSession, SessionIdError, UnknownSession
from clauditor.store.trends import DEFAULT_DAYS, MAX_DAYS

SESSION_STATUSES = ("active", "idle", "ended")
CLIENT_VIEW_MAX_BYTES = 64 * 1024  # Claude Code's whole status-line payload is ~2 KB


def _id_error(exc: SessionIdError) -> SafeJSONResponse:
    """404 for an id that names no session, 409 (with the candidates) for an ambiguous one."""
    if isinstance(exc, AmbiguousSession):
        body = {"error": "ambiguous", "detail": str(exc), "candidates": exc.candidates}
        return SafeJSONResponse(body, status_code=409)
    return SafeJSONResponse({"error": "not_found", "detail": str(exc)}, status_code=404)


def _statusline(deps: ApiDeps, session_id: str) -> Any:
    """The status line's view of a live session; 404 (with how many others need the user)
    for one the core has not seen: the status line runs before the first request."""
    sessions = deps.tracker.sessions
    others = needs_you_elsewhere(sessions.values(), session_id)
    session = sessions.get(session_id)
    if session is None:
        body = {"error": "not_found", "detail": "no live session", "needs_you_others": others}
        return SafeJSONResponse(body, status_code=404)
    requests = deps.tracker.recent_requests(session_id)
    return statusline_view(session, requests, others, deps.clock.now())


def create_app(deps: ApiDeps) -> FastAPI:
    app = FastAPI(
        title="clauditor",
        version=deps.version,
        docs_url="/docs",
        redoc_url=None,
        default_response_class=SafeJSONResponse,
    )
    # No CORS, and browser requests from another origin are refused (added first, so it
    # runs after the Host check below).
    app.add_middleware(CrossOriginGuard)
    # DNS-rebinding guard: a web page cannot reach the API through a hostile name.
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(deps.allowed_hosts))

    @app.get("/health", response_class=PlainTextResponse)
    async def health() -> str:
        return "ok"

    @app.get("/api/sessions", response_model=SessionListOut)
    async def sessions(
        limit: int = Query(50, ge=1, le=1000),
        days: float | None = Query(None, gt=0),
        status: str | None = Query(None, pattern="^(active|idle|ended)$"),
    ) -> dict[str, Any]:
        return {"sessions": await deps.queries.sessions(limit, days, status)}

    @app.get(
        "/api/sessions/{session_id}",
        response_model=SessionDetailOut,
        responses=errors(404, 409),
    )
    async def session_detail(session_id: str) -> Any:
        """One session by its id or a unique prefix of at least 4 characters."""
        try:
            session_id = await deps.queries.resolve(session_id)
        except SessionIdError as exc:
            return _id_error(exc)
        found = await deps.queries.detail(session_id)
        if found is None:
            return _id_error(UnknownSession(f"no session {session_id!r}"))
        return found

    @app.get(
        "/api/statusline/{session_id}",
        response_model=StatuslineOut,
        responses={404: {"model": StatuslineMissingOut, "description": "no live session"}},
    )
    async def statusline(session_id: str) -> Any:
        """What `clauditor statusline` shows for a live session (its full id)."""
        return _statusline(deps, session_id)

    @app.post(
        "/api/sessions/{session_id}/client_view",
        response_model=ClientViewAnswerOut,
        responses={
            404: {"model": StatuslineMissingOut, "description": "no live session"},
            **errors(400, 413, 415),
        },
    )
    async def client_view(session_id: str, request: Request) -> Any:
        """Claude Code's own numbers (its status-line payload, or the accounting part of
        it) kept on the live session as `client_view`, with `client_drift`; the answer also
        holds the status line's view, so the command needs one round trip."""
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            # No form or text/plain POST, the kinds a web page may send without asking.
            body = {"error": "unsupported_media_type", "detail": "send application/json"}
            return SafeJSONResponse(body, status_code=415)
        raw = await request.body()
        if len(raw) > CLIENT_VIEW_MAX_BYTES:
            body = {"error": "too_large", "detail": f"over {CLIENT_VIEW_MAX_BYTES} bytes"}
            return SafeJSONResponse(body, status_code=413)
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            body = {"error": "bad_request", "detail": "the body is not a JSON object"}
            return SafeJSONResponse(body, status_code=400)
        session = deps.tracker.sessions.get(session_id)
        if session is not None:
            apply_client_view(session, payload, deps.clock.now())
        answer = _statusline(deps, session_id)
        if session is None:
            return answer
        return {
            "client_view": session.client_view,
            "client_drift": session.client_drift,
            "statusline": answer,
        }

    @app.get("/api/stats", response_model=StatsOut)
    async def stats() -> dict[str, Any]:
        return deps.stats()

    @app.get("/api/summary", response_model=SummaryOut)
    async def summary() -> dict[str, Any]:
        """Totals for today / this week / this month (UTC), the quota and weekly views."""
        now = deps.clock.now()
        signals = deps.tracker.signals
        return {
            "generated_at": iso(now),
            **await deps.history.summary(now),
            "quota": signals.quota_view(),
            "weekly": signals.weekly_view(),
            "compaction_thresholds": signals.learned_thresholds(),
        }

    @app.get("/api/alerts", response_model=AlertsOut)
    async def alerts() -> dict[str, Any]:
        """Alerts still open (their episode has not cleared) and the recent ones."""
        return deps.alerts.view()

    @app.get("/api/models", response_model=ModelsOut)
    async def models() -> dict[str, Any]:
        """The model catalog (rates in force now) and the models seen that it lacks."""
        from clauditor.reports.models import models_report

        prices = deps.tracker.signals.prices
        return models_report(prices, await deps.history.models_seen(), deps.clock.now())

    @app.get("/api/report", response_model=ReportOut)
    async def report(
        days: int = Query(DEFAULT_DAYS, ge=1, le=MAX_DAYS),
        by: str = Query("day", pattern="^(day|model|project)$"),
    ) -> dict[str, Any]:
        """`clauditor report`: cost, tokens, cache, latency and time of the last days."""
        return await deps.history.report(days, by, deps.clock.now())

    @app.get("/metrics", response_class=Response, responses=METRICS_RESPONSES)
    async def metrics(request: Request) -> Response:
        # The OTel metrics (clauditor_*, gen_ai_*) through the Prometheus exporter; on the
        # event loop, so the gauges read the tracker between two events, never mid-update.
        accept = request.headers.get("accept")
        body, content_type = deps.metrics(accept) or (b"", "text/plain")
        return Response(body, media_type=content_type)

    @app.get("/watch", response_class=Response, responses=WATCH_RESPONSES)
    async def watch(
        session: str | None = Query(None, min_length=1, max_length=200),
        # Tests shorten the 15 s heartbeat; bounded so a client cannot make it a busy loop.
        heartbeat: float | None = Query(None, ge=0.05, le=60),
    ) -> Any:
        """Live events as Server-Sent Events: a snapshot, the last seconds, then live."""
        if session is not None:
            try:
                session = await deps.queries.resolve(session)
            except AmbiguousSession as exc:
                return _id_error(exc)
            except UnknownSession:
                pass  # not seen yet: its events will come when it starts
        return watch_response(deps.watch, session, heartbeat)

    @app.get("/api/recall", response_model=RecallOut)
    async def recall(
        q: str = Query(..., min_length=1, max_length=500),
        limit: int = Query(10, ge=1, le=100),
        days: float | None = Query(None, gt=0),
    ) -> dict[str, Any]:
        return {"query": q, "sessions": await deps.history.recall(q, limit=limit, days=days)}

    @app.get("/api/diagnosis/{session_id}", response_model=DiagnosisOut, responses=errors(404, 409))
    async def diagnosis(session_id: str) -> Any:
        try:
            session_id = await deps.queries.resolve(session_id)
        except SessionIdError as exc:
            return _id_error(exc)
        found = await deps.history.diagnosis(session_id)
        if found is None:
            return _id_error(UnknownSession(f"no session {session_id!r}"))
        return found

    openapi.install(app)
    return app
