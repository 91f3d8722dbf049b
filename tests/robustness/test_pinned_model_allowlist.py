"""``previous_response_id`` cannot bypass a key's model allowlist or its pricing.

A response is continued on the deployment that holds it. That deployment must serve the model the
client asked for (be one of its targets or of its fallback models' targets); otherwise the client
gets a 400 and nothing reaches the upstream. When a fallback model's deployment serves, the request
is recorded and priced as that model, like any fallback.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest

from fake_responses_upstream import FakeResponsesUpstream
from gateway_harness import GatewayHarness, config_doc, deployment
from tenant_gateway import KEYS, auth, running

CHEAP = {"inputUsdPerMillionTokens": 1.0, "outputUsdPerMillionTokens": 2.0}
DEAR = {"inputUsdPerMillionTokens": 100.0, "outputUsdPerMillionTokens": 200.0}


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[GatewayHarness, FakeResponsesUpstream, FakeResponsesUpstream]]:
    cheap, dear = FakeResponsesUpstream("cheap"), FakeResponsesUpstream("dear")
    await cheap.start()
    await dear.start()
    models = [
        {"name": "normal", "targets": [{"deployment": "cheap"}], "pricing": CHEAP},
        {"name": "premium", "targets": [{"deployment": "dear"}], "pricing": DEAR},
        {"name": "normal-plus", "targets": [{"deployment": "cheap"}], "fallbacks": ["premium"], "pricing": CHEAP},
    ]
    keys = {"full": ("acme", ["*"]), "limited": ("acme", ["normal", "normal-plus"])}
    doc = config_doc([deployment("cheap", cheap.base_url), deployment("dear", dear.base_url)], models, auth=auth(keys))
    try:
        async with running(tmp_path, doc) as gw:
            yield gw, cheap, dear
    finally:
        await cheap.close()
        await dear.close()


async def test_a_deployment_of_another_model_is_refused_with_a_400(setup) -> None:
    gw, cheap, dear = setup
    async with gw.client(KEYS["full"]) as full, gw.client(KEYS["limited"]) as limited:
        premium = await full.responses.create(model="premium", input="hi")
        for client in (limited, full):  # the rule is about the deployment, whatever the key may use
            with pytest.raises(openai.BadRequestError) as caught:
                await client.responses.create(model="normal", input="go on", previous_response_id=premium.id)
            body = caught.value.body
            assert (body["param"], body["code"], body["type"]) == (
                "previous_response_id",
                "previous_response_model_mismatch",
                "invalid_request_error",
            )
            assert "`normal`" in body["message"] and "dear" not in body["message"]
        with pytest.raises(openai.PermissionDeniedError):  # the allowlist still applies to the model asked for
            await limited.responses.create(model="premium", input="go on", previous_response_id=premium.id)
        same = await limited.responses.create(
            model="normal",
            input="a",
            previous_response_id=(await limited.responses.create(model="normal", input="b")).id,
        )
    assert len(dear.creates) == 1 and len(cheap.creates) == 2
    assert same.id


async def _log_line(gw: GatewayHarness, response_id: str) -> dict[str, Any]:
    """The request log line of a response (written off the request's path: bounded poll)."""
    for _ in range(500):
        found = [line for line in gw.log_lines() if line.get("response_id") == response_id]
        if found:
            return found[0]
        await asyncio.sleep(0.02)
    raise AssertionError(f"no log line for {response_id}")


async def test_a_fallback_models_deployment_serves_and_is_priced_as_that_model(setup) -> None:
    gw, cheap, dear = setup
    async with gw.client(KEYS["full"]) as full, gw.client(KEYS["limited"]) as limited:
        premium = await full.responses.create(model="premium", input="hi")
        follow = await limited.responses.with_raw_response.create(
            model="normal-plus", input="go on", previous_response_id=premium.id
        )
        answer = follow.parse()
        line = await _log_line(gw, answer.id)
    assert follow.headers["x-modelgate-deployment"] == "dear" and dear.creates[-1].body["model"] == "up-dear"
    assert (line["requested_model"], line["model"], line["deployment"], line["key"]) == (
        "normal-plus",
        "premium",
        "dear",
        "limited",
    )
    usage = answer.usage
    assert usage is not None
    dear_cost = (usage.input_tokens * 100.0 + usage.output_tokens * 200.0) / 1e6
    assert line["cost_usd"] == pytest.approx(dear_cost)
    assert _total(gw, "modelgate_cost_usd_total", key="limited", model="premium") == pytest.approx(dear_cost)
    assert _total(gw, "modelgate_cost_usd_total", key="limited", model="normal-plus") == 0
    assert _total(gw, "modelgate_requests_total", key="limited", model="premium", deployment="dear") == 1
    assert len(cheap.creates) == 0


def _total(gw: GatewayHarness, sample: str, **labels: str) -> float:
    """Sum of a metric's samples whose labels include ``labels``."""
    return sum(
        s.value
        for metric in gw.registry.collect()
        for s in metric.samples
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
    )
