"""What `/openapi.json` says beyond the response models: the error bodies by status, the
media types of `/metrics`, and the `/watch` stream with one schema per event (the
TypedDicts of broadcast.events, the same the hub builds and the watch view reads)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import TypeAdapter

from clauditor.api.schemas import ErrorOut
from clauditor.broadcast.events import EVENTS

_ERRORS = {
    400: "the body is not a JSON object",
    404: "no session has that id or prefix",
    409: "the prefix names several sessions (`candidates`)",
    413: "the body is over 64 KiB",
    415: "the body is not sent as application/json",
    503: "too many watchers already",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses` entries of these error statuses, each an ErrorOut."""
    return {s: {"model": ErrorOut, "description": _ERRORS[s]} for s in statuses}


_TEXT = {"schema": {"type": "string"}}
METRICS_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "clauditor_* and gen_ai_* metrics; OpenMetrics when Accept asks",
        "content": {
            "text/plain; version=0.0.4; charset=utf-8": _TEXT,
            "application/openmetrics-text; version=1.0.0; charset=utf-8": _TEXT,
        },
    }
}

EVENT_SCHEMA_PREFIX = "WatchEvent_"
WATCH_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": (
            "Server-Sent Events: `event: <type>` and `data: <JSON>`, a snapshot, the last"
            " seconds, then live; a `: ping` comment when quiet. The data of each type is"
            f" the {EVENT_SCHEMA_PREFIX}<type> schema."
        ),
        "content": {
            "text/event-stream": {
                "schema": {
                    "type": "string",
                    "x-events": {
                        name: {"$ref": f"#/components/schemas/{EVENT_SCHEMA_PREFIX}{name}"}
                        for name in EVENTS
                    },
                }
            }
        },
    },
    **errors(409, 503),
}


def _envelope(event_type: str) -> dict[str, Any]:
    """The keys every event carries besides its own (broadcast.events.ENVELOPE)."""
    return {
        "type": {"const": event_type, "type": "string"},
        "session_id": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "ts": {"type": "string", "description": "ISO 8601 UTC"},
        "seq": {"type": "integer", "description": "increasing per core"},
        "replay": {"type": "boolean", "description": "replayed to a new subscriber"},
        "history": {"type": "boolean", "description": "rebuilt by `watch` from the API"},
    }


def event_schemas() -> dict[str, Any]:
    """One component per /watch event type (its fields and the envelope), and what they
    refer to (Usage...)."""
    ref = "#/components/schemas/{model}"
    keyed, definitions = TypeAdapter.json_schemas(
        [(name, "serialization", TypeAdapter(cls)) for name, cls in EVENTS.items()],
        ref_template=ref,
    )
    out: dict[str, Any] = dict(definitions.get("$defs", {}))
    for (name, _mode), schema in keyed.items():
        if "$ref" in schema:  # the TypedDict itself landed in $defs, under its class name
            schema = out.pop(schema["$ref"].rsplit("/", 1)[-1])
        schema = dict(schema)
        schema["properties"] = {**_envelope(name), **schema.get("properties", {})}
        schema["required"] = ["type", "session_id", "ts", "seq", *schema.get("required", [])]
        out[f"{EVENT_SCHEMA_PREFIX}{name}"] = schema
    return out


def install(app: FastAPI) -> None:
    """Make the app's OpenAPI document carry the event schemas (built once)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(title=app.title, version=app.version, routes=app.routes)
            spec.setdefault("components", {}).setdefault("schemas", {}).update(event_schemas())
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
