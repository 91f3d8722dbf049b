"""Reloads pre-create known series, remove vanished ones and publish the config's identity."""

from prometheus_client import CollectorRegistry

from modelgate_gateway.observability.observer import GatewayObserver
from modelgate_gateway.observability.recording import Usage
from observability_traffic import CHECKSUM, make_config, record


def test_known_series_exist_at_zero_before_any_traffic(observer: GatewayObserver, registry: CollectorRegistry) -> None:
    for deployment in ("east", "west"):
        assert (
            registry.get_sample_value(
                "modelgate_tokens_total",
                {
                    "model": "gpt-4o",
                    "deployment": deployment,
                    "key": "_none",
                    "tenant": "_none",
                    "end_user": "_none",
                    "type": "cached_input",
                    "estimated": "false",
                    "operation": "create",
                    "tier": "default",
                },
            )
            == 0
        )
        assert (
            registry.get_sample_value(
                "modelgate_attempts_total",
                {"model": "gpt-4o", "deployment": deployment, "outcome": "success"},
            )
            == 0
        )
    assert (
        registry.get_sample_value("modelgate_fallbacks_total", {"from_model": "gpt-4o", "to_model": "gpt-4o-mini"}) == 0
    )
    assert registry.get_sample_value("modelgate_cooldowns_total", {"deployment": "local"}) == 0


def test_reload_removes_series_of_vanished_models_and_deployments(
    observer: GatewayObserver, registry: CollectorRegistry
) -> None:
    observer.request_started(rec := record(model="gpt-4o-mini", deployment="mini", usage=Usage(input_tokens=7)))
    observer.request_finished(rec)
    labels = {
        "model": "gpt-4o-mini",
        "deployment": "mini",
        "key": "team-a",
        "stream": "false",
        "outcome": "2xx",
    }
    assert registry.get_sample_value("modelgate_requests_total", labels) == 1

    observer.config_loaded(make_config(models=["gpt-4o", "free-model"]), CHECKSUM)

    assert registry.get_sample_value("modelgate_requests_total", labels) is None
    assert (
        registry.get_sample_value(
            "modelgate_request_duration_seconds_count",
            {"model": "gpt-4o-mini", "deployment": "mini", "stream": "false"},
        )
        is None
    )
    assert registry.get_sample_value("modelgate_deployment_cooling_down", {"deployment": "mini"}) is None
    assert (
        registry.get_sample_value("modelgate_fallbacks_total", {"from_model": "gpt-4o", "to_model": "gpt-4o-mini"})
        is None
    )
    # kept series keep their values
    assert registry.get_sample_value("modelgate_deployment_cooling_down", {"deployment": "east"}) == 0
    # a late request for the vanished model is folded into _other, not resurrected
    observer.request_started(late := record(model="gpt-4o-mini", deployment="mini"))
    observer.request_finished(late)
    assert registry.get_sample_value("modelgate_requests_total", labels) is None
    assert (
        registry.get_sample_value("modelgate_requests_total", {**labels, "model": "_other", "deployment": "_other"})
        == 1
    )


def test_kept_deployment_keeps_its_health_state_across_reloads(
    observer: GatewayObserver, registry: CollectorRegistry
) -> None:
    observer.deployment_health("east", True)
    observer.config_loaded(make_config(), CHECKSUM)
    assert registry.get_sample_value("modelgate_deployment_cooling_down", {"deployment": "east"}) == 1


def test_info_metric_and_reload_results(observer: GatewayObserver, registry: CollectorRegistry) -> None:
    assert (
        registry.get_sample_value(
            "modelgate_config_info",
            {
                "api_version": "config.modelgate.dev/v1alpha1",
                "checksum": CHECKSUM,
                "generation": "7",
            },
        )
        == 1
    )
    assert registry.get_sample_value("modelgate_config_reloads_total", {"result": "success"}) == 1
    assert registry.get_sample_value("modelgate_config_last_reload_successful") == 1
    assert registry.get_sample_value("modelgate_config_last_reload_success_timestamp_seconds") == 1_700_000_000.0

    observer.config_failed("spec.models[0].targets: unknown deployment")
    assert registry.get_sample_value("modelgate_config_reloads_total", {"result": "failure"}) == 1
    assert registry.get_sample_value("modelgate_config_last_reload_successful") == 0
    assert observer.last_reload_error is not None

    other = "sha256:" + "cd" * 32
    observer.config_loaded(make_config(), other)
    info = next(s for s in registry.collect() if s.name == "modelgate_config").samples
    assert [s.labels["checksum"] for s in info] == [other]  # replaced, not accumulated
    assert registry.get_sample_value("modelgate_config_last_reload_successful") == 1
