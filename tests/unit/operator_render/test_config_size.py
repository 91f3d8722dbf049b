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
from modelgate_gateway.config import validate_data
from modelgate_operator.conditions import Rollout, Withheld, build_status
from modelgate_operator.errors import PublishError
from modelgate_operator.reconciler import PassResult, Reconciler, run_loop
from modelgate_operator.rendering import Verdict, render
from modelgate_operator.resources import parse_route
from modelgate_operator.settings import OperatorSettings
from modelgate_operator.sizing import (
    CONFIG_BUDGET_BYTES,
    CONFIG_TOO_LARGE,
    CONFIGMAP_DATA_LIMIT,
    Oversize,
    check_size,
    route_bytes,
)

BIG_TEXT = "x" * 65536  # the CRD's maxLength of mock.text


def _document(size: int) -> bytes:
    """A JSON document of exactly ``size`` bytes."""
    head, tail = b'{"spec":{},"pad":"', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def _big_route(i: int, **extra: Any) -> dict[str, Any]:
    return route(f"r{i:02d}", f"model-{i:02d}", deployments=[mock_deployment(text=BIG_TEXT)], **extra)


def test_budget_is_under_the_api_servers_limit() -> None:
    assert CONFIG_BUDGET_BYTES == 1_000_000 < CONFIGMAP_DATA_LIMIT == 1024 * 1024


@pytest.mark.parametrize("budget", [CONFIG_BUDGET_BYTES, 200])
def test_exactly_the_budget_passes_one_byte_more_does_not(budget: int) -> None:
    assert len(_document(budget)) == budget
    assert check_size(_document(budget), budget) is None
    over = check_size(_document(budget + 1), budget)
    assert over is not None and (over.size, over.budget) == (budget + 1, budget)
    assert check_size(_document(budget - 1), budget) is None


def test_default_budget_applies() -> None:
    assert check_size(_document(CONFIG_BUDGET_BYTES)) is None
    assert check_size(_document(CONFIG_BUDGET_BYTES + 1)) is not None


def test_size_counts_utf8_bytes_not_characters() -> None:
    document = json.dumps({"spec": {}, "pad": "é" * 60}, ensure_ascii=False).encode()
    assert len(document) > 120 > len(document.decode())
    assert check_size(document, len(document.decode())) is not None


def test_route_bytes_attribute_each_routes_model_and_deployments() -> None:
    routes = [parse_route(_big_route(i), "modelgate") for i in range(3)]
    routes.append(parse_route(route("small", "small", deployments=[mock_deployment(text="hi")]),
                              "modelgate"))
    base = validate_data({
        "apiVersion": "config.modelgate.dev/v1alpha1", "kind": "GatewayConfig",
        "spec": {"deployments": [{"name": "default/r00/big", "provider": "mock", "model": "m",
                                  "mock": {"text": BIG_TEXT}}],
                 "models": [{"name": "house", "targets": [{"deployment": "default/r00/big"}]}]},
    })
    rendered = render(routes, {}, base, gateway="modelgate", generation=1)
    sizes = route_bytes(rendered.document)
    assert set(sizes) == {("default", "r00"), ("default", "r01"), ("default", "r02"),
                          ("default", "small")}
    assert all(65536 < sizes[("default", f"r{i:02d}")] < 66500 for i in range(3))
    assert sizes[("default", "small")] < 1000
    # The base config's entries (even one named like a route's deployment) are not counted.
    assert 65536 < len(rendered.document) - sum(sizes.values()) < 65536 + 600


def test_messages_give_the_sizes_the_limit_and_what_to_do() -> None:
    over = Oversize(size=1_052_428, budget=1_000_000,
                    route_bytes={("a", "big"): 700_000, ("b", "mid"): 300_000, ("c", "s"): 10,
                                 ("d", "t"): 5})
    assert over.largest() == [(("a", "big"), 700_000), (("b", "mid"), 300_000), (("c", "s"), 10)]
    message = over.route_message(("b", "mid"))
    for text in ("1,052,428 bytes", "budget of 1,000,000", "1,048,576", "This route adds 300,000",
                 "a/big (700,000)", "keep serving the last published config", "Delete or shrink"):
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


def test_pass_over_budget_writes_nothing_reports_on_every_route_and_resumes(
        caplog: pytest.LogCaptureFixture) -> None:
    kube = FakeKube()
    kube.routes = [_big_route(i) for i in range(14)]
    reconciler = Reconciler(OperatorSettings(), kube, None, now=lambda: "t")  # type: ignore[arg-type]
    assert reconciler.reconcile().published
    good = kube.configmap
    assert good is not None and len(good[0]) < CONFIG_BUDGET_BYTES

    # Two more routes (one with an API key) push the document over 1 MiB.
    keyed = route("keyed", "keyed", deployments=[deployment(), mock_deployment("big", BIG_TEXT)])
    kube.routes += [_big_route(14), keyed]
    kube.events.clear()
    with caplog.at_level(logging.INFO, "modelgate_operator"):
        result = reconciler.reconcile()
        assert reconciler.reconcile().refused is not None  # a second pass: no new log line
    assert result.refused is not None and result.refused.size > CONFIGMAP_DATA_LIMIT
    assert not result.published and not result.rolling_out
    assert kube.configmap == good and "default.keyed.main" not in kube.secret
    assert {kube.ready(r["metadata"]["name"]) for r in kube.routes} == {("False", CONFIG_TOO_LARGE)}
    warnings = sorted(e for e in kube.events if e[1] == "Warning")
    assert warnings == sorted((r["metadata"]["name"], "Warning", CONFIG_TOO_LARGE) for r in kube.routes)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "over the budget of 1,000,000" in errors[0].getMessage()

    caplog.clear()
    kube.routes = kube.routes[2:]  # r00 and r01 deleted
    with caplog.at_level(logging.INFO, "modelgate_operator"):
        assert reconciler.reconcile().published
    assert kube.configmap is not None and kube.configmap[2] == good[2] + 1
    assert kube.secret == {"default.keyed.main": b"sk"}
    assert {kube.ready(r["metadata"]["name"]) for r in kube.routes} == {("True", "Published")}
    assert any("publishing resumed" in r.getMessage() for r in caplog.records)


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
    failing = FakeReconciler(PublishError("patch ConfigMap: HTTP 500", delay=0.2))
    with caplog.at_level(logging.WARNING, "modelgate_operator"):
        passes = await _passes_within(failing, 0.7)
    assert 2 <= passes <= 5, passes  # 0 s, 0.2 s, 0.4 s, 0.6 s
    assert "reconcile failed, retrying in 0.2s: patch ConfigMap: HTTP 500" in caplog.text


async def test_a_refused_document_is_not_retried_until_something_changes() -> None:
    refused = FakeReconciler(PassResult(refused=Oversize(size=2, budget=1)))
    assert await _passes_within(refused, 0.5) == 1
