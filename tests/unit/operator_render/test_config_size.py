"""The size budget of the rendered document: the check, the messages, the Ready reason, and what
one reconcile pass and the loop do with a document over it (against an in-memory cluster)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from kube_fake import FakeKube
from kube_routes import deployment, mock_deployment, route
from modelgate_operator.errors import KubeApiError
from modelgate_operator.reconciling.conditions import Rollout, Withheld, build_status
from modelgate_operator.reconciling.reconciler import PassResult, Reconciler, run_loop
from modelgate_operator.rendering.render import Verdict, render
from modelgate_operator.rendering.resources import parse_route
from modelgate_operator.rendering.sizing import (
    CONFIG_TOO_LARGE,
    CONFIGMAP_DATA_LIMIT,
    OBJECT_BUDGET_BYTES,
    ROUTE_TOO_LARGE,
    Oversize,
    route_sizes,
)
from modelgate_operator.settings import OperatorSettings

BIG_TEXT = "x" * 65536  # the CRD's maxLength of mock.text


def _big_route(i: int, **extra: Any) -> dict[str, Any]:
    return route(f"r{i:02d}", f"model-{i:02d}", deployments=[mock_deployment(text=BIG_TEXT)], **extra)


def test_budget_is_under_the_api_servers_limit() -> None:
    assert OBJECT_BUDGET_BYTES == 1_000_000 < CONFIGMAP_DATA_LIMIT == 1024 * 1024


def test_a_route_too_large_for_one_object_is_left_out_alone() -> None:
    huge = route("huge", "huge", deployments=[mock_deployment(f"d{i}", BIG_TEXT) for i in range(16)])
    rendered = render([parse_route(huge, "modelgate"), parse_route(_big_route(0), "modelgate")], {},
                      None, gateway="modelgate", generation=1)
    verdict = rendered.verdicts[("default", "huge")]
    assert (verdict.accepted, verdict.accepted_reason) == (False, ROUTE_TOO_LARGE)
    assert "more than one config object holds" in verdict.accepted_message
    assert rendered.verdicts[("default", "r00")].included
    assert [m["name"] for m in json.loads(rendered.document)["spec"]["models"]] == ["model-00"]


def test_route_sizes_come_from_the_route_groups() -> None:
    sizes = route_sizes({"default/a": 10, "team/b": 5, "house-model": 7, "ns/route/dep": 3})
    assert sizes == {("default", "a"): 10, ("team", "b"): 5}


def test_messages_give_the_sizes_the_limit_and_what_to_do() -> None:
    over = Oversize(size=1_052_428, why="it does not fit in 1 shards of at most 1,000,000 bytes each",
                    route_bytes={("a", "big"): 700_000, ("b", "mid"): 300_000, ("c", "s"): 10,
                                 ("d", "t"): 5})
    assert over.largest() == [(("a", "big"), 700_000), (("b", "mid"), 300_000), (("c", "s"), 10)]
    message = over.route_message(("b", "mid"))
    for text in ("1,052,428 bytes", "1 shards of at most 1,000,000", "1,048,576", "This route adds 300,000",
                 "a/big (700,000)", "keep serving the last published config", "Delete or shrink",
                 "MODELGATE_OPERATOR_MAX_SHARDS"):
        assert text in message, text
    assert "This route adds" not in over.route_message(("z", "unknown"))
    assert "base config and envelope 52,413" in over.summary()


ROUTE = parse_route(route("r", "m", generation=2), "modelgate")
WITHHELD = Withheld(CONFIG_TOO_LARGE, "too large")


def test_withheld_document_makes_ready_false_with_a_warning_once() -> None:
    served, _ = build_status(ROUTE, Verdict(), Rollout(3, 3), None, "t0")
    status, changes = build_status(ROUTE, Verdict(), Rollout(3, 3), served, "t1", WITHHELD)
    ready = {c["type"]: c for c in status["conditions"]}["Ready"]
    assert (ready["status"], ready["reason"], ready["message"]) == ("False", CONFIG_TOO_LARGE, "too large")
    assert [(c.type, c.reason, c.event_type) for c in changes] == [("Ready", CONFIG_TOO_LARGE, "Warning")]
    again, changes = build_status(ROUTE, Verdict(), Rollout(3, 3), status, "t2", WITHHELD)
    assert changes == [] and again == status
    back, changes = build_status(ROUTE, Verdict(), Rollout(3, 3), again, "t3")
    assert [(c.reason, c.event_type) for c in changes] == [("Serving", "Normal")]
    assert {c["type"]: c for c in back["conditions"]}["Ready"]["lastTransitionTime"] == "t3"


def test_a_route_left_out_for_its_own_reason_keeps_it() -> None:
    verdict = Verdict(resolved=False, resolved_reason="SecretNotFound", resolved_message="m")
    status, _ = build_status(ROUTE, verdict, Rollout(0, 1), None, "t0", WITHHELD)
    assert {c["type"]: c for c in status["conditions"]}["Ready"]["reason"] == "SecretNotFound"


def test_pass_over_capacity_writes_nothing_reports_on_every_route_and_resumes(
        caplog: pytest.LogCaptureFixture) -> None:
    """With one shard allowed, the capacity is one object: 16 routes of 64 KiB do not fit."""
    kube = FakeKube()
    kube.routes = [_big_route(i) for i in range(14)]
    settings = OperatorSettings(max_shards=1)
    reconciler = Reconciler(settings, kube, None, now=lambda: "t")  # type: ignore[arg-type]
    assert reconciler.reconcile().published
    good = dict(kube.objects)
    generation = kube.generation()

    # Two more routes (one with an API key) push the document over one object.
    keyed = route("keyed", "keyed", deployments=[deployment(), mock_deployment("big", BIG_TEXT)])
    kube.routes += [_big_route(14), keyed]
    kube.events.clear()
    with caplog.at_level(logging.INFO, "modelgate_operator"):
        result = reconciler.reconcile()
        assert reconciler.reconcile().refused is not None  # a second pass: no new log line
    assert result.refused is not None and result.refused.size > CONFIGMAP_DATA_LIMIT
    assert not result.published and not result.rolling_out
    assert kube.objects == good and "default.keyed.main" not in kube.keys()
    assert {kube.ready(r["metadata"]["name"]) for r in kube.routes} == {("False", CONFIG_TOO_LARGE)}
    warnings = sorted(e for e in kube.events if e[1] == "Warning")
    assert warnings == sorted((r["metadata"]["name"], "Warning", CONFIG_TOO_LARGE) for r in kube.routes)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "does not fit in 1 shards of at most 1,000,000" in errors[0].getMessage()

    caplog.clear()
    kube.routes = kube.routes[2:]  # r00 and r01 deleted
    with caplog.at_level(logging.INFO, "modelgate_operator"):
        assert reconciler.reconcile().published
    assert kube.generation() == generation + 1
    assert kube.keys() == {"default.keyed.main": b"sk"}
    assert {kube.ready(r["metadata"]["name"]) for r in kube.routes} == {("True", "Published")}
    assert any("publishing resumed" in r.getMessage() for r in caplog.records)


def test_the_same_config_is_published_in_shards_by_default() -> None:
    kube = FakeKube()
    kube.routes = [_big_route(i) for i in range(16)]
    reconciler = Reconciler(OperatorSettings(), kube, None, now=lambda: "t")  # type: ignore[arg-type]
    assert reconciler.reconcile().published
    config = kube.config()
    assert config is not None and len(config["spec"]["models"]) == 16
    shards = [name for kind, name in kube.objects if kind == "ConfigMap" and name != "modelgate-gateway-config"]
    assert len(shards) >= 4
    assert all(len(str(v)) <= OBJECT_BUDGET_BYTES for o in kube.objects.values() for v in o.data.values())
    assert {kube.ready(r["metadata"]["name"]) for r in kube.routes} == {("True", "Published")}


class FakeReconciler:
    def __init__(self, outcome: BaseException | PassResult) -> None:
        self.settings = OperatorSettings(debounce_seconds=0.0, debounce_max_seconds=0.0,
                                         resync_seconds=60.0)
        self.outcome = outcome
        self.passes = 0

    def reconcile(self) -> PassResult:
        self.passes += 1
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome


async def _passes_within(reconciler: FakeReconciler, seconds: float) -> int:
    wakeup = asyncio.Event()
    wakeup.set()
    task = asyncio.create_task(run_loop(reconciler, wakeup))  # type: ignore[arg-type]
    await asyncio.sleep(seconds)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return reconciler.passes


async def test_a_failing_api_is_retried_after_the_errors_delay_not_in_a_spin(
        caplog: pytest.LogCaptureFixture) -> None:
    failing = FakeReconciler(KubeApiError("patch ConfigMap: HTTP 500", delay=0.2))
    with caplog.at_level(logging.WARNING, "modelgate_operator"):
        passes = await _passes_within(failing, 0.7)
    assert 2 <= passes <= 5, passes  # 0 s, 0.2 s, 0.4 s, 0.6 s
    assert "reconcile failed, retrying in 0.2s: patch ConfigMap: HTTP 500" in caplog.text


async def test_a_refused_document_is_not_retried_until_something_changes() -> None:
    refused = FakeReconciler(PassResult(refused=Oversize(size=2, why="it does not fit")))
    assert await _passes_within(refused, 0.5) == 1
