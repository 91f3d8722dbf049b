"""A deployment is one server (baseUrl), a list of servers (baseUrls) or a Service (serviceRef)."""

from __future__ import annotations

from typing import Any

import pytest

from modelgate_gateway.config import ConfigError, validate_data


def _doc(**deployment: Any) -> dict[str, Any]:
    return {
        "apiVersion": "config.modelgate.dev/v1alpha1",
        "kind": "GatewayConfig",
        "spec": {
            "deployments": [{"name": "d", "model": "m", **deployment}],
            "models": [{"name": "m", "targets": [{"deployment": "d"}]}],
        },
    }


SERVICE = {"namespace": "models", "name": "llama", "port": "http"}


def test_each_addressing_alone_is_valid() -> None:
    validate_data(_doc(baseUrl="http://a:1/v1"))
    validate_data(_doc(baseUrls=["http://a:1/v1", "http://b:1/v1"], loadMetrics={}))
    config = validate_data(_doc(serviceRef={**SERVICE, "port": 8000}))
    assert config.spec.deployments[0].service_ref is not None
    assert config.spec.deployments[0].service_ref.port == 8000


@pytest.mark.parametrize(
    ("deployment", "problem"),
    [
        ({}, "baseUrl: required unless provider is mock"),
        ({"baseUrl": "http://a:1/v1", "serviceRef": SERVICE}, "serviceRef: only one of"),
        ({"baseUrls": ["http://a:1/v1"], "serviceRef": SERVICE}, "serviceRef: only one of"),
        ({"baseUrl": "http://a:1/v1", "loadMetrics": {}}, "loadMetrics: only for a pool"),
        ({"baseUrls": ["http://a:1/v1", "http://a:1/other"]}, "a second URL of server 'a:1'"),
    ],
)
def test_conflicting_or_missing_addresses_are_refused(deployment: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_data(_doc(**deployment))
    assert any(problem in error for error in caught.value.errors), caught.value.errors


@pytest.mark.parametrize(
    "ref",
    [
        {**SERVICE, "name": "Not_A_Name"},
        {**SERVICE, "namespace": ""},
        {**SERVICE, "port": "this-port-name-is-too-long"},
        {"namespace": "models", "name": "llama"},
    ],
)
def test_malformed_service_refs_are_refused(ref: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        validate_data(_doc(serviceRef=ref))
