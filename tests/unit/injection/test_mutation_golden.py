"""The injection decision as a pure function: golden before/after pods, one file per case.

``cases/<case>.yaml`` holds the namespace and the pod as the API server sends it;
``cases/<case>.after.yaml`` is the pod after the webhook's JSON patch, checked in and regenerated
only on purpose (``UPDATE_GOLDEN=1``). Every "after" pod is also a valid Kubernetes Pod and is
left unchanged by a second pass (reinvocation).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import jsonpatch
import kubernetes_validate
import pytest
import yaml

from modelgate_operator.injection.mutation import Action, decide
from modelgate_operator.injection.template import SidecarTemplate

CASES = Path(__file__).parent / "cases"
TEMPLATE = SidecarTemplate(
    image="ghcr.io/modelgate/gateway:0.1.0",
    gateway="modelgate",
    excluded_namespaces=frozenset({"kube-system", "modelgate"}),
)
INJECTED = {"plain-pod", "existing-init-containers", "namespace-enabled", "app-sets-base-url", "custom-port"}
UNCHANGED = {"opted-out", "not-requested", "excluded-namespace", "operator-namespace", "already-injected"}


def _load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((CASES / f"{name}.yaml").read_text())
    assert isinstance(data, dict)
    return data


def _mutated(case: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    pod = case["pod"]
    before = copy.deepcopy(pod)
    decision = decide(pod, case["namespace"], case["namespaceEnabled"], TEMPLATE)
    assert pod == before, "decide() must not modify its input"
    after = jsonpatch.apply_patch(pod, [dict(op) for op in decision.patch])
    return decision, after


def test_every_case_file_is_covered() -> None:
    names = {p.name.removesuffix(".yaml") for p in CASES.glob("*.yaml") if not p.name.endswith(".after.yaml")}
    assert names == INJECTED | UNCHANGED


@pytest.mark.parametrize("name", sorted(INJECTED | UNCHANGED))
def test_pod_after_the_webhook_matches_its_golden_file(name: str) -> None:
    case = _load(name)
    decision, after = _mutated(case)
    assert decision.action is (Action.INJECT if name in INJECTED else Action.SKIP), decision.reason
    golden = CASES / f"{name}.after.yaml"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.write_text(
            f"# {decision.action.value}: {decision.reason}\n" + yaml.safe_dump(after, sort_keys=False, width=120)
        )
    assert after == yaml.safe_load(golden.read_text())
    if name in UNCHANGED:
        assert decision.patch == ()


@pytest.mark.parametrize("name", sorted(INJECTED | UNCHANGED))
def test_pod_after_the_webhook_is_a_valid_pod(name: str) -> None:
    _, after = _mutated(_load(name))
    kubernetes_validate.validate(after, "1.33", strict=True)


@pytest.mark.parametrize("name", sorted(INJECTED))
def test_a_second_pass_changes_nothing(name: str) -> None:
    case = _load(name)
    _, after = _mutated(case)
    again = decide(after, case["namespace"], case["namespaceEnabled"], TEMPLATE)
    assert (again.action, again.reason, again.patch) == (Action.SKIP, "already injected", ())


def test_the_sidecar_is_a_native_sidecar_on_loopback_with_the_chart_security_context() -> None:
    _, after = _mutated(_load("plain-pod"))
    sidecar = after["spec"]["initContainers"][0]
    assert (sidecar["name"], sidecar["restartPolicy"]) == ("modelgate", "Always")
    args = sidecar["args"]
    assert args[args.index("--host") + 1] == "127.0.0.1" and args[args.index("--port") + 1] == "4000"
    assert sidecar["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "modelgate-admin"}
    assert sidecar["resources"]["limits"] and sidecar["resources"]["requests"]
    security = sidecar["securityContext"]
    assert security["runAsNonRoot"] and security["readOnlyRootFilesystem"]
    assert security["allowPrivilegeEscalation"] is False and security["capabilities"] == {"drop": ["ALL"]}
    assert {"name": "OPENAI_BASE_URL", "value": "http://127.0.0.1:4000/v1"} in after["spec"]["containers"][0]["env"]


def _pod(annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"containers": [{"name": "app", "image": "x"}], **spec}
    return {"metadata": {"annotations": annotations or {"modelgate.dev/inject": "true"}}, "spec": body}


@pytest.mark.parametrize(
    ("pod", "message"),
    [
        (
            _pod({"modelgate.dev/inject": "yes"}),
            'annotation modelgate.dev/inject must be "true" or "false", not \'yes\'',
        ),
        (
            _pod({"modelgate.dev/inject": "true", "modelgate.dev/port": "http"}),
            "annotation modelgate.dev/port: 'http' is not a port number (1-65535)",
        ),
        (
            _pod({"modelgate.dev/inject": "true", "modelgate.dev/admin-port": "70000"}),
            "annotation modelgate.dev/admin-port: '70000' is not a port number (1-65535)",
        ),
        (_pod(hostNetwork=True), "cannot inject the ModelGate sidecar: the pod uses hostNetwork"),
        (
            _pod(containers=[{"name": "modelgate", "image": "x"}]),
            "cannot inject the ModelGate sidecar: the pod already has an app container named 'modelgate'",
        ),
        (
            _pod(containers=[{"name": "app", "image": "x", "ports": [{"containerPort": 4000}]}]),
            "cannot inject the ModelGate sidecar: port 4000 is already used by container 'app'; "
            "choose another with the annotation modelgate.dev/port",
        ),
        (
            _pod({"modelgate.dev/inject": "true", "modelgate.dev/port": "14090"}),
            "cannot inject the ModelGate sidecar: annotations modelgate.dev/port and modelgate.dev/admin-port "
            "name the same port 14090",
        ),
        (
            _pod(volumes=[{"name": "modelgate-tmp", "emptyDir": {}}]),
            "cannot inject the ModelGate sidecar: the pod already has a volume named 'modelgate-tmp'",
        ),
    ],
)
def test_a_pod_the_sidecar_cannot_live_in_is_refused_with_a_reason(pod: dict[str, Any], message: str) -> None:
    decision = decide(pod, "team-a", False, TEMPLATE)
    assert decision.action is Action.DENY
    assert decision.reason.startswith(message)
    assert decision.patch == ()


def test_a_udp_port_does_not_collide_with_the_sidecar() -> None:
    pod = _pod(containers=[{"name": "dns", "image": "x", "ports": [{"containerPort": 4000, "protocol": "UDP"}]}])
    assert decide(pod, "team-a", False, TEMPLATE).action is Action.INJECT


def test_annotation_keys_with_a_slash_are_escaped_in_the_patch() -> None:
    decision = decide(_pod(), "team-a", False, TEMPLATE)
    paths = [op["path"] for op in decision.patch]
    assert "/metadata/annotations/prometheus.io~1scrape" in paths
    assert "/metadata/labels" in paths
