"""docs/metrics.md and the Grafana dashboards stay in step with the registered metrics."""

import json
import re
from pathlib import Path

from prometheus_client import CollectorRegistry

from modelgate_gateway.observability.governance_metrics import GovernanceMetrics
from modelgate_gateway.observability.metrics import Metrics

ROOT = Path(__file__).resolve().parents[3]
ROW = re.compile(r"^\| `(modelgate_[a-z_]+)` \| (\w+) \|([^|]*)\|")
SUFFIX = {"counter": "_total", "info": "_info"}


def _documented() -> dict[str, tuple[str, tuple[str, ...]]]:
    rows = {}
    for line in (ROOT / "docs/metrics.md").read_text().splitlines():
        match = ROW.match(line)
        if match:
            name, kind, labels = match.groups()
            rows[name] = (
                kind,
                tuple(x.strip() for x in labels.strip().strip("`").split(",") if x.strip()),
            )
    return rows


def test_docs_list_exactly_the_registered_metrics_with_types_and_labels() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    registered = {f.name + SUFFIX.get(f.type, "") for f in registry.collect()}
    described = {info.name: (info.type, info.labels) for info in metrics.describe()}
    assert set(described) == registered
    assert _documented() == described


def _dashboard_exprs(dashboard: dict) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def test_chart_and_docs_dashboards_are_identical() -> None:
    chart = ROOT / "charts/modelgate/dashboards/modelgate-overview.json"
    docs = ROOT / "docs/grafana/modelgate-overview.json"
    assert chart.read_bytes() == docs.read_bytes()


def test_every_dashboard_query_uses_only_registered_metrics_and_the_datasource_variable() -> None:
    dashboard = json.loads((ROOT / "docs/grafana/modelgate-overview.json").read_text())
    registry = CollectorRegistry()
    Metrics(registry)
    GovernanceMetrics(registry)  # documented in docs/governance.md
    exposed = {s.name for family in registry.collect() for s in family.samples}
    exposed |= {f.name + "_bucket" for f in registry.collect() if f.type == "histogram"}
    exposed |= {f.name + SUFFIX.get(f.type, "") for f in registry.collect()}
    exprs = _dashboard_exprs(dashboard)
    assert len(exprs) >= 20
    for expr in exprs:
        names = set(re.findall(r"\bmodelgate_[a-z_]+", expr))
        assert names, expr
        assert names <= exposed, (expr, names - exposed)
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
