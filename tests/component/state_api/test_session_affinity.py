"""Session affinity through the gateway: sessions stick, moves strip organisation-bound items, metrics count."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from codex_request import ENCRYPTED, reasoning_item, user_turn
from fake_responses_upstream import Behaviour, FakeResponsesUpstream
from gateway_harness import GatewayHarness, config_doc, deployment
from modelgate_gateway import ids
from modelgate_gateway.runtime import TargetRuntime
from modelgate_gateway.upstream.affinity import ranked
from raw_http_server import eventually


@pytest.fixture
async def fakes() -> AsyncIterator[dict[str, FakeResponsesUpstream]]:
    started = {name: FakeResponsesUpstream(name, text=f"{name} answers") for name in "abc"}
    for fake in started.values():
        await fake.start()
    yield started
    for fake in started.values():
        await fake.close()


def _doc(fakes: dict[str, FakeResponsesUpstream], orgs: dict[str, str], **spec: Any) -> dict[str, Any]:
    deps = [deployment(name, fakes[name].base_url, organization=org) for name, org in orgs.items()]
    return config_doc(deps, [{"name": "m", "targets": [{"deployment": name} for name in orgs],
                              "cooldown": {"consecutiveFailures": 1}}], **spec)


def _served_by(response_id: str) -> str:
    ref = ids.peek(response_id)
    assert ref is not None
    return ref.deployment


def _metric(gw: GatewayHarness, name: str, labels: dict[str, str]) -> float:
    return gw.registry.get_sample_value(name, labels) or 0.0


async def test_a_session_sticks_to_one_deployment_and_sessions_spread(start_gateway, fakes) -> None:
    gw = await start_gateway(_doc(fakes, {"a": "org-1", "b": "org-1", "c": "org-2"}))
    async with gw.client() as client:
        for session in ("s-1", "s-2"):
            served = {_served_by((await client.responses.create(model="m", input="hi", prompt_cache_key=session)).id)
                      for _ in range(6)}
            assert served == {ranked("k:" + session, tuple(TargetRuntime(n, 1.0) for n in "abc"))[0]}
        spread = {_served_by((await client.responses.create(model="m", input="hi", prompt_cache_key=f"x{i}")).id)
                  for i in range(30)}
    assert spread == {"a", "b", "c"}
    await eventually(lambda: _metric(gw, "modelgate_affinity_requests_total", {"model": "m", "outcome": "hit"}) >= 42)
    assert _metric(gw, "modelgate_affinity_requests_total", {"model": "m", "outcome": "hit"}) == 42
    assert _metric(gw, "modelgate_affinity_requests_total", {"model": "m", "outcome": "moved"}) == 0


async def test_a_configured_session_header_pins_too(start_gateway, fakes) -> None:
    gw = await start_gateway(_doc(fakes, {"a": "org-1", "b": "org-1", "c": "org-2"},
                                  affinity={"headers": ["session-id"]}))
    async with gw.client() as client:
        served = {_served_by((await client.responses.create(model="m", input="hi",
                                                            extra_headers={"session-id": "codex-1"})).id)
                  for _ in range(8)}
    assert len(served) == 1


def _session_with_home(home: str, names: str) -> str:
    targets = tuple(TargetRuntime(n, 1.0) for n in names)
    return next(f"s{i}" for i in range(1000) if ranked(f"k:s{i}", targets)[0] == home)


@pytest.mark.parametrize("other_org, stripped", [("org-2", True), ("org-1", False)])
async def test_a_session_that_must_move_keeps_or_strips_its_encrypted_items(start_gateway, fakes, other_org: str,
                                                                            stripped: bool) -> None:
    gw = await start_gateway(_doc(fakes, {"a": "org-1", "b": other_org}))
    session = _session_with_home("a", "ab")
    turn = [user_turn("hi"), reasoning_item(), {"type": "compaction", "encrypted_content": ENCRYPTED},
            user_turn("again")]
    fakes["a"].script = [Behaviour(status=500)]
    async with gw.client() as client:
        response = await client.responses.create(model="m", input=turn, prompt_cache_key=session,  # type: ignore[arg-type]
                                                 store=False, include=["reasoning.encrypted_content"])
    assert _served_by(response.id) == "b"
    assert fakes["a"].creates[-1].body["input"] == turn  # the session's own deployment got everything
    sent = fakes["b"].creates[-1].body["input"]
    assert sent == ([turn[0], turn[3]] if stripped else turn)
    await eventually(lambda: any(line["response_id"] == response.id for line in gw.log_lines()), timeout=5)
    assert _metric(gw, "modelgate_affinity_requests_total", {"model": "m", "outcome": "moved"}) == 1
    assert _metric(gw, "modelgate_affinity_stripped_items_total", {"deployment": "b"}) == (2 if stripped else 0)
    line = next(line for line in gw.log_lines() if line["response_id"] == response.id)
    assert line["affinity"] == "moved" and line.get("stripped_items", 0) == (2 if stripped else 0)


async def test_removing_a_deployment_moves_only_its_sessions(start_gateway, fakes) -> None:
    gw = await start_gateway(_doc(fakes, {"a": "org-1", "b": "org-1", "c": "org-1"}))
    sessions = [f"r{i}" for i in range(24)]
    async with gw.client() as client:
        async def homes() -> dict[str, str]:
            return {s: _served_by((await client.responses.create(model="m", input="hi", prompt_cache_key=s)).id)
                    for s in sessions}

        before = await homes()
        assert set(before.values()) == {"a", "b", "c"}
        old = gw.state.current().checksum
        gw.write(_doc(fakes, {"a": "org-1", "b": "org-1"}))
        await gw.wait_for_checksum_change(old)
        after = await homes()
    assert all(after[s] == home for s, home in before.items() if home != "c")
    assert {after[s] for s, home in before.items() if home == "c"} <= {"a", "b"}
