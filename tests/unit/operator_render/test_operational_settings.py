"""Operational knobs of the operator: retry backoff, transient API errors, liveness endpoint, the
base ConfigMap reference."""

from __future__ import annotations

import kubernetes
import pytest

from gateway_process import free_port
from modelgate_operator.errors import KubeApiError
from modelgate_operator.kube.client import KubeClient
from modelgate_operator.reconciling.retrying import Backoff
from modelgate_operator.settings import OperatorSettings, SettingsError


def test_backoff_doubles_up_to_the_cap_and_resets_on_success() -> None:
    backoff = Backoff(initial=5, maximum=60)
    assert [backoff.failed() for _ in range(6)] == [5, 10, 20, 40, 60, 60]
    assert backoff.succeeded() == 6 and backoff.failed() == 5
    assert Backoff(initial=5, maximum=60).failed(hint=0.2) == 0.2  # the error's own first delay


def test_unreachable_api_server_is_one_short_transient_error() -> None:
    config = kubernetes.client.Configuration()
    config.host = f"https://127.0.0.1:{free_port()}"  # nothing listens there
    api = kubernetes.client.ApiClient(config)
    try:
        with pytest.raises(KubeApiError) as err:
            KubeClient(OperatorSettings(namespaces=("team-a",)), api).list_routes()
    finally:
        api.close()
    message = str(err.value)
    assert message.startswith("list ModelRoutes in team-a: API server unreachable: ")
    assert "Connection refused" in message and "\n" not in message and len(message) < 300
    assert err.value.delay is None  # the loop's backoff decides


def test_liveness_endpoint_from_the_environment() -> None:
    assert OperatorSettings.from_env({}).liveness_endpoint == "http://0.0.0.0:8080/healthz"
    env = {"MODELGATE_OPERATOR_LIVENESS_HOST": "::", "MODELGATE_OPERATOR_LIVENESS_PORT": "18080"}
    assert OperatorSettings.from_env(env).liveness_endpoint == "http://[::]:18080/healthz"
    assert OperatorSettings.from_env({"MODELGATE_OPERATOR_LIVENESS_PORT": "0"}).liveness_endpoint is None
    for bad in ("http", "70000", "-1"):
        with pytest.raises(SettingsError, match="MODELGATE_OPERATOR_LIVENESS_PORT"):
            OperatorSettings.from_env({"MODELGATE_OPERATOR_LIVENESS_PORT": bad})


def test_retry_and_base_configmap_from_the_environment() -> None:
    env = {"MODELGATE_OPERATOR_RETRY_SECONDS": "2", "MODELGATE_OPERATOR_RETRY_MAX_SECONDS": "30",
           "MODELGATE_OPERATOR_BASE_CONFIG_CONFIGMAP": "ops/base", "POD_NAMESPACE": "mg"}
    settings = OperatorSettings.from_env(env)
    assert (settings.retry_seconds, settings.retry_max_seconds) == (2.0, 30.0)
    assert settings.base_config_configmap == ("ops", "base")
    short = OperatorSettings.from_env({"MODELGATE_OPERATOR_BASE_CONFIG_CONFIGMAP": "base", "POD_NAMESPACE": "mg"})
    assert short.base_config_configmap == ("mg", "base")
    with pytest.raises(SettingsError, match="BASE_CONFIG_CONFIGMAP"):
        OperatorSettings.from_env({"MODELGATE_OPERATOR_BASE_CONFIG_CONFIGMAP": "a/b/c"})
