"""/openapi.json documents every response of every route (api/schemas, api/openapi.py):
JSON bodies by component, error bodies by status, /metrics and /watch by media type with
one schema per /watch event; and the README's list of session fields is the schema's."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from clauditor.api.app import create_app
from clauditor.api.openapi import EVENT_SCHEMA_PREFIX
from clauditor.api.schemas import SessionOut
from clauditor.broadcast.events import ENVELOPE, EVENTS, fields_of
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


# Each route and the error statuses it can answer (read off api/app.py's handlers).
ROUTES: dict[tuple[str, str], set[str]] = {
    ("get", "/health"): set(),
    ("get", "/metrics"): set(),
    ("get", "/watch"): {"409", "503", "422"},
    ("get", "/api/sessions"): {"422"},
    ("get", "/api/sessions/{session_id}"): {"404", "409", "422"},
    ("post", "/api/sessions/{session_id}/client_view"): {"400", "404", "413", "415", "422"},
    ("get", "/api/statusline/{session_id}"): {"404", "422"},
    ("get", "/api/stats"): set(),
    ("get", "/api/summary"): set(),
    ("get", "/api/alerts"): set(),
    ("get", "/api/models"): set(),
    ("get", "/api/report"): {"422"},
    ("get", "/api/recall"): {"422"},
    ("get", "/api/diagnosis/{session_id}"): {"404", "409", "422"},
}


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_every_route_documents_every_response(openapi: dict[str, Any]) -> None:
    documented = {
        (method, path): op for path, item in openapi["paths"].items() for method, op in item.items()
    }
    assert set(documented) == set(ROUTES)
    for key, op in documented.items():
        responses = op["responses"]
        assert set(responses) == {"200"} | ROUTES[key], key
        for status, response in responses.items():
            content = response.get("content")
            assert content, (key, status, "no media type")
            for media, body in content.items():
                schema = body.get("schema")
                assert schema, (key, status, media, "no schema")
                if media == "application/json":
                    assert "$ref" in schema, (key, status, "a JSON body without its model")
    components = openapi["components"]["schemas"]
    for ref in _refs(openapi):
        assert ref.rsplit("/", 1)[-1] in components, ref


def test_metrics_and_health_say_their_media_types(openapi: dict[str, Any]) -> None:
    metrics = openapi["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert set(metrics) == {
        "text/plain; version=0.0.4; charset=utf-8",
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
    }
    assert set(openapi["paths"]["/health"]["get"]["responses"]["200"]["content"]) == {"text/plain"}


def test_watch_documents_each_event_with_its_fields(openapi: dict[str, Any]) -> None:
    content = openapi["paths"]["/watch"]["get"]["responses"]["200"]["content"]
    assert set(content) == {"text/event-stream"}
    events = content["text/event-stream"]["schema"]["x-events"]
    assert set(events) == set(EVENTS)
    components = openapi["components"]["schemas"]
    for name, ref in events.items():
        schema = components[ref["$ref"].rsplit("/", 1)[-1]]
        assert set(schema["properties"]) == set(ENVELOPE) | fields_of(name), name
        assert schema["properties"]["type"]["const"] == name
    # One event's field types, by hand: turn_end's turn is an integer.
    turn_end = components[f"{EVENT_SCHEMA_PREFIX}turn_end"]["properties"]
    assert turn_end["turn"]["type"] == "integer"
