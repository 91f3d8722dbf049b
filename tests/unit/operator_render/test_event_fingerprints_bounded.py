"""The handlers' memory of what they have seen (one fingerprint per route, key, Secret or injected
pod) is bounded: objects whose DELETED event was lost while a watch was down cannot grow it forever."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from modelgate_operator import handlers
from modelgate_operator.settings import OperatorSettings


def _pod(name: str) -> dict[str, object]:
    return {"metadata": {"namespace": "team-a", "name": name}}


def test_the_memory_of_seen_objects_is_bounded_and_forgetting_only_costs_a_wake_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(handlers, "_SEEN_MAX", 3)
    runtime = handlers.Runtime(
        settings=OperatorSettings(),
        reconciler=SimpleNamespace(paused=False),
        wakeup=asyncio.Event(),  # type: ignore[arg-type]
    )
    for name in ("a", "b", "c"):
        assert runtime.changed("pod", _pod(name), ["Running"])
    assert not runtime.changed("pod", _pod("a"), ["Running"])  # known: no wake-up
    assert runtime.changed("pod", _pod("d"), ["Running"])  # a fourth: the memory starts over
    assert len(runtime.seen) == 1
    assert runtime.changed("pod", _pod("a"), ["Running"])  # forgotten: one extra wake-up, nothing worse
    assert not runtime.changed("pod", _pod("a"), ["Running"])
