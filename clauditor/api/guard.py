"""The API is for this machine's tools, never for web pages: no cross-origin requests.

The Host check (TrustedHostMiddleware, in app.py) stops DNS rebinding; this stops a page
from another origin, e.g. a site open in the browser, from calling the API on loopback:
a request with an `Origin` other than the API's own, or that the browser marks as
cross-site (`Sec-Fetch-Site`), gets 403 and no CORS header. CORS preflights (OPTIONS
with `Access-Control-Request-Method`) are refused alike, so no browser ever lets a
foreign page read a response. curl, `clauditor watch` and Prometheus send neither header.
"""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

_FOREIGN_SITES = (b"cross-site", b"same-site")  # same-site: another port of this host


# Headers this guard (or the Host check) decides on: one of each, or the request is refused.
# With two, one reader could take the first and another the last (Starlette's Host check
# reads the first, a dict the last), so a request could pass each check with a different one.
_SINGLE = (b"origin", b"host", b"sec-fetch-site")


def _refusal(scope: Scope) -> str | None:
    """Why a request is refused, or None."""
    raw = scope.get("headers") or []
    for name in _SINGLE:
        if sum(1 for key, _ in raw if key == name) > 1:
            return f"more than one {name.decode().title()} header"
    headers = dict(raw)
    origin = headers.get(b"origin")
    if origin is not None:
        host = headers.get(b"host", b"")
        if origin.lower() != b"http://" + host.lower():
            return "cross-origin requests are not allowed"
    if headers.get(b"sec-fetch-site", b"").lower() in _FOREIGN_SITES:
        return "cross-site requests are not allowed"
    if scope.get("method") == "OPTIONS" and b"access-control-request-method" in headers:
        return "CORS preflight requests are not allowed"
    return None


class CrossOriginGuard:
    """ASGI middleware: 403 for browser requests from another origin (and preflights)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            why = _refusal(scope)
            if why is not None:
                response = JSONResponse({"error": "forbidden", "detail": why}, status_code=403)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
