"""The Grafana dashboard's shape, without Grafana: identity, data sources that exist in the
provisioning, titles, layout, the estimates text, the Tempo panel, and PromQL that only
names metrics and labels clauditor exports. tests/integration/test_dashboard.py runs every
query against a real Prometheus."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from clauditor.telemetry import names as n
from tests.stack import dashboard as dash

ROOT = dash.ROOT
BOARD = dash.load()
PANELS = list(dash.panels(BOARD))
TARGETS = dash.targets(BOARD)
PROMQL = dash.promql(BOARD)
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SOURCES = {s["uid"]: s for s in yaml.safe_load(dash.DATASOURCES.read_text())["datasources"]}
PANEL_TYPES = {"row", "timeseries", "stat", "gauge", "bargauge", "table", "text", "traces"}

# Every family on /metrics (histograms as their three series) and every label name.
METRICS = {m.prometheus for m in n.METRICS} | {
    f"{m.prometheus}_{suffix}"
    for m in n.METRICS
    if m.kind == "histogram"
    for suffix in ("bucket", "count", "sum")
}
NAMES = {v for v in vars(n).values() if isinstance(v, str)}
LABELS = {v.replace(".", "_") for v in NAMES} | {"le"}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")
_MATCHER = re.compile(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)")
_IDENTIFIER = re.compile(r"[A-Za-z_:][\w:]*")


def _names_in(expr: str) -> tuple[set[str], set[str]]:
    """(metric names, label names) an expression uses; strings and durations ignored."""
    labels: set[str] = set()
    for group in _GROUPING.findall(expr):
        labels |= {x.strip() for x in group.split(",") if x.strip()}
    for matchers in re.findall(r"\{([^}]*)\}", _STRING.sub('""', expr)):
        labels |= set(_MATCHER.findall(matchers))
    bare = _GROUPING.sub(" ", re.sub(r"\{[^}]*\}", " ", _STRING.sub('""', expr)))
    bare = re.sub(r"\[[^\]]*\]", " ", bare)  # range selectors
    metrics = {x for x in _IDENTIFIER.findall(bare) if x.startswith(("clauditor_", "gen_ai_"))}
    return metrics, labels


def test_identity() -> None:
    assert BOARD["uid"] == "clauditor-main"
    assert BOARD["title"] == "clauditor"
    assert BOARD["id"] is None  # provisioned: Grafana assigns the id
    assert BOARD["schemaVersion"] >= 39  # Grafana 11
    # "Today" and "this week" as clauditor counts them (/api/summary, the weekly budget).
    assert (BOARD["timezone"], BOARD["weekStart"]) == ("utc", "monday")


def test_grafana_loads_it_as_the_home_dashboard() -> None:
    grafana = COMPOSE["services"]["grafana"]
    providers = yaml.safe_load(
        (ROOT / "grafana/provisioning/dashboards/dashboards.yaml").read_text()
    )["providers"]
    path = providers[0]["options"]["path"]
    assert f"./grafana/dashboards:{path}:ro" in grafana["volumes"]
    home = Path(grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert home.parent == Path(path)
    assert (ROOT / "grafana" / "dashboards" / home.name) == dash.DASHBOARD
    assert providers[0]["folder"]  # a dashboard folder


def test_every_datasource_is_provisioned() -> None:
    assert {"prometheus", "tempo"} <= set(SOURCES)
    assert TARGETS
    for target in TARGETS:
        uid = target.datasource_uid
        assert uid in SOURCES, (target.label, uid)
        source = target.target.get("datasource") or target.panel.get("datasource")
        assert source["type"] == SOURCES[uid]["type"], target.label
    for panel in PANELS:
        source = panel.get("datasource")
        if source is not None:
            assert source["uid"] in SOURCES, panel["title"]
    for annotation in BOARD["annotations"]["list"]:
        assert annotation["datasource"]["uid"] in {*SOURCES, "-- Grafana --"}


def test_every_panel_has_a_title_a_known_type_and_its_own_id() -> None:
    assert len(PANELS) > 20
    for panel in PANELS:
        assert isinstance(panel.get("title"), str) and panel["title"].strip(), panel
        assert panel["type"] in PANEL_TYPES, panel["title"]
        if panel["type"] not in ("row", "text"):
            assert panel.get("targets"), panel["title"]
    ids = [p["id"] for p in PANELS]
    assert len(ids) == len(set(ids))
    titles = [p["title"] for p in PANELS]
    assert len(titles) == len(set(titles))  # failures name panels unambiguously


def test_panels_fit_the_grid_without_overlapping() -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in PANELS:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["w"] > 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, (panel["title"], cells.get((x, y)))
                cells[(x, y)] = panel["title"]


def test_a_text_panel_explains_the_estimates() -> None:
    texts = [p["options"]["content"] for p in PANELS if p["type"] == "text"]
    assert any("estimate" in t and "price" in t for t in texts), texts


def test_a_tempo_panel_lists_slow_turns() -> None:
    tempo = [t for t in TARGETS if t.datasource_uid == "tempo"]
    assert len(tempo) == 1
    target = tempo[0]
    assert target.panel["type"] in ("table", "traces")
    assert target.target["queryType"] == "traceql"
    query = dash.expand(target.target["query"], dash.variables(BOARD))
    turn = f"{n.OP_INVOKE_AGENT} {n.AGENT_NAME}"  # the root span of every turn's trace
    assert re.search(rf'name\s*=\s*"{turn}"', query), query
    assert re.search(r"duration\s*>\s*\d+(ms|s|m|h)\b", query), query
    assert query.count("{") == query.count("}") == 1 and query.strip().startswith("{")
    for attribute in re.findall(r"span\.([\w.]+)", query):
        assert attribute in NAMES, attribute


def test_every_query_expands_to_concrete_promql() -> None:
    values = dash.variables(BOARD)
    for target in PROMQL:
        expr = dash.expand(target.target["expr"], values)
        assert "$" not in expr and "[[" not in expr, (target.label, expr)
        # Windows follow the dashboard: $__range / $__rate_interval, never hard-coded.
        assert not re.search(r"\[\d+[smhdwy]", target.target["expr"]), target.label
        assert not re.search(r"offset \d", target.target["expr"]), target.label


@pytest.mark.parametrize("target", PROMQL, ids=lambda t: t.label)
def test_promql_names_only_what_clauditor_exports(target: dash.Target) -> None:
    expr = target.target["expr"]
    metrics, labels = _names_in(expr)
    assert metrics, expr
    assert metrics <= METRICS, metrics - METRICS
    assert labels <= LABELS, labels - LABELS
    legend = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", target.target.get("legendFormat", "")))
    assert legend <= labels | {"le"}, legend - labels


def test_the_dashboard_covers_the_issue() -> None:
    used = set().union(*(_names_in(t.target["expr"])[0] for t in PROMQL))
    wanted = {
        n.ACTIVE_SESSIONS.prometheus,  # sessions and active sessions
        f"{n.SESSION_COST.prometheus}_count",  # sessions ended
        n.SESSIONS_STARTED.prometheus,
        n.COST.prometheus,  # cost today / week, by model
        n.TOKENS.prometheus,  # tokens by type, cache hit ratio
        n.CACHE_EVENTS.prometheus,  # cache misses by type
        n.CACHE_REBUILD_WASTE.prometheus,
        f"{n.CONTEXT_FILL_METRIC.prometheus}_bucket",  # context fill distribution
        n.COMPACTIONS.prometheus,
        n.FALLBACKS.prometheus,  # requested → actual
        n.TOOL_CALLS.prometheus,
        n.TOOL_FAILURES.prometheus,
        f"{n.GEN_AI_CLIENT_TIME_TO_FIRST_CHUNK.prometheus}_bucket",  # TTFT percentiles
        f"{n.TURN_DURATION.prometheus}_bucket",
        n.ERRORS.prometheus,
        n.QUOTA_UTILIZATION.prometheus,
        n.WEEKLY_TOKENS_USED.prometheus,
        n.WEEKLY_TOKENS_BUDGET.prometheus,
    }
    assert wanted <= used, wanted - used
    overrides = {p.get("timeFrom") for p in PANELS}
    assert {"now/d", "now/w"} <= overrides  # cost today, cost this week
    fallbacks = [t for t in PROMQL if n.FALLBACKS.prometheus in t.target["expr"]]
    assert any("→" in t.target["legendFormat"] for t in fallbacks)
