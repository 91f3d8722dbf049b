"""The /metrics app serves the registry in Prometheus text format, and nothing else."""

from typing import Any

from prometheus_client import CollectorRegistry

from modelgate_gateway.observability.exposition import metrics_app
from modelgate_gateway.observability.observer import GatewayObserver
from modelgate_gateway.observability.recording import Usage
from observability_traffic import CHECKSUM, make_config, record


async def test_metrics_endpoint_exposes_observed_requests(aiohttp_client: Any) -> None:
    registry = CollectorRegistry()
    observer = GatewayObserver(registry)
    observer.config_loaded(make_config(), CHECKSUM)
    observer.config_loaded(make_config(), CHECKSUM)
    observer.request_started(rec := record(usage=Usage(input_tokens=12, output_tokens=3)))
    observer.request_finished(rec)
    client = await aiohttp_client(metrics_app(registry))

    response = await client.get("/metrics")
    text = await response.text()
    observer.close_log()

    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    assert (
        'modelgate_tokens_total{deployment="east",end_user="alice",estimated="false",key="team-a",model="gpt-4o",'
        'operation="create",tenant="acme",tier="default",type="input"} 12.0'
    ) in text
    assert 'modelgate_config_reloads_total{result="success"} 2.0' in text
    assert "# TYPE modelgate_request_duration_seconds histogram" in text
    assert (await client.get("/v1/responses")).status == 404


async def test_with_the_gateway_state_the_metrics_port_also_answers_health_and_readiness(aiohttp_client: Any) -> None:
    """A sidecar's client port is loopback-only: probes and the operator use the metrics port."""
    from modelgate_gateway.app import make_state, metrics_port_app
    from modelgate_gateway.config import validate_data
    from modelgate_gateway.runtime import compile_runtime
    from observability_traffic import config_data

    registry = CollectorRegistry()
    observer = GatewayObserver(registry)
    state = make_state(observer)
    client = await aiohttp_client(metrics_port_app(registry, state))
    assert (await client.get("/healthz")).status == 200
    not_yet = await client.get("/readyz")
    assert (not_yet.status, (await not_yet.json())["ready"]) == (503, False)
    state.runtime = compile_runtime(validate_data(config_data()), {}, ".")
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["checksum"] == state.runtime.checksum
    observer.close_log()
