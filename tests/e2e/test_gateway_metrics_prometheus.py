"""The real gateway process, driven by the OpenAI SDK, scraped by a real Prometheus.

Traffic through fake upstreams (streaming and not, two models, two keys, three end users, one
failover to a fallback model, one forbidden request) must show up in Prometheus exactly: request
counts, tokens and cost computed here from the fake upstreams' usage and the configured prices;
and every query of the shipped Grafana dashboard must return data.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest
import yaml

from fake_responses_upstream import Behaviour, FakeResponsesUpstream
from gateway_process import ROOT, GatewayProcess
from prometheus_server import PrometheusServer, prometheus_launcher
from redis_server import RedisServer, redis_server  # noqa: F401  (fixture)

pytestmark = pytest.mark.e2e
DASHBOARD = ROOT / "charts/modelgate/dashboards/modelgate-overview.json"
KEYS = {"team-a": "sk-team-a", "team-b": "sk-team-b"}
PRICES = {"gpt-4o": (2.5, 1.25, 10.0), "gpt-4o-mini": (0.15, 0.075, 0.6)}
# The fake upstreams report 20 input tokens (5 cached) and one output token per word.
EAST_WORDS, WEST_WORDS = 6, 7


def _cost(model: str, output_tokens: int) -> float:
    price_in, price_cached, price_out = PRICES[model]
    return (15 * price_in + 5 * price_cached + output_tokens * price_out) / 1e6


def _config(tmp: Path, east: str, west: str, redis_url: str) -> Path:
    def pricing(model: str) -> dict:
        i, c, o = PRICES[model]
        return {"inputUsdPerMillionTokens": i, "cachedInputUsdPerMillionTokens": c, "outputUsdPerMillionTokens": o}

    doc = {
        "apiVersion": "config.modelgate.dev/v1alpha1",
        "kind": "GatewayConfig",
        "spec": {
            "deployments": [
                {"name": "east", "baseUrl": east, "model": "up-east"},
                {"name": "west", "baseUrl": west, "model": "up-west"},
            ],
            "models": [
                {
                    "name": "gpt-4o",
                    "targets": [{"deployment": "east"}],
                    "fallbacks": ["gpt-4o-mini"],
                    "cooldown": {"consecutiveFailures": 1, "durationSeconds": 0.5},
                    "pricing": pricing("gpt-4o"),
                },
                {"name": "gpt-4o-mini", "targets": [{"deployment": "west"}], "pricing": pricing("gpt-4o-mini")},
                {"name": "local", "targets": [{"deployment": "west"}]},
            ],  # no prices: counted as unpriced
            # team-a has a budget and a rate limit far above this traffic: the governance panels get data.
            "auth": {
                "keys": [
                    {
                        "name": "team-a",
                        "sha256": hashlib.sha256(b"sk-team-a").hexdigest(),
                        "limits": {"requestsPerMinute": 10_000, "budget": {"usd": 100, "window": "daily"}},
                    },
                    {"name": "team-b", "sha256": hashlib.sha256(b"sk-team-b").hexdigest(), "models": ["gpt-4o-mini"]},
                ]
            },
            "state": {"redisUrl": redis_url},
        },
    }
    path = tmp / "gateway.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture
async def upstreams() -> AsyncIterator[tuple[FakeResponsesUpstream, FakeResponsesUpstream]]:
    east = FakeResponsesUpstream("east", text="Alpha answers with seven short words")
    west = FakeResponsesUpstream("west", text="Bravo replies with a different sentence here")
    await east.start()
    await west.start()
    yield east, west
    await east.close()
    await west.close()


WEB_SEARCH = {
    "type": "web_search_call",
    "id": "ws_1",
    "status": "completed",
    "action": {"type": "search", "query": "q"},
}


async def _round(gateway: GatewayProcess, east: FakeResponsesUpstream, west: FakeResponsesUpstream) -> None:
    """One round of traffic; returns after every request finished."""

    def client(key: str) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=gateway.base_url, api_key=KEYS[key], max_retries=0)

    async with client("team-a") as a, client("team-b") as b:
        await a.responses.create(model="gpt-4o", input="one", user="alice")
        events = [e async for e in await a.responses.create(model="gpt-4o", input="two", user="bob", stream=True)]
        assert events[-1].type == "response.completed"
        east.script = [Behaviour(status=500)]
        failed_over = await a.responses.with_raw_response.create(model="gpt-4o", input="three", user="alice")
        assert failed_over.headers["x-modelgate-deployment"] == "west"
        await b.responses.create(model="gpt-4o-mini", input="four", user="carol")
        with pytest.raises(openai.PermissionDeniedError):
            await b.responses.create(model="gpt-4o", input="five", user="carol")
        west.script = [Behaviour(tool_items=[WEB_SEARCH])]  # a hosted tool call (no per-call price)
        await a.responses.create(model="local", input="seven", user="erin")
        queued = await a.responses.create(model="local", input="eight", user="erin", background=True)
        west.complete()  # the background response ends; the client's poll sees it and it is counted
        assert (await a.responses.retrieve(queued.id)).status == "completed"
        east.script = [Behaviour(omit_usage=True)]  # an upstream that reports no usage: estimated
        events = [e async for e in await a.responses.create(model="gpt-4o", input="six", user="dave", stream=True)]
        assert events[-1].type == "response.completed"


def _substitute(expr: str) -> str:
    return (
        expr.replace("$__rate_interval", "1m")
        .replace("$__range", "5m")
        .replace("$__interval", "1s")
        .replace("$model", ".*")
        .replace("$namespace", ".*")
        .replace("$workload", ".*")
        .replace("$topk", "10")
    )


async def test_gateway_traffic_is_counted_exactly_in_prometheus_and_the_dashboard_has_data(
    tmp_path: Path,
    upstreams,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    east, west = upstreams
    gateway = GatewayProcess(_config(tmp_path, east.base_url, west.base_url, redis_server.url))
    await asyncio.to_thread(gateway.start)
    try:
        with prometheus_launcher(tmp_path) as launch:
            prom: PrometheusServer = launch([f"127.0.0.1:{gateway.metrics_port}"])
            await _round(gateway, east, west)
            await asyncio.to_thread(
                prom.query,
                "sum(modelgate_background_responses_total)",
                lambda r: bool(r) and float(r[0]["value"][1]) == 1,
            )
            await _round(gateway, east, west)  # a second round gives every rate() two distinct samples
            await asyncio.to_thread(
                prom.query,
                "sum(modelgate_background_responses_total)",
                lambda r: bool(r) and float(r[0]["value"][1]) == 2,
            )
            await asyncio.to_thread(
                prom.query, "sum(modelgate_requests_total)", lambda r: bool(r) and float(r[0]["value"][1]) == 18
            )
            await asyncio.to_thread(_assert_totals, prom)
            await asyncio.to_thread(_assert_dashboard, prom)
    finally:
        await asyncio.to_thread(gateway.stop)


def _assert_totals(prom: PrometheusServer) -> None:
    rounds = 2
    assert prom.scalar('sum(modelgate_requests_total{key="team-a"})') == 7 * rounds
    assert prom.scalar('sum(modelgate_requests_total{key="team-b"})') == 2 * rounds
    assert prom.scalar('sum(modelgate_requests_total{outcome="invalid_request_error"})') == 1 * rounds
    assert prom.scalar('sum(modelgate_requests_total{stream="true"})') == 2 * rounds
    output = {"gpt-4o": 2 * EAST_WORDS, "gpt-4o-mini": 2 * WEST_WORDS}
    for model, tokens in output.items():
        reported = f'model="{model}",estimated="false"'
        assert prom.scalar(f'sum(modelgate_tokens_total{{{reported},type="output"}})') == tokens * rounds
        assert prom.scalar(f'sum(modelgate_tokens_total{{{reported},type="input"}})') == 40 * rounds
        assert prom.scalar(f'sum(modelgate_tokens_total{{{reported},type="cached_input"}})') == 10 * rounds
    expected = {
        ("gpt-4o", "alice"): _cost("gpt-4o", EAST_WORDS),
        ("gpt-4o", "bob"): _cost("gpt-4o", EAST_WORDS),
        ("gpt-4o-mini", "alice"): _cost("gpt-4o-mini", WEST_WORDS),
        ("gpt-4o-mini", "carol"): _cost("gpt-4o-mini", WEST_WORDS),
    }
    for (model, user), cost in expected.items():
        got = prom.scalar(f'sum(modelgate_cost_usd_total{{model="{model}",end_user="{user}"}})')
        assert got == pytest.approx(cost * rounds, rel=1e-9), (model, user)
    assert prom.scalar('sum(modelgate_cost_usd_total{key="team-b"})') == pytest.approx(
        _cost("gpt-4o-mini", WEST_WORDS) * rounds, rel=1e-9
    )
    assert prom.scalar('modelgate_fallbacks_total{from_model="gpt-4o",to_model="gpt-4o-mini"}') == rounds
    assert prom.scalar('sum(modelgate_cooldowns_total{deployment="east"})') == rounds
    # The usage-less stream is estimated with the tokenizer: its 6 words are 6 tokens.
    assert prom.scalar('sum(modelgate_tokens_total{estimated="true",type="output"})') == EAST_WORDS * rounds
    assert prom.scalar('sum(modelgate_cost_usd_total{end_user="dave"})') > 0
    # the plain create and the background response, both with tokens and no price
    assert prom.scalar('sum(modelgate_unpriced_requests_total{model="local"})') == 2 * rounds
    assert (
        prom.scalar('sum(modelgate_hosted_tool_calls_total{model="local",tool="web_search",priced="false"})') == rounds
    )
    assert (
        prom.scalar('sum(modelgate_background_responses_total{model="local",status="completed",recorded_by="poll"})')
        == rounds
    )
    assert (
        prom.scalar('sum(modelgate_tokens_total{model="local",operation="background",type="output"})')
        == WEST_WORDS * rounds
    )
    assert prom.query_once('modelgate_cost_usd_total{model="local"} > 0') == []
    assert prom.scalar("modelgate_config_last_reload_successful") == 1


def _assert_dashboard(prom: PrometheusServer) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert exprs
    assert not any(re.search(r"\$\w", _substitute(e)) for e in exprs)
    empty = [e for e in exprs if not any(not math.isnan(float(s["value"][1])) for s in prom.query_once(_substitute(e)))]
    assert empty == []
