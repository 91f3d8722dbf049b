"""The observer charges tiers, cache writes, hosted tool calls and operations into metrics and the log."""

import json

import pytest
from prometheus_client import CollectorRegistry

from modelgate_gateway.observability.observer import GatewayObserver
from modelgate_gateway.observability.recording import Usage
from observability_traffic import record

EAST = {"model": "gpt-4o", "deployment": "east"}
WHO = {"key": "team-a", "tenant": "acme", "end_user": "alice"}
"""Every billed figure is by key, its tenant and end user (the records' defaults)."""
ALICE = {**WHO, "estimated": "false"}


def finish(observer: GatewayObserver, rec: object) -> None:
    observer.request_started(rec)  # type: ignore[arg-type]
    observer.request_finished(rec)  # type: ignore[arg-type]


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_served_tier_is_a_label_and_sets_the_price(observer: GatewayObserver, registry: CollectorRegistry) -> None:
    finish(observer, record(usage=Usage(input_tokens=1000, output_tokens=100, service_tier="flex")))
    flex = {"operation": "create", "tier": "flex"}
    assert value(registry, "modelgate_tokens_total", **EAST, **ALICE, type="input", **flex) == 1000
    assert value(registry, "modelgate_cost_usd_total", **EAST, **ALICE, **flex) == pytest.approx(
        (1000 * 1.25 + 100 * 5) / 1e6
    )


def test_an_unknown_tier_is_bounded_to_other(observer: GatewayObserver, registry: CollectorRegistry) -> None:
    finish(observer, record(usage=Usage(input_tokens=10, service_tier="made-up")))
    labels = {**EAST, **ALICE, "operation": "create", "tier": "_other"}
    assert value(registry, "modelgate_cost_usd_total", **labels) == pytest.approx(10 * 2.5 / 1e6)


def test_cache_writes_are_their_own_token_type(
    observer: GatewayObserver, registry: CollectorRegistry, log_sink
) -> None:
    finish(observer, record(usage=Usage(input_tokens=1000, cached_input_tokens=200, cache_write_tokens=300)))
    base = {**EAST, **ALICE, "operation": "create", "tier": "default"}
    assert value(registry, "modelgate_tokens_total", **base, type="cache_write") == 300
    assert value(registry, "modelgate_tokens_total", **base, type="cached_input") == 200
    observer.close_log()
    line = json.loads(log_sink.lines()[-1])
    assert line["cache_write_tokens"] == 300
    assert line["cost_usd"] == pytest.approx((500 * 2.5 + 200 * 1.25 + 300 * 3.125) / 1e6)
    assert line["usage_source"] == "reported"
    assert line["operation"] == "create"


def test_hosted_tool_calls_are_counted_and_priced(
    observer: GatewayObserver, registry: CollectorRegistry, log_sink
) -> None:
    usage = Usage(input_tokens=0, tool_calls=(("web_search", 2), ("code_interpreter", 1), ("weird_thing", 1)))
    finish(observer, record(usage=usage))
    calls = {**EAST, **WHO, "operation": "create"}
    assert value(registry, "modelgate_hosted_tool_calls_total", **calls, tool="web_search", priced="true") == 2
    assert value(registry, "modelgate_hosted_tool_calls_total", **calls, tool="code_interpreter", priced="false") == 1
    assert value(registry, "modelgate_hosted_tool_calls_total", **calls, tool="_other", priced="false") == 1
    cost = {**EAST, **ALICE, "operation": "create", "tier": "default"}
    assert value(registry, "modelgate_cost_usd_total", **cost) == pytest.approx(0.02)
    observer.close_log()
    line = json.loads(log_sink.lines()[-1])
    assert line["hosted_tool_calls"] == {"web_search": 2, "code_interpreter": 1, "weird_thing": 1}


def test_a_create_that_compacted_counts_as_compaction(observer: GatewayObserver, registry: CollectorRegistry) -> None:
    finish(observer, record(usage=Usage(input_tokens=50, compacted=True)))
    compact = {**EAST, **ALICE, "operation": "compact", "tier": "default"}
    assert value(registry, "modelgate_tokens_total", **compact, type="input") == 50


def test_a_background_create_is_not_charged_at_create_time(
    observer: GatewayObserver, registry: CollectorRegistry
) -> None:
    body = json.dumps({"model": "gpt-4o", "input": "a long question", "background": True}).encode()
    finish(observer, record(usage=None, operation="background", request_body=body))
    assert (
        value(
            registry,
            "modelgate_tokens_total",
            **EAST,
            **WHO,
            type="input",
            estimated="true",
            operation="background",
            tier="default",
        )
        is None
    )
    assert value(registry, "modelgate_requests_total", **EAST, key="team-a", stream="false", outcome="2xx") == 1


def test_the_compact_endpoint_is_its_own_operation(observer: GatewayObserver, registry: CollectorRegistry) -> None:
    """The hook for ``POST /v1/responses/compact``: a handler with route ``compact`` is billed as compaction."""
    finish(observer, record(route="compact", usage=Usage(input_tokens=70, output_tokens=7)))
    compact = {**EAST, **ALICE, "operation": "compact", "tier": "default"}
    assert value(registry, "modelgate_tokens_total", **compact, type="input") == 70
    assert value(
        registry, "modelgate_cost_usd_total", **EAST, **ALICE, operation="compact", tier="default"
    ) == pytest.approx((70 * 2.5 + 7 * 10) / 1e6)
