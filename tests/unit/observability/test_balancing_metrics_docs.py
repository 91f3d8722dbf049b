"""The balancing metrics (effective weights, pools' servers) are exactly those operations.md lists."""

from __future__ import annotations

import re
import time
from pathlib import Path

from modelgate_gateway.config import validate_data
from modelgate_gateway.runtime import compile_runtime
from modelgate_gateway.upstream.balancing import HealthBoard
from modelgate_gateway.upstream.balancingmetrics import BalancingCollector
from modelgate_gateway.upstream.pools import PoolBoard

ROOT = Path(__file__).resolve().parents[3]
ROW = re.compile(r"^\| `(modelgate_[a-z_]+)` \| (\w+) \|([^|]*)\|")


def _documented() -> dict[str, tuple[str, tuple[str, ...]]]:
    text = (ROOT / "docs/operations.md").read_text()
    section = text[text.index("## Picking a server of a pool") : text.index("## Adaptive weights")]
    rows = {}
    for line in section.splitlines():
        match = ROW.match(line)
        if match:
            name, kind, labels = match.groups()
            rows[name] = (kind, tuple(x.strip() for x in labels.strip().strip("`").split(",") if x.strip()))
    return rows


def test_operations_md_lists_exactly_the_balancing_metrics() -> None:
    doc = {
        "apiVersion": "config.modelgate.dev/v1alpha1",
        "kind": "GatewayConfig",
        "spec": {
            "deployments": [{"name": "pool", "baseUrls": ["http://10.0.0.1:8000/v1"], "model": "m", "loadMetrics": {}}],
            "models": [{"name": "m", "targets": [{"deployment": "pool"}], "adaptiveWeights": {"enabled": True}}],
        },
    }
    runtime = compile_runtime(validate_data(doc), {}, ".")
    pools = PoolBoard()
    pools.sync(runtime)
    pool = pools.get("pool")
    assert pool is not None
    pool.members[0].load.at = time.monotonic()  # a fresh reading: every family has a sample
    found = {
        family.name: (family.type, tuple(family.samples[0].labels))
        for family in BalancingCollector(lambda: runtime, HealthBoard(), pools).collect()
    }
    assert found == _documented()
