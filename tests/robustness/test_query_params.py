"""Client query parameters: each follow-up endpoint forwards only those it defines, validated, and a
deployment's configured ``queryParams`` always win (a client's ``api-version`` never reaches Azure)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import openai
import pytest

from fake_responses_upstream import FakeResponsesUpstream
from gateway_harness import GatewayHarness, config_doc, deployment
from tenant_gateway import running

CONFIGURED = ("api-version", "2024-10-01")
HOSTILE = {"api-version": "2099-01-01-preview", "foo": "bar", "deployment-id": "other"}
INCLUDES = ["message.output_text.logprobs", "reasoning.encrypted_content"]


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[GatewayHarness, FakeResponsesUpstream]]:
    fake = FakeResponsesUpstream("q")
    await fake.start()
    doc = config_doc(
        [deployment("azure", fake.base_url, queryParams=dict([CONFIGURED]))],
        [{"name": "m", "targets": [{"deployment": "azure"}]}],
    )
    try:
        async with running(tmp_path, doc) as gw:
            yield gw, fake
    finally:
        await fake.close()


async def test_only_defined_parameters_are_forwarded_and_configured_ones_win(setup) -> None:
    gw, fake = setup
    async with gw.client() as client:
        created = await client.responses.create(model="m", input="hi", background=True, extra_query=HOSTILE)
        await client.responses.retrieve(created.id, include=INCLUDES, include_obfuscation=False, extra_query=HOSTILE)
        stream = await client.responses.retrieve(created.id, stream=True, starting_after=3, extra_query=HOSTILE)
        events = [event async for event in stream]
        await client.responses.input_items.list(
            created.id,
            after="msg_1",
            limit=5,
            order="asc",
            include=INCLUDES,
            extra_query={**HOSTILE, "before": "msg_9"},
        )
        await client.responses.cancel(created.id, extra_query=HOSTILE)
        await client.responses.delete(created.id, extra_query=HOSTILE)
    assert events[0].sequence_number == 4 and events[-1].type == "response.completed"  # resumed, relayed
    include_pairs = [("include[]", value) for value in INCLUDES]
    expected = [
        [CONFIGURED],
        [CONFIGURED, *include_pairs, ("include_obfuscation", "false")],
        [CONFIGURED, ("starting_after", "3"), ("stream", "true")],
        [CONFIGURED, ("after", "msg_1"), *include_pairs, ("limit", "5"), ("order", "asc"), ("before", "msg_9")],
        [CONFIGURED],
        [CONFIGURED],
    ]
    assert [sorted(seen.query_pairs) for seen in fake.seen] == [sorted(pairs) for pairs in expected]


def _retrieve(**query: Any) -> Callable[[openai.AsyncOpenAI, str], Any]:
    return lambda client, rid: client.responses.retrieve(rid, extra_query=query)


def _items(**params: Any) -> Callable[[openai.AsyncOpenAI, str], Any]:
    return lambda client, rid: client.responses.input_items.list(rid, **params)


def _raw(query: str) -> Callable[[openai.AsyncOpenAI, str], Any]:
    """A query string the SDK's typed parameters cannot make (a name given twice)."""
    return lambda client, rid: client.get(f"/responses/{rid}/input_items?{query}", cast_to=object)


@pytest.mark.parametrize(
    ("call", "param"),
    [
        (_items(limit=0), "limit"),
        (_items(limit=101), "limit"),
        (_items(extra_query={"limit": "ten"}), "limit"),
        (_items(extra_query={"order": "sideways"}), "order"),
        (_items(after="msg_\x01\r\nX-Injected: 1"), "after"),
        (_items(after="m" * 513), "after"),
        (_items(extra_query={"before": ""}), "before"),
        (_items(include=["file_search_call.results"] * 33), "include[]"),
        (_raw("limit=1&limit=2"), "limit"),
        (_retrieve(starting_after="abc"), "starting_after"),
        (_retrieve(starting_after="-1"), "starting_after"),
        (_retrieve(stream="yes"), "stream"),
        (_retrieve(include_obfuscation="maybe"), "include_obfuscation"),
        (_retrieve(include="\x7f"), "include"),
    ],
    ids=[
        "limit-0",
        "limit-101",
        "limit-text",
        "order",
        "control-chars",
        "too-long",
        "empty",
        "too-many-includes",
        "twice",
        "starting-after-text",
        "starting-after-negative",
        "stream",
        "include-obfuscation",
        "include-del",
    ],
)
async def test_invalid_values_get_an_openai_400_naming_the_parameter(setup, call, param: str) -> None:
    gw, fake = setup
    async with gw.client() as client:
        created = await client.responses.create(model="m", input="hi")
        with pytest.raises(openai.BadRequestError) as caught:
            await call(client, created.id)
    body = caught.value.body
    assert (body["type"], body["param"], body["code"]) == ("invalid_request_error", param, "invalid_value")
    assert "\x01" not in body["message"] and "Injected" not in body["message"]
    assert [seen.method for seen in fake.seen] == ["POST"]  # nothing went upstream
