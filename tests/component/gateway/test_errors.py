"""Bad input gets an OpenAI-shaped error with the right status; no secret is echoed."""

from __future__ import annotations

import aiohttp
import openai
import pytest

from gateway_harness import API_KEY, config_doc, deployment


def _doc(upstream_a, **spec) -> dict:
    doc = config_doc(
        [deployment("a", upstream_a.base_url)],
        [
            {"name": "gpt-4o", "targets": [{"deployment": "a"}]},
            {"name": "restricted", "targets": [{"deployment": "a"}]},
        ],
        **spec,
    )
    doc["spec"]["auth"]["keys"][0]["models"] = ["gpt-4o"]
    return doc


async def _post(gw, body: bytes, headers: dict | None = None, path: str = "/responses") -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session:
        async with session.post(
            gw.base_url + path,
            data=body,
            headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json", **(headers or {})},
        ) as resp:
            return resp.status, await resp.json()


def _assert_envelope(body: dict) -> dict:
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"]
    return body["error"]


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        (b"{not json", 400, None),
        (b"[1, 2]", 400, None),
        (b"", 400, None),
        (b'{"input": "hi"}', 400, "model"),
        (b'{"model": 5, "input": "hi"}', 400, "model"),
        (b'{"model": "nope", "input": "hi"}', 404, "model"),
        (b'{"model": "restricted", "input": "hi"}', 403, "model"),
        (b'{"model": "gpt-4o", "input": "hi", "stream": "yes"}', 400, "stream"),
    ],
)
async def test_malformed_requests_get_openai_errors(gateway, upstream_a, body, status, param) -> None:
    gw = await gateway(_doc(upstream_a))
    got_status, got = await _post(gw, body)
    assert got_status == status
    assert _assert_envelope(got)["param"] == param
    assert upstream_a.seen == []


async def test_oversized_body_is_refused_with_413(gateway, upstream_a) -> None:
    gw = await gateway(_doc(upstream_a, limits={"maxRequestBodyBytes": 2048}))
    status, body = await _post(gw, b'{"model": "gpt-4o", "input": "' + b"x" * 4096 + b'"}')
    assert status == 413 and _assert_envelope(body)["code"] == "request_too_large"


@pytest.mark.parametrize("key", [None, "sk-wrong"])
async def test_missing_or_wrong_key_is_401_and_not_echoed(gateway, upstream_a, key) -> None:
    gw = await gateway(_doc(upstream_a))
    headers = {"Authorization": f"Bearer {key}"} if key else {"Authorization": ""}
    status, body = await _post(gw, b'{"model": "gpt-4o", "input": "hi"}', headers)
    assert status == 401
    assert "sk-wrong" not in _assert_envelope(body)["message"]


async def test_upstream_credentials_rejected_never_leak_the_upstream_body(gateway, upstream_a) -> None:
    from fake_responses_upstream import Behaviour

    upstream_a.script = [
        Behaviour(
            status=401,
            error_body={
                "error": {
                    "message": "Incorrect API key provided: sk-upstream-secret-value",
                    "type": "x",
                    "param": None,
                    "code": None,
                }
            },
        )
    ]
    gw = await gateway(_doc(upstream_a))
    async with gw.client() as client:
        with pytest.raises(openai.APIStatusError) as caught:
            await client.responses.create(model="gpt-4o", input="hi")
    assert caught.value.status_code == 502
    assert "sk-upstream" not in caught.value.response.text


async def test_unknown_paths_and_sdk_errors_are_openai_shaped(gateway, upstream_a) -> None:
    gw = await gateway(_doc(upstream_a))
    async with aiohttp.ClientSession() as session:
        async with session.get(gw.base_url + "/nope") as resp:
            assert resp.status == 404 and resp.headers["X-Request-Id"]
            _assert_envelope(await resp.json())
        async with session.get(gw.base_url.removesuffix("/v1") + "/healthz") as resp:
            assert resp.status == 200 and resp.headers["X-Request-Id"]
    async with gw.client(api_key="sk-wrong") as client:
        with pytest.raises(openai.AuthenticationError):
            await client.responses.create(model="gpt-4o", input="hi")


async def test_models_endpoint_lists_what_the_key_may_use(gateway, upstream_a) -> None:
    gw = await gateway(_doc(upstream_a))
    async with gw.client() as client:
        models = [m.id async for m in client.models.list()]
    assert models == ["gpt-4o"]


async def test_secrets_never_appear_in_logs_or_readyz(gateway, upstream_a, caplog) -> None:
    gw = await gateway(_doc(upstream_a))
    async with gw.client() as client:
        await client.responses.create(model="gpt-4o", input="hi")
    async with aiohttp.ClientSession() as session:
        async with session.get(gw.base_url.removesuffix("/v1") + "/readyz") as resp:
            ready = await resp.text()
    text = ready + caplog.text + gw.log_path.read_text()
    for secret in ("sk-upstream-secret-value", API_KEY, "test-signing-key"):
        assert secret not in text
