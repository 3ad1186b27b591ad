"""The API's JSON responses: Starlette's, except that text UTF-8 cannot hold survives.

Starlette encodes `json.dumps(..., ensure_ascii=False)` as UTF-8, which raises on a lone
UTF-16 surrogate (a prompt may carry one: valid JSON `"\\ud800"`), so one live session
would turn every `/api/sessions` into a 500. Here such a character becomes U+FFFD.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from clauditor.safetext import utf8_json


class SafeJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return utf8_json(content, allow_nan=False, indent=None, separators=(",", ":"))
