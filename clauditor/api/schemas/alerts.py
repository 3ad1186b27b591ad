"""Alerts (`/api/alerts`): once per episode, held while the condition lasts."""

from __future__ import annotations

from typing import Any

from clauditor.api.schemas.base import Schema


class AlertOut(Schema):
    kind: str  # sessions.alerts.ALERT_KINDS
    session_id: str | None  # null: about the machine (quota, weekly budget)
    at: str
    reason: str
    evidence: dict[str, Any]  # the numbers behind it (per kind)


class AlertsOut(Schema):
    active: list[AlertOut]  # their episode has not cleared
    recent: list[AlertOut]  # newest first
    fired: int
