"""Response ids belong to their owner: another key gets 404 on every follow-up, a key of the same tenant works.

Keys: ``alice`` (her own tenant), ``bob`` and ``carol`` (tenant ``team``). Bob creates a response on a
Responses, a chat-completions (state in Redis) and a mock deployment; Alice's every follow-up call
(retrieve, retrieve as a stream, delete, cancel, input_items, ``previous_response_id``) gets exactly
what a forged id gets and never reaches an upstream; Carol's work as Bob's do.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest

from fake_chat_upstream import FakeChatUpstream
from fake_responses_upstream import FakeResponsesUpstream
from gateway_harness import SIGNING_KEY, GatewayHarness, config_doc, deployment
from modelgate_gateway import ids
from redis_server import running_redis_server
from tenant_gateway import KEYS, auth, running

TEAM_KEYS = {"alice": (None, ["*"]), "bob": ("team", ["*"]), "carol": ("team", ["*"])}


@dataclass
class Setup:
    gateway: GatewayHarness
    upstream_requests: Callable[[], int]
    """How many requests the deployment's upstream has received (mock: none to count)."""
    background: bool
    """The upstream can run background responses (only those can be streamed again)."""


@asynccontextmanager
async def _setup(
    kind: str,
    tmp_path: Path,
    keys: dict[str, tuple[str | None, list[str]]] = TEAM_KEYS,
    allow_unauthenticated: bool = False,
) -> AsyncIterator[Setup]:
    async with AsyncExitStack() as stack:
        extra: dict[str, Any] = {}
        count: Callable[[], int] = lambda: 0  # noqa: E731
        if kind == "responses":
            fake = FakeResponsesUpstream("t")
            await fake.start()
            stack.push_async_callback(fake.close)
            dep = deployment("d", fake.base_url)
            count = lambda: len(fake.seen)  # noqa: E731
        elif kind == "chat":
            chat = await stack.enter_async_context(FakeChatUpstream())
            redis = stack.enter_context(running_redis_server(tmp_path))
            dep = deployment("d", chat.base_url, api="chat_completions", provider="vllm")
            extra["state"] = {"redisUrl": redis.url}
            count = lambda: len(chat.requests)  # noqa: E731
        else:
            dep = {"name": "d", "provider": "mock", "model": "mock-1"}
        doc = config_doc(
            [dep], [{"name": "m", "targets": [{"deployment": "d"}]}], auth=auth(keys, allow_unauthenticated), **extra
        )
        gw = await stack.enter_async_context(running(tmp_path, doc))
        yield Setup(gw, count, kind == "responses")


def _forged(response_id: str) -> str:
    """A well-formed id for the same deployment and upstream response, signed with another key."""
    ref = ids.peek(response_id)
    assert ref is not None
    other = b"not-the-gateway-signing-key"
    return ids.encode(other, ids.owner_tag(other, ids.key_owner("alice", None)), ref.deployment, ref.upstream_id)


async def _error_of(call: Any) -> tuple[int, dict[str, Any]]:
    with pytest.raises(openai.APIStatusError) as caught:
        await call
    return caught.value.status_code, caught.value.body


async def _every_follow_up(client: openai.AsyncOpenAI, rid: str) -> list[tuple[int, dict[str, Any]]]:
    return [
        await _error_of(client.responses.retrieve(rid)),
        await _error_of(client.responses.retrieve(rid, stream=True)),
        await _error_of(client.responses.input_items.list(rid)),
        await _error_of(client.responses.cancel(rid)),
        await _error_of(client.responses.delete(rid)),
        await _error_of(client.responses.create(model="m", input="go on", previous_response_id=rid)),
    ]


def _as_if(rid: str) -> list[tuple[int, dict[str, Any]]]:
    """What a caller gets for an id that does not exist."""
    missing = {
        "message": f"No response found with id '{rid}'.",
        "type": "invalid_request_error",
        "param": None,
        "code": "not_found",
    }
    previous = {
        "message": f"Previous response with id '{rid}' not found.",
        "type": "invalid_request_error",
        "param": "previous_response_id",
        "code": "previous_response_not_found",
    }
    return [(404, missing)] * 5 + [(400, previous)]


@pytest.mark.parametrize("kind", ["responses", "chat", "mock"])
async def test_another_key_gets_404_on_every_follow_up_as_if_the_id_did_not_exist(tmp_path: Path, kind: str) -> None:
    async with _setup(kind, tmp_path) as setup:
        gw = setup.gateway
        async with gw.client(KEYS["bob"]) as bob, gw.client(KEYS["alice"]) as alice:
            created = await bob.responses.create(model="m", input="hi", background=setup.background or openai.omit)
            sent = setup.upstream_requests()
            forged = _forged(created.id)
            assert await _every_follow_up(alice, forged) == _as_if(forged)
            assert await _every_follow_up(alice, created.id) == _as_if(created.id)
            assert setup.upstream_requests() == sent  # nothing of Alice's reached the upstream
            again = await bob.responses.retrieve(created.id)  # and her delete deleted nothing
            lines = await _log_lines_of(gw, "alice", 12)
    assert again.output_text == created.output_text
    assert [(line["status"], line["error_code"]) for line in lines] == [
        (status, body["code"]) for status, body in _as_if(forged) + _as_if(created.id)
    ]


async def _log_lines_of(gw: GatewayHarness, key: str, count: int) -> list[dict[str, Any]]:
    """The request log lines of ``key`` once there are ``count`` (written off the request's path)."""
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        lines = [line for line in gw.log_lines() if line.get("key") == key]
        if len(lines) >= count or asyncio.get_running_loop().time() > deadline:
            return lines
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("kind", ["responses", "chat", "mock"])
async def test_a_key_of_the_same_tenant_uses_every_follow_up(tmp_path: Path, kind: str) -> None:
    async with _setup(kind, tmp_path) as setup:
        gw = setup.gateway
        async with gw.client(KEYS["bob"]) as bob, gw.client(KEYS["carol"]) as carol:
            created = await bob.responses.create(
                model="m", input="My name is Ada.", background=setup.background or openai.omit
            )
            assert (await carol.responses.retrieve(created.id)).output_text == created.output_text
            if setup.background:
                stream = await carol.responses.retrieve(created.id, stream=True)
                events = [event async for event in stream]
                assert events[-1].type == "response.completed" and events[-1].response.id == created.id
            else:  # no background runs here: Carol gets what Bob gets, not a 404
                assert await _error_of(carol.responses.retrieve(created.id, stream=True)) == await _error_of(
                    bob.responses.retrieve(created.id, stream=True)
                )
                assert (await _error_of(carol.responses.retrieve(created.id, stream=True)))[0] == 400
            items = await carol.responses.input_items.list(created.id)
            assert items.data[0].content[0].text == "My name is Ada."
            follow = await carol.responses.create(model="m", input="And my name?", previous_response_id=created.id)
            assert ids.peek(follow.id) is not None and (await bob.responses.retrieve(follow.id)).id == follow.id
            if setup.background:
                assert (await carol.responses.cancel(created.id)).status == "cancelled"
            else:
                status, body = await _error_of(carol.responses.cancel(created.id))
                assert status == 400 and "background" in body["message"]
            await carol.responses.delete(created.id)
            status, _ = await _error_of(bob.responses.retrieve(created.id))
    assert status == 404


async def test_callers_without_a_key_are_one_anonymous_owner_apart_from_every_key(tmp_path: Path) -> None:
    async with _setup("responses", tmp_path, {"alice": (None, ["*"])}, allow_unauthenticated=True) as setup:
        gw = setup.gateway
        async with (
            _keyless(gw) as anonymous,
            gw.client("sk-unknown-is-anonymous") as stranger,
            gw.client(KEYS["alice"]) as alice,
        ):
            theirs = await anonymous.responses.create(model="m", input="hi")
            assert (await stranger.responses.retrieve(theirs.id)).id == theirs.id
            assert (await _error_of(alice.responses.retrieve(theirs.id)))[0] == 404
            hers = await alice.responses.create(model="m", input="hi")
            assert (await _error_of(anonymous.responses.retrieve(hers.id)))[0] == 404


def _keyless(gw: GatewayHarness) -> openai.AsyncOpenAI:
    """A client without a gateway key (with allowUnauthenticated, an unknown key counts as none)."""
    return gw.client("sk-not-a-gateway-key")


def _unowned_id(deployment_name: str, upstream_id: str) -> str:
    """An id as gateways issued them before ids had owners (see ids.py, version 0)."""
    payload = deployment_name.encode() + b"\0" + upstream_id.encode()
    sig = hmac.new(SIGNING_KEY.encode(), payload, hashlib.sha256).digest()[:12]
    return "resp_" + b"".join(base64.urlsafe_b64encode(p).rstrip(b"=") for p in (payload, sig)).decode()


async def test_ids_issued_before_owners_work_only_without_a_key(tmp_path: Path) -> None:
    async with _setup("responses", tmp_path, {"alice": (None, ["*"])}, allow_unauthenticated=True) as setup:
        gw = setup.gateway
        async with _keyless(gw) as anonymous, gw.client(KEYS["alice"]) as alice:
            created = await alice.responses.create(model="m", input="hi")
            ref = ids.peek(created.id)
            assert ref is not None
            old = _unowned_id(ref.deployment, ref.upstream_id)
            assert (await _error_of(alice.responses.retrieve(old)))[0] == 404
            assert (await anonymous.responses.retrieve(old)).output_text == created.output_text
