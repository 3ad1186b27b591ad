"""/openapi.json documents the session objects with their schemas (api/schemas.py), and
the README's list of session fields is the schema's."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from clauditor.api.app import create_app
from clauditor.api.schemas import SessionOut
from clauditor.clock import ManualClock
from clauditor.core import Core, CoreConfig

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture
async def openapi(tmp_path: Path) -> dict[str, Any]:
    core = Core(CoreConfig(db=tmp_path / "o.db"), clock=ManualClock(1_796_000_000.0))
    transport = httpx.ASGITransport(app=create_app(core.api_deps()))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        spec: dict[str, Any] = (await client.get("/openapi.json")).json()
    core.telemetry.shutdown()
    return spec


def _ref(spec: dict[str, Any], path: str, status: str) -> str:
    content = spec["paths"][path]["get"]["responses"][status]["content"]
    return str(content["application/json"]["schema"]["$ref"]).rsplit("/", 1)[-1]


def test_the_session_routes_document_their_objects(openapi: dict[str, Any]) -> None:
    assert _ref(openapi, "/api/sessions", "200") == "SessionListOut"
    assert _ref(openapi, "/api/sessions/{session_id}", "200") == "SessionDetailOut"
    assert _ref(openapi, "/api/sessions/{session_id}", "404") == "ErrorOut"
    assert _ref(openapi, "/api/sessions/{session_id}", "409") == "ErrorOut"
    schemas = openapi["components"]["schemas"]
    for name in ("SessionOut", "TurnOut", "RequestOut", "ToolCallOut", "SubagentRunOut"):
        assert name in schemas
    assert set(schemas["SessionOut"]["properties"]) == set(SessionOut.model_fields)
    assert set(schemas["SessionOut"]["required"]) == set(SessionOut.model_fields)


def test_the_readme_names_every_session_field() -> None:
    text = README.read_text()
    named = set(re.findall(r"`([a-z][a-z0-9_]*)`", text))
    missing = sorted(set(SessionOut.model_fields) - named)
    assert missing == [], f"README never names these session fields: {missing}"
