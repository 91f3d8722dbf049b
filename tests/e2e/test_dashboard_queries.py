"""Real Prometheus scrapes the observer's /metrics: exact totals and every dashboard query.

Synthetic RequestRecords (several models, keys, end users, streams, a failover, an error, an
abandoned stream without usage, an unpriced model) go through GatewayObserver twice; the
second round makes every rate() and histogram_quantile() in the dashboard non-trivial.
"""

from __future__ import annotations

import asyncio
import io
import json
import math
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from modelgate_gateway.observability import estimating
from modelgate_gateway.observability.exposition import metrics_app
from modelgate_gateway.observability.governance_metrics import GovernanceMetrics
from modelgate_gateway.observability.observer import GatewayObserver
from modelgate_gateway.observability.pricing import Prices, cost_usd
from modelgate_gateway.observability.recording import AttemptOutcome, AttemptRecord, BilledEvent, RequestRecord, Usage
from observability_traffic import CHECKSUM, delta_block, make_config, record
from prometheus_server import PrometheusServer, prometheus_launcher

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "charts/modelgate/dashboards/modelgate-overview.json"
ABANDONED_BODY = json.dumps({"model": "gpt-4o", "input": "Tell me about lighthouses"}).encode()
ABANDONED_TEXT = ["Lighthouses ", "guide ", "ships"]
# Served at flex, with cache writes and two hosted web searches: the billing panels' data.
BILLED = Usage(1000, 200, 300, 50, cache_write_tokens=100, service_tier="flex", tool_calls=(("web_search", 2),))
BACKGROUND = Usage(40, 0, 8, 0)


@contextmanager
def serve_in_thread(app: web.Application) -> Iterator[str]:
    """Serve ``app`` on a loopback port from its own loop, so blocking queries can't stall it."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", 0).start())
    host, port = runner.addresses[0][:2]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"{host}:{port}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.run_until_complete(runner.cleanup())
        loop.close()


def traffic(round_: int) -> list[RequestRecord]:
    t = 1000.0 * (round_ + 1)
    failover = record(
        model="gpt-4o-mini",
        deployment="mini",
        key="team-a",
        end_user="carol",
        stream=True,
        ttft=0.9,
        duration=3.0,
        start=t + 3,
        usage=Usage(200, 0, 50, 0),
        attempts=[
            AttemptRecord("gpt-4o", "east", AttemptOutcome.SERVER_ERROR, 500),
            AttemptRecord("gpt-4o", "west", AttemptOutcome.TIMEOUT),
            AttemptRecord("gpt-4o-mini", "mini", AttemptOutcome.SUCCESS, 200),
        ],
        fallbacks=[("gpt-4o", "gpt-4o-mini")],
        cooldowns=["east"],
    )
    failover.requested_model = "gpt-4o"
    return [
        record(start=t, duration=0.4, usage=BILLED),
        record(
            deployment="west",
            key="team-b",
            end_user="bob",
            stream=True,
            ttft=0.3,
            duration=2.0,
            start=t + 1,
            usage=Usage(500, 0, 100, 0),
        ),
        failover,
        record(
            model="free-model",
            deployment="local",
            key="team-b",
            start=t + 4,
            usage=Usage(10, 0, 10, 0, compacted=True),  # server-side compaction: operation="compact"
        ),
        record(
            key="team-b",
            end_user="bob",
            status=502,
            error_type="upstream_error",
            start=t + 5,
            duration=0.05,
            attempts=[AttemptRecord("gpt-4o", "east", AttemptOutcome.SERVER_ERROR, 502)],
        ),
        record(
            stream=True,
            ttft=0.2,
            duration=1.0,
            start=t + 6,
            end_user="dave",
            client_disconnected=True,
            request_body=ABANDONED_BODY,
            stream_blocks=[delta_block(x) for x in ABANDONED_TEXT],
        ),
    ]


def feed(observer: GatewayObserver, records: list[RequestRecord], round_: int) -> None:
    for rec in records:
        observer.request_started(rec)
        observer.request_finished(rec)
    observer.usage_recorded(
        BilledEvent(  # a background response counted when it ended
            request_id=f"req_bg{round_}",
            response_id=f"resp_bg{round_}",
            operation="background",
            model="gpt-4o",
            deployment="east",
            key_name="team-a",
            end_user="alice",
            usage=BACKGROUND,
            status="completed",
            recorded_by="follow_up",
        )
    )


def expected_round() -> dict[str, float]:
    """Totals of one traffic round, computed independently of the observer."""
    config = make_config()
    gpt4o = Prices.from_pricing(config.spec.models[0].pricing)
    west = Prices.from_pricing(config.spec.deployments[1].pricing)
    mini = Prices.from_pricing(config.spec.models[1].pricing)
    est = Usage(
        estimating.estimate_input_tokens(ABANDONED_BODY),
        0,
        estimating.count_tokens("".join(ABANDONED_TEXT)),
        0,
    )
    return {
        "requests": 6,
        "input": 1000 + 500 + 200 + 10 + 40 + est.input_tokens,
        "output": 300 + 100 + 50 + 10 + 8 + est.output_tokens,
        "estimated_output": est.output_tokens,
        "cost": cost_usd(BILLED, gpt4o)
        + cost_usd(BACKGROUND, gpt4o)
        + cost_usd(Usage(500, 0, 100, 0), west)
        + cost_usd(Usage(200, 0, 50, 0), mini)
        + cost_usd(est, gpt4o),
        "cost_team_b": cost_usd(Usage(500, 0, 100, 0), west),
        # team-a (tenant acme): the billed request, the failover, the abandoned stream, the background one
        "input_acme": 1000 + 200 + est.input_tokens + 40,
        "cost_other_users": cost_usd(Usage(200, 0, 50, 0), mini) + cost_usd(est, gpt4o),
    }


def substitute(expr: str) -> str:
    return (
        expr.replace("$__rate_interval", "1m")
        .replace("$__range", "5m")
        .replace("$__interval", "1s")
        .replace("$model", ".*")
        .replace("$namespace", ".*")
        .replace("$workload", ".*")
        .replace("$topk", "10")
    )


def test_prometheus_sees_exact_totals_and_every_dashboard_query_has_data(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    log = io.BytesIO()
    observer = GatewayObserver(registry, log_stream=log)
    observer.config_loaded(make_config(end_user_limit=2), CHECKSUM)
    observer.deployment_health("east", True)
    governance = GovernanceMetrics(registry)  # what the governor reports (see tests/component/governance)
    governance.configure([("key", "team-a", 10.0), ("tenant", "acme", 0.0)], "fail-open")
    one = expected_round()

    with serve_in_thread(metrics_app(registry)) as target, prometheus_launcher(tmp_path) as launch:
        prom: PrometheusServer = launch([target])
        feed(observer, traffic(0), 0)
        governance.spend.labels("key", "team-a").set(2.5)
        governance.reserved.labels("key", "team-a").set(0.1)
        governance.in_flight.set(1)
        prom.query(
            "sum(modelgate_requests_total)",
            until=lambda r: bool(r) and float(r[0]["value"][1]) == 6,
        )
        feed(observer, traffic(1), 1)
        governance.limit_hits.labels("key", "team-a", "budget").inc()
        governance.redis_failures.labels("reserve", "fail-open").inc()
        prom.query("sum(modelgate_requests_total)", until=lambda r: float(r[0]["value"][1]) == 12)

        assert prom.scalar('sum(modelgate_tokens_total{type="input"})') == 2 * one["input"]
        assert prom.scalar('sum(modelgate_tokens_total{type="output"})') == 2 * one["output"]
        assert prom.scalar('sum(modelgate_tokens_total{type="output",estimated="true"})') == (
            2 * one["estimated_output"]
        )
        assert prom.scalar("sum(modelgate_cost_usd_total)") == pytest.approx(2 * one["cost"], rel=1e-9)
        assert prom.scalar('sum(modelgate_cost_usd_total{key="team-b"})') == pytest.approx(
            2 * one["cost_team_b"], rel=1e-9
        )
        # limit 2: alice and bob keep labels; carol and dave spend under "other"
        assert prom.scalar('sum(modelgate_cost_usd_total{end_user="other"})') == pytest.approx(
            2 * one["cost_other_users"], rel=1e-9
        )
        # Tokens are by key, tenant and (capped) end user too, as cost is.
        assert prom.scalar('sum(modelgate_tokens_total{key="team-b",type="input"})') == 2 * (500 + 10)
        assert prom.scalar('sum(modelgate_tokens_total{tenant="acme",type="input"})') == 2 * one["input_acme"]
        assert prom.scalar('sum(modelgate_tokens_total{tenant="_none",type="input"})') == 2 * (500 + 10)
        assert prom.scalar('sum(modelgate_tokens_total{end_user="bob",type="input"})') == 2 * 500
        assert prom.scalar('sum(modelgate_cost_usd_total{tenant="_none"})') == pytest.approx(
            2 * one["cost_team_b"], rel=1e-9
        )
        assert prom.scalar('sum(modelgate_hosted_tool_calls_total{key="team-a",tenant="acme",end_user="alice"})') == 4
        assert prom.scalar('sum(modelgate_requests_total{outcome="upstream_error"})') == 2
        assert prom.scalar('sum(modelgate_requests_total{outcome="client_disconnected"})') == 2
        assert prom.scalar("sum(modelgate_fallbacks_total)") == 2
        assert prom.scalar("sum(modelgate_retries_total)") == 4
        assert prom.scalar('modelgate_cooldowns_total{deployment="east"}') == 2
        assert prom.scalar('sum(modelgate_unpriced_requests_total{model="free-model"})') == 2
        assert prom.scalar('modelgate_deployment_cooling_down{deployment="east"}') == 1
        assert prom.scalar('sum(modelgate_tokens_total{type="cache_write",tier="flex"})') == 2 * 100
        assert prom.scalar('sum(modelgate_hosted_tool_calls_total{tool="web_search",priced="true"})') == 4
        assert prom.scalar('sum(modelgate_cost_usd_total{operation="background"})') == pytest.approx(
            2 * cost_usd(BACKGROUND, Prices.from_pricing(make_config().spec.models[0].pricing)), rel=1e-9
        )
        assert prom.scalar('sum(modelgate_tokens_total{operation="compact"})') == 2 * 20
        assert prom.scalar('sum(modelgate_background_responses_total{status="completed"})') == 2

        dashboard = json.loads(DASHBOARD.read_text())
        exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
        empty = []
        for expr in exprs:
            result = prom.query_once(substitute(expr))
            if not any(not math.isnan(float(s["value"][1])) for s in result):
                empty.append(expr)
        assert empty == []
        assert not any(re.search(r"\$\w", substitute(e)) for e in exprs)

    observer.close_log()
    assert len(log.getvalue().splitlines()) == 12 + 2  # the requests and the two background responses
