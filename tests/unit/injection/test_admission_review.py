"""AdmissionReview in and out: the uid echoed, the patch base64 JSON, refusals with a message."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from modelgate_operator.injection.review import BadReview, review_pod
from modelgate_operator.injection.template import SidecarTemplate

TEMPLATE = SidecarTemplate(image="ghcr.io/modelgate/gateway:0.1.0")


def _review(pod: Any, **request: Any) -> bytes:
    body = {
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "namespace": "team-a",
        "operation": "CREATE",
        "object": pod,
        **request,
    }
    return json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": body}).encode()


POD = {
    "metadata": {"annotations": {"modelgate.dev/inject": "true"}},
    "spec": {"containers": [{"name": "app", "image": "x"}]},
}


def test_an_injected_pod_gets_a_base64_json_patch_and_the_uid_back() -> None:
    reviewed = review_pod(_review(POD), False, TEMPLATE)
    response = reviewed.response["response"]
    assert reviewed.response["apiVersion"] == "admission.k8s.io/v1"
    assert response["uid"] == "705ab4f5-6393-11e8-b7cc-42010a800002" and response["allowed"] is True
    assert response["patchType"] == "JSONPatch"
    ops = json.loads(base64.b64decode(response["patch"]))
    added = {op["path"]: op["value"] for op in ops}
    assert added["/spec/initContainers"][0]["name"] == "modelgate"
    assert (reviewed.namespace, reviewed.dry_run) == ("team-a", False)


def test_a_refused_pod_is_not_allowed_and_says_why() -> None:
    pod = {**POD, "spec": {"hostNetwork": True, "containers": [{"name": "app", "image": "x"}]}}
    response = review_pod(_review(pod), False, TEMPLATE).response["response"]
    assert response["allowed"] is False and "patch" not in response
    assert response["status"]["code"] == 400
    assert "hostNetwork" in response["status"]["message"]


@pytest.mark.parametrize(
    "request_fields",
    [
        {"operation": "UPDATE"},
        {"subResource": "ephemeralcontainers"},
        {"kind": {"group": "apps", "version": "v1", "kind": "Deployment"}},
    ],
)
def test_anything_but_a_pod_create_is_allowed_unchanged(request_fields: dict[str, Any]) -> None:
    reviewed = review_pod(_review(POD, **request_fields), False, TEMPLATE)
    assert reviewed.response["response"] == {"uid": "705ab4f5-6393-11e8-b7cc-42010a800002", "allowed": True}
    assert reviewed.decision is None


def test_a_skipped_pod_is_allowed_without_a_patch_and_dry_run_is_reported() -> None:
    reviewed = review_pod(_review({"metadata": {}, "spec": {"containers": []}}, dryRun=True), False, TEMPLATE)
    assert reviewed.response["response"] == {"uid": "705ab4f5-6393-11e8-b7cc-42010a800002", "allowed": True}
    assert reviewed.dry_run is True


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "the body is not JSON"),
        (b"[]", "expected a JSON object"),
        (b'{"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview"}', "expected apiVersion"),
        (b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {}}', "request.uid is missing"),
        (_review("a string"), "request.object is not a Pod"),
    ],
)
def test_a_malformed_review_is_refused(body: bytes, message: str) -> None:
    with pytest.raises(BadReview, match=message):
        review_pod(body, False, TEMPLATE)
