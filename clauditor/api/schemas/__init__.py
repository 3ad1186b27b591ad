"""The API's objects, one schema each, declared as the routes' `response_model`: FastAPI
validates every answer against them and writes it from them, and `/docs` and
`/openapi.json` show them. An unknown key is an error (a field added on one side only
fails the route tests, which build every object), a missing one too.

base: what objects share; sessions: sessions, turns, requests, tool calls; client: the
status line; history: summary, report, recall, diagnosis; catalog: the models; alerts;
stats: the core's counters.
"""

from clauditor.api.schemas.alerts import AlertOut, AlertsOut
from clauditor.api.schemas.base import ErrorOut, QuotaOut
from clauditor.api.schemas.catalog import ModelsOut
from clauditor.api.schemas.client import (
    ClientNumbersOut,
    ClientViewAnswerOut,
    StatuslineMissingOut,
    StatuslineOut,
)
from clauditor.api.schemas.history import DiagnosisOut, RecallOut, ReportOut, SummaryOut
from clauditor.api.schemas.sessions import (
    RequestOut,
    SessionDetailOut,
    SessionListItemOut,
    SessionListOut,
    SessionOut,
    SubagentRunOut,
    ToolCallOut,
    TurnOut,
)
from clauditor.api.schemas.stats import StatsOut

__all__ = [
    "AlertOut",
    "AlertsOut",
    "ClientNumbersOut",
    "ClientViewAnswerOut",
    "DiagnosisOut",
    "ErrorOut",
    "ModelsOut",
    "QuotaOut",
    "RecallOut",
    "ReportOut",
    "RequestOut",
    "SessionDetailOut",
    "SessionListItemOut",
    "SessionListOut",
    "SessionOut",
    "StatsOut",
    "StatuslineMissingOut",
    "StatuslineOut",
    "SubagentRunOut",
    "SummaryOut",
    "ToolCallOut",
    "TurnOut",
]
