"""Reading grafana/dashboards/clauditor-main.json: every panel (rows included), every query
target with the data source it runs on, and Grafana's variables expanded to concrete values
so a query can be sent to Prometheus as Grafana would."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "grafana" / "dashboards" / "clauditor-main.json"
DATASOURCES = ROOT / "grafana" / "provisioning" / "datasources" / "datasources.yaml"

# What Grafana would substitute for its built-in variables on a dashboard showing the last
# hour, scraped every 15 s (the compose stack); the tests use the same durations.
BUILTINS: dict[str, str] = {
    "__rate_interval": "5m",
    "__interval": "1m",
    "__interval_ms": "60000",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
}
# $name, ${name}, ${name:format} and the deprecated [[name]].
_VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)\]\]")


@dataclass(frozen=True)
class Target:
    panel: dict[str, Any]
    target: dict[str, Any]

    @property
    def datasource_uid(self) -> str | None:
        source = self.target.get("datasource") or self.panel.get("datasource") or {}
        return source.get("uid") if isinstance(source, dict) else source

    @property
    def label(self) -> str:
        return f"{self.panel.get('title')!r} [{self.target.get('refId')}]"


def load() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows and the panels inside collapsed rows included."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panels(panel)


def targets(dashboard: Mapping[str, Any]) -> list[Target]:
    return [Target(p, t) for p in panels(dashboard) for t in p.get("targets", [])]


def promql(dashboard: Mapping[str, Any]) -> list[Target]:
    return [t for t in targets(dashboard) if t.datasource_uid == "prometheus"]


def variables(dashboard: Mapping[str, Any]) -> dict[str, str]:
    """Built-ins plus each template variable's current value."""
    values = dict(BUILTINS)
    for var in dashboard.get("templating", {}).get("list", []):
        current = var.get("current", {}).get("value")
        if isinstance(current, list):
            current = "|".join(current)
        if current is not None:
            values[var["name"]] = str(current)
    return values


def expand(text: str, values: Mapping[str, str]) -> str:
    """Substitute every variable; an unknown one raises KeyError (the query would break)."""

    def one(match: re.Match[str]) -> str:
        name = next(g for g in match.groups() if g)
        if name not in values:
            raise KeyError(f"unknown Grafana variable ${name} in {text!r}")
        return values[name]

    return _VARIABLE.sub(one, text)
