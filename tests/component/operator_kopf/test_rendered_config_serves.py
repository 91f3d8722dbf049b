"""The operator's output drives the real gateway: render -> load -> request through the SDK."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fake_responses_upstream import FakeResponsesUpstream
from gateway_harness import API_KEY, GatewayHarness
from kube_routes import deployment, mock_deployment, route
from modelgate_gateway.config import validate_data
from modelgate_operator.rendering.render import render
from modelgate_operator.rendering.resources import parse_route

BASE = validate_data({
    "apiVersion": "config.modelgate.dev/v1alpha1", "kind": "GatewayConfig",
    "spec": {
        "auth": {"keys": [{"name": "test", "sha256": hashlib.sha256(API_KEY.encode()).hexdigest()}]},
        "responseIds": {"signingKey": {"secretKey": "signing-key"}},
    },
})


@pytest.fixture
async def upstream() -> AsyncIterator[FakeResponsesUpstream]:
    fake = FakeResponsesUpstream("routed", text="Served through a rendered ModelRoute")
    await fake.start()
    yield fake
    await fake.close()


async def test_gateway_serves_the_models_the_operator_rendered(
        tmp_path: Path, upstream: FakeResponsesUpstream) -> None:
    routes = [
        parse_route(route("team-model", "team-model", namespace="team-a", deployments=[
            deployment("primary", secret="upstream", key="token", provider="openai-compatible",
                       baseUrl=upstream.base_url, upstreamModel="upstream-model")]), "modelgate"),
        parse_route(route("canned", "canned", deployments=[mock_deployment(text="canned words")]),
                    "modelgate"),
    ]
    secrets = {("team-a", "upstream"): {"token": b"sk-from-the-route-secret"}}
    rendered = render(routes, secrets, BASE, gateway="modelgate", generation=1)
    assert all(v.included for v in rendered.verdicts.values())

    harness = GatewayHarness(tmp_path, json.loads(rendered.document))
    for key, value in rendered.secret_data.items():  # what the mounted upstream-keys Secret holds
        (harness.secrets_dir / key).write_bytes(value)
    await harness.start()
    try:
        client = harness.client()
        models = sorted(m.id for m in (await client.models.list()).data)
        assert models == ["canned", "team-model"]
        response = await client.responses.create(model="team-model", input="hello")
        assert response.output_text == "Served through a rendered ModelRoute"
        sent = upstream.creates[-1]
        assert sent.body["model"] == "upstream-model"
        assert sent.headers["Authorization"] == "Bearer sk-from-the-route-secret"
        canned = await client.responses.create(model="canned", input="hi")
        assert canned.output_text == "canned words"
    finally:
        await harness.close()
