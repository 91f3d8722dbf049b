"""Compiling a document: secrets resolved by reference, never embedded; failures name the reference."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from modelgate_gateway.config import ConfigError, validate_data
from modelgate_gateway.observability.pricing import Prices
from modelgate_gateway.runtime import RuntimeConfig, compile_runtime


def _doc(credentials: dict, **dep) -> dict:
    return {"apiVersion": "config.modelgate.dev/v1alpha1", "kind": "GatewayConfig", "spec": {
        "deployments": [{"name": "a", "baseUrl": "https://x.example/v1/", "model": "m",
                         "credentials": credentials, **dep}],
        "models": [{"name": "gpt-4o", "targets": [{"deployment": "a"}],
                    "pricing": {"inputUsdPerMillionTokens": 2.5, "outputUsdPerMillionTokens": 10}}],
        "auth": {"keys": [{"name": "team", "valueFrom": {"secretKey": "team-key"}, "models": ["gpt-4o"]}]},
    }}


def test_references_resolve_from_env_file_and_secret_store(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("UPSTREAM_KEY", "sk-env")
    (tmp_path / "key").write_text("sk-file\n")
    secrets = {"team-key": b"sk-team", "up": b"sk-store"}
    for ref, expected in [({"env": "UPSTREAM_KEY"}, "sk-env"), ({"file": "key"}, "sk-file"),
                          ({"secretKey": "up"}, "sk-store")]:
        runtime = compile_runtime(validate_data(_doc(ref)), secrets, str(tmp_path))
        assert _sent_headers(runtime)["Authorization"] == f"Bearer {expected}"
    assert runtime.keys_by_digest[hashlib.sha256(b"sk-team").digest()].allows("gpt-4o")
    endpoint = runtime.deployments["a"].endpoint
    assert endpoint is not None and endpoint.prefix == "/v1" and endpoint.origin == "https://x.example:443"
    # Prices are compiled once, by observability (the runtime no longer carries an unused copy).
    assert Prices.from_pricing(runtime.config.spec.models[0].pricing).output == pytest.approx(10e-6)


def _sent_headers(runtime: RuntimeConfig) -> dict[str, str]:
    """The headers the deployment's prepared endpoint writes (it owns them, not the runtime)."""
    endpoint = runtime.deployments["a"].endpoint
    assert endpoint is not None
    head = endpoint.head("POST", "/responses", None, (), None, None).decode("latin-1")
    return dict(line.split(": ", 1) for line in head.split("\r\n")[1:] if ": " in line)


def test_azure_deployments_send_the_api_key_header(tmp_path: Path) -> None:
    runtime = compile_runtime(validate_data(_doc({"secretKey": "up"}, provider="azure-openai")),
                              {"up": b"k", "team-key": b"t"}, str(tmp_path))
    headers = _sent_headers(runtime)
    assert headers["api-key"] == "k" and "Authorization" not in headers


@pytest.mark.parametrize(("ref", "message"), [
    ({"env": "MODELGATE_TEST_UNSET"}, "environment variable MODELGATE_TEST_UNSET is not set"),
    ({"file": "missing"}, "cannot read"),
    ({"secretKey": "nope"}, "key 'nope' is not in the gateway's secret store"),
])
def test_missing_secrets_fail_the_compile_with_the_reference_only(tmp_path: Path, ref: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        compile_runtime(validate_data(_doc(ref)), {"team-key": b"sk-team-secret"}, str(tmp_path))
    assert message in str(caught.value) and "spec.deployments[0].credentials" in str(caught.value)
    assert "sk-team-secret" not in str(caught.value)


@pytest.mark.parametrize(("secret", "headers", "message"), [
    (b"sk-one\nsk-two", {}, "the value of header 'Authorization' contains a line break"),
    (b"sk-fine", {"X-Team": "blue\r\nX-Evil: 1"}, "the value of header 'X-Team' contains a line break"),
    (b"sk-fine", {"X Team": "blue"}, "invalid HTTP header name 'X Team'"),
])
def test_headers_that_cannot_be_sent_fail_the_compile_without_the_value(
        tmp_path: Path, secret: bytes, headers: dict[str, str], message: str) -> None:
    """A line break inside a key (a Secret pasted with two keys) would split the upstream request."""
    with pytest.raises(ConfigError) as caught:
        compile_runtime(validate_data(_doc({"secretKey": "up"}, headers=headers)),
                        {"up": secret, "team-key": b"t"}, str(tmp_path))
    assert message in str(caught.value) and "spec.deployments[0]" in str(caught.value)
    assert "sk-one" not in str(caught.value) and "sk-fine" not in str(caught.value)


def test_each_deployment_gets_its_upstream_endpoint_prepared(tmp_path: Path) -> None:
    runtime = compile_runtime(validate_data(_doc({"secretKey": "up"}, queryParams={"api-version": "v1"})),
                              {"up": b"k", "team-key": b"t"}, str(tmp_path))
    endpoint = runtime.deployments["a"].endpoint
    assert endpoint is not None and endpoint.origin == "https://x.example:443" and endpoint.tls
    assert endpoint.head("POST", "/responses", None, (), "application/json", 2).startswith(
        b"POST /v1/responses?api-version=v1 HTTP/1.1\r\nHost: x.example\r\nAuthorization: Bearer k\r\n")


def test_the_egress_proxy_comes_from_the_environment_and_a_bad_one_fails_the_compile(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://team:hunter2@proxy.corp:3128")
    runtime = compile_runtime(validate_data(_doc({"secretKey": "up"})), {"up": b"k", "team-key": b"t"}, str(tmp_path))
    endpoint = runtime.deployments["a"].endpoint
    assert endpoint is not None and endpoint.proxy is not None and endpoint.proxy.host == "proxy.corp"
    monkeypatch.setenv("HTTPS_PROXY", "socks5://team:hunter2@proxy.corp:1080")
    with pytest.raises(ConfigError) as caught:
        compile_runtime(validate_data(_doc({"secretKey": "up"})), {"up": b"k", "team-key": b"t"}, str(tmp_path))
    assert "proxy" in str(caught.value) and "hunter2" not in str(caught.value)
