"""GatewayObserver turns RequestRecords into exact metric samples."""

import json

import pytest
from prometheus_client import CollectorRegistry

from modelgate_gateway.observability import estimating
from modelgate_gateway.observability.observer import GatewayObserver
from modelgate_gateway.observability.recording import AttemptOutcome, AttemptRecord, Usage
from observability_traffic import delta_block, record

EAST = {"model": "gpt-4o", "deployment": "east"}
WHO = {"key": "team-a", "tenant": "acme", "end_user": "alice"}
"""Every billed figure is by key, its tenant and end user (the records' defaults)."""


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def expect(registry: CollectorRegistry, name: str, value: object, **labels: str) -> None:
    """Assert ``name{labels} == value`` (a number or ``pytest.approx``); ``None``: no such series."""
    found = sample(registry, name, **labels)
    if value is None:
        assert found is None, f"{name}{labels} = {found}, expected no series"
    else:
        assert found == value, f"{name}{labels} = {found}, expected {value}"


def finish(observer: GatewayObserver, *records: object) -> None:
    for rec in records:
        observer.request_started(rec)  # type: ignore[arg-type]
        observer.request_finished(rec)  # type: ignore[arg-type]


def test_non_streaming_request_counts_tokens_cost_and_latency(
    observer: GatewayObserver, registry: CollectorRegistry
) -> None:
    usage = Usage(input_tokens=1000, cached_input_tokens=400, output_tokens=200, reasoning_tokens=50)
    finish(observer, record(usage=usage, duration=0.3))
    expect(registry, "modelgate_requests_total", 1, **EAST, key="team-a", stream="false", outcome="2xx")
    for token_type, count in [("input", 1000), ("cached_input", 400), ("output", 200), ("reasoning", 50)]:
        expect(
            registry,
            "modelgate_tokens_total",
            count,
            **EAST,
            **WHO,
            type=token_type,
            estimated="false",
            operation="create",
            tier="default",
        )
    expected_cost = pytest.approx((600 * 2.5 + 400 * 1.25 + 200 * 10) / 1e6)
    alice = {**WHO, "estimated": "false", "operation": "create", "tier": "default"}
    expect(registry, "modelgate_cost_usd_total", expected_cost, **EAST, **alice)
    expect(registry, "modelgate_request_duration_seconds_count", 1, **EAST, stream="false")
    expect(registry, "modelgate_request_duration_seconds_sum", pytest.approx(0.3), **EAST, stream="false")
    expect(registry, "modelgate_request_duration_seconds_bucket", 1, **EAST, stream="false", le="0.32")
    expect(registry, "modelgate_request_duration_seconds_bucket", 0, **EAST, stream="false", le="0.16")
    expect(registry, "modelgate_time_to_first_token_seconds_count", None, **EAST)
    expect(registry, "modelgate_attempts_total", 1, **EAST, outcome="success")
    expect(registry, "modelgate_requests_in_flight", 0)


def test_deployment_prices_override_model_prices(observer: GatewayObserver, registry: CollectorRegistry) -> None:
    finish(observer, record(deployment="west", usage=Usage(input_tokens=100, output_tokens=10)))
    west = {
        "model": "gpt-4o",
        "deployment": "west",
        **WHO,
        "estimated": "false",
        "operation": "create",
        "tier": "default",
    }
    expect(registry, "modelgate_cost_usd_total", pytest.approx((100 * 5 + 10 * 20) / 1e6), **west)


def test_stream_observes_ttft_and_time_per_output_token(observer: GatewayObserver, registry: CollectorRegistry) -> None:
    finish(observer, record(stream=True, ttft=0.2, duration=1.2, usage=Usage(input_tokens=10, output_tokens=11)))
    expect(registry, "modelgate_time_to_first_token_seconds_sum", pytest.approx(0.2), **EAST)
    expect(registry, "modelgate_time_to_first_token_seconds_bucket", 1, **EAST, le="0.25")
    # (1.2 - 0.2) / (11 - 1)
    expect(registry, "modelgate_time_per_output_token_seconds_sum", pytest.approx(0.1), **EAST)
    expect(registry, "modelgate_requests_total", 1, **EAST, key="team-a", stream="true", outcome="2xx")


def test_abandoned_stream_without_usage_is_estimated_and_marked(
    observer: GatewayObserver, registry: CollectorRegistry, log_sink
) -> None:
    body = json.dumps({"model": "gpt-4o", "input": "Write a long poem about the sea"}).encode()
    blocks = [delta_block("The sea "), delta_block("is wide")]
    finish(
        observer,
        record(
            stream=True,
            ttft=0.1,
            status=200,
            usage=None,
            request_body=body,
            stream_blocks=blocks,
            client_disconnected=True,
        ),
    )
    base = {"model": "gpt-4o", "deployment": "east", "estimated": "true", "operation": "create", "tier": "default"}
    expected_in = estimating.estimate_input_tokens(body)
    expected_out = estimating.count_tokens("The sea is wide")
    expect(registry, "modelgate_tokens_total", expected_in, **base, **WHO, type="input")
    expect(registry, "modelgate_tokens_total", expected_out, **base, **WHO, type="output")
    cost = sample(registry, "modelgate_cost_usd_total", **base, **WHO)
    assert cost == pytest.approx((expected_in * 2.5 + expected_out * 10) / 1e6)
    assert cost > 0
    expect(registry, "modelgate_requests_total", 1, **EAST, key="team-a", stream="true", outcome="client_disconnected")
    observer.close_log()
    line = json.loads(log_sink.lines()[0])
    assert line["usage_estimated"] is True
    assert line["output_tokens"] == expected_out
    assert line["client_disconnected"] is True


def test_failed_request_without_output_is_not_priced(observer: GatewayObserver, registry: CollectorRegistry) -> None:
    finish(observer, record(status=502, usage=None, error_type="upstream_error", request_body=b'{"input": "hi"}'))
    expect(registry, "modelgate_requests_total", 1, **EAST, key="team-a", stream="false", outcome="upstream_error")
    expect(
        registry,
        "modelgate_tokens_total",
        None,
        **EAST,
        **WHO,
        type="input",
        estimated="true",
        operation="create",
        tier="default",
    )


def test_unpriced_model_is_counted_visibly(observer: GatewayObserver, registry: CollectorRegistry) -> None:
    finish(observer, record(model="free-model", deployment="local", usage=Usage(input_tokens=5, output_tokens=5)))
    local = {"model": "free-model", "deployment": "local"}
    expect(registry, "modelgate_unpriced_requests_total", 1, **local)
    expect(
        registry,
        "modelgate_cost_usd_total",
        0,
        **local,
        **WHO,
        estimated="false",
        operation="create",
        tier="default",
    )
    expect(
        registry,
        "modelgate_tokens_total",
        5,
        **local,
        **WHO,
        type="input",
        estimated="false",
        operation="create",
        tier="default",
    )


def test_failover_counts_attempts_retries_fallbacks_and_cooldowns(
    observer: GatewayObserver, registry: CollectorRegistry
) -> None:
    attempts = [
        AttemptRecord("gpt-4o", "east", AttemptOutcome.SERVER_ERROR, 500),
        AttemptRecord("gpt-4o", "west", AttemptOutcome.SKIPPED),
        AttemptRecord("gpt-4o-mini", "mini", AttemptOutcome.SUCCESS, 200),
    ]
    rec = record(
        model="gpt-4o-mini",
        deployment="mini",
        attempts=attempts,
        fallbacks=[("gpt-4o", "gpt-4o-mini")],
        cooldowns=["east"],
        usage=Usage(input_tokens=1, output_tokens=1),
    )
    rec.requested_model = "gpt-4o"
    finish(observer, rec)
    expect(registry, "modelgate_attempts_total", 1, **EAST, outcome="server_error")
    expect(registry, "modelgate_attempts_total", 1, model="gpt-4o", deployment="west", outcome="skipped")
    expect(registry, "modelgate_retries_total", 1, model="gpt-4o")  # skipped: not sent
    expect(registry, "modelgate_fallbacks_total", 1, from_model="gpt-4o", to_model="gpt-4o-mini")
    expect(registry, "modelgate_cooldowns_total", 1, deployment="east")
    mini = {"model": "gpt-4o-mini", "deployment": "mini"}
    expect(registry, "modelgate_requests_total", 1, **mini, key="team-a", stream="false", outcome="2xx")


@pytest.mark.parametrize(
    ("extra", "name", "labels", "value"),
    [
        ({"cooldowns": ["east"]}, "modelgate_cooldowns_total", {"deployment": "east"}, 1),
        ({"deferrals": (("east", True),)}, "modelgate_deferrals_total", {"deployment": "east", "capped": "true"}, 1),
        ({"stripped_items": (("east", 3),)}, "modelgate_affinity_stripped_items_total", {"deployment": "east"}, 3),
        (
            {"fallbacks": [("gpt-4o-mini", "gpt-4o")]},
            "modelgate_fallbacks_total",
            {"from_model": "gpt-4o-mini", "to_model": "gpt-4o"},
            1,
        ),
        ({"affinity": "moved"}, "modelgate_affinity_requests_total", {"model": "gpt-4o", "outcome": "moved"}, 1),
    ],
)
def test_rerouting_of_a_single_attempt_is_counted(
    observer: GatewayObserver,
    registry: CollectorRegistry,
    extra: dict[str, object],
    name: str,
    labels: dict[str, str],
    value: int,
) -> None:
    # One attempt is the usual request, whose rarer figures are looked at only when there are any.
    rec = record(attempts=[AttemptRecord("gpt-4o", "east", AttemptOutcome.SUCCESS, 200)], **extra)
    finish(observer, rec)
    expect(registry, name, value, **labels)
    expect(registry, "modelgate_attempts_total", 1, **EAST, outcome="success")
    expect(registry, "modelgate_retries_total", 0, model="gpt-4o")


@pytest.mark.parametrize(
    ("status", "outcome"), [(0, "0xx"), (99, "0xx"), (100, "1xx"), (204, "2xx"), (599, "5xx"), (600, "0xx")]
)
def test_the_outcome_is_the_status_class_and_0xx_outside_them(
    observer: GatewayObserver, registry: CollectorRegistry, status: int, outcome: str
) -> None:
    finish(observer, record(status=status))
    expect(registry, "modelgate_requests_total", 1, **EAST, key="team-a", stream="false", outcome=outcome)


def test_unknown_names_get_bounded_labels(observer: GatewayObserver, registry: CollectorRegistry) -> None:
    rec = record(
        model="gpt-5-from-the-client",
        deployment=None,
        key=None,
        status=404,
        error_type="invalid_request_error",
        attempts=[],
    )
    rec.requested_model = "_other"
    rec.model = None
    finish(observer, rec)
    bounded = {"model": "_other", "deployment": "_none", "key": "_none"}
    expect(registry, "modelgate_requests_total", 1, **bounded, stream="false", outcome="invalid_request_error")


def test_error_type_labels_are_capped_then_fall_back_to_status_class(
    observer: GatewayObserver, registry: CollectorRegistry
) -> None:
    for i in range(40):
        finish(observer, record(status=400, error_type=f"weird_{i}", start=float(i)))
    expect(registry, "modelgate_requests_total", 40 - 32, **EAST, key="team-a", stream="false", outcome="4xx")


def test_end_user_label_is_capped_and_the_log_keeps_the_exact_user(registry: CollectorRegistry, log_sink) -> None:
    from observability_traffic import CHECKSUM, make_config

    observer = GatewayObserver(registry, log_stream=log_sink)
    observer.config_loaded(make_config(end_user_limit=2), CHECKSUM)
    for i, user in enumerate(["u1", "u2", "u3", "u4", "u1"]):
        finish(observer, record(end_user=user, start=float(i), usage=Usage(input_tokens=1_000_000)))
    labels = {
        "model": "gpt-4o",
        "deployment": "east",
        "key": "team-a",
        "tenant": "acme",
        "estimated": "false",
        "operation": "create",
        "tier": "default",
    }
    expect(registry, "modelgate_cost_usd_total", pytest.approx(5), **labels, end_user="u1")
    expect(registry, "modelgate_cost_usd_total", pytest.approx(2.5), **labels, end_user="u2")
    expect(registry, "modelgate_cost_usd_total", pytest.approx(5), **labels, end_user="other")
    expect(registry, "modelgate_cost_usd_total", None, **labels, end_user="u3")
    expect(registry, "modelgate_end_user_labels", 2)
    expect(registry, "modelgate_end_user_overflow_total", 2)
    observer.close_log()
    assert [json.loads(x)["end_user"] for x in log_sink.lines()] == ["u1", "u2", "u3", "u4", "u1"]


def test_request_is_accounted_exactly_once(observer: GatewayObserver, registry: CollectorRegistry) -> None:
    rec = record(usage=Usage(input_tokens=3))
    observer.request_started(rec)
    expect(registry, "modelgate_requests_in_flight", 1)
    observer.request_finished(rec)
    observer.request_finished(rec)
    expect(registry, "modelgate_requests_total", 1, **EAST, key="team-a", stream="false", outcome="2xx")
    expect(
        registry,
        "modelgate_tokens_total",
        3,
        **EAST,
        **WHO,
        type="input",
        estimated="false",
        operation="create",
        tier="default",
    )
    expect(registry, "modelgate_observer_errors_total", 1)
    expect(registry, "modelgate_requests_in_flight", 0)


def test_non_create_routes_are_never_priced(observer: GatewayObserver, registry: CollectorRegistry) -> None:
    body = json.dumps({"usage": {"input_tokens": 9, "output_tokens": 9}}).encode()
    finish(observer, record(route="retrieve", response_body=body))
    # pre-labelled, never incremented
    expect(
        registry,
        "modelgate_tokens_total",
        0,
        **EAST,
        key="_none",
        tenant="_none",
        end_user="_none",
        type="input",
        estimated="false",
        operation="create",
        tier="default",
    )


def test_usage_left_in_the_body_is_read_not_estimated(observer: GatewayObserver, registry: CollectorRegistry) -> None:
    body = json.dumps({"usage": {"input_tokens": 9, "output_tokens": 4}}).encode()
    finish(observer, record(response_body=body))
    expect(
        registry,
        "modelgate_tokens_total",
        4,
        **EAST,
        **WHO,
        type="output",
        estimated="false",
        operation="create",
        tier="default",
    )


def test_deployment_health_gauge(observer: GatewayObserver, registry: CollectorRegistry) -> None:
    expect(registry, "modelgate_deployment_cooling_down", 0, deployment="east")
    observer.deployment_health("east", True)
    expect(registry, "modelgate_deployment_cooling_down", 1, deployment="east")
    observer.deployment_health("east", False)
    expect(registry, "modelgate_deployment_cooling_down", 0, deployment="east")
    observer.deployment_health("not-configured", True)
    expect(registry, "modelgate_deployment_cooling_down", None, deployment="not-configured")
