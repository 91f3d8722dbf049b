"""What the handlers remember of the objects they have seen (one fingerprint per route, key, Secret
or injected pod): only news wakes the loop and passes kopf's filter (kopf logs every handled event),
and the memory is bounded (objects whose DELETED event was lost while a watch was down cannot grow
it forever)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import kopf
import pytest

from modelgate_operator import handlers
from modelgate_operator.injection.pods import pod_fingerprint
from modelgate_operator.settings import OperatorSettings


def _pod(name: str) -> dict[str, object]:
    return {"metadata": {"namespace": "team-a", "name": name}}


def _runtime() -> handlers.Runtime:
    reconciler = SimpleNamespace(paused=False)
    return handlers.Runtime(settings=OperatorSettings(), reconciler=reconciler, wakeup=asyncio.Event())  # type: ignore[arg-type]


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


def test_only_pod_events_that_change_what_a_pass_reads_reach_the_handler() -> None:
    runtime = _runtime()
    memo = kopf.Memo(modelgate_runtime=runtime)
    pod: dict[str, Any] = {
        "metadata": {"namespace": "team-a", "name": "chat"},
        "spec": {"serviceAccountName": "chat"},
        "status": {"phase": "Running", "podIP": "10.0.0.7", "conditions": [{"type": "Ready", "status": "True"}]},
    }
    assert handlers._pod_news(kopf.Body(pod), memo, type="ADDED")
    runtime.changed("pod", pod, pod_fingerprint(pod))
    restarted = {**pod, "status": {**pod["status"], "containerStatuses": [{"name": "app", "restartCount": 1}]}}
    assert not handlers._pod_news(kopf.Body(restarted), memo, type="MODIFIED")  # nothing a pass reads
    unready = {**pod, "status": {**pod["status"], "conditions": [{"type": "Ready", "status": "False"}]}}
    assert handlers._pod_news(kopf.Body(unready), memo, type="MODIFIED")
    assert handlers._pod_news(kopf.Body(pod), memo, type="DELETED")  # always: the memory must forget it
