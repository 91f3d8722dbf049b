"""Adaptive weights between provider deployments: a failing one loses traffic (never all of it),
and wins it back when it recovers; the effective weight is a metric."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fake_responses_upstream import Behaviour, FakeResponsesUpstream
from gateway_harness import GatewayHarness, config_doc, deployment


def _weight(gw: GatewayHarness, name: str) -> float:
    value = gw.registry.get_sample_value(
        "modelgate_deployment_effective_weight", {"model": "gpt-4o", "deployment": name}
    )
    assert value is not None
    return value


async def test_a_failing_deployment_loses_weight_within_bounds_and_wins_it_back(
    gateway: Callable[[dict[str, Any]], Awaitable[GatewayHarness]],
    upstream_a: FakeResponsesUpstream,
    upstream_b: FakeResponsesUpstream,
) -> None:
    model = {
        "name": "gpt-4o",
        "targets": [{"deployment": "a"}, {"deployment": "b"}],
        "adaptiveWeights": {"enabled": True, "floor": 0.1},
        "cooldown": {"consecutiveFailures": 1000, "durationSeconds": 1},  # no ejection: weights alone
    }
    gw = await gateway(
        config_doc([deployment("a", upstream_a.base_url), deployment("b", upstream_b.base_url)], [model])
    )
    assert _weight(gw, "a") == _weight(gw, "b") == 1.0
    upstream_b.script = [Behaviour(status=503) for _ in range(6)]
    async with gw.client(timeout=10) as client:
        for _ in range(200):  # until b has failed its six times (bounded)
            await client.responses.create(model="gpt-4o", input="hi")  # b's failures are retried on a
            if not upstream_b.script:
                break
        assert not upstream_b.script
        degraded = _weight(gw, "b")
        assert 0.1 <= degraded < 0.3
        assert _weight(gw, "a") == 1.0
        sent = 0
        before = len(upstream_b.creates)
        while _weight(gw, "b") <= 0.9 and sent < 400:  # b answers again: its weight comes back (bounded)
            await client.responses.create(model="gpt-4o", input="hi")
            sent += 1
        assert _weight(gw, "b") > 0.9
        # It won its weight back by being sent requests while degraded: the floor keeps it measured.
        assert len(upstream_b.creates) - before >= 7  # 7 successes take its error EWMA from 0.88 below 0.1
