"""``admission.k8s.io/v1`` AdmissionReview: read a request, answer with the mutation's decision.

Pure. Anything that is not a Pod CREATE is allowed unchanged (the webhook configuration asks only
for those, but the answer must not depend on it). A malformed review raises :class:`BadReview`,
which the server turns into a 400 (the API server then applies the failure policy, Ignore).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .mutation import Action, Decision, decide
from .template import SidecarTemplate

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"


class BadReview(ValueError):
    """The body is not an AdmissionReview this webhook can answer."""


@dataclass(frozen=True, slots=True)
class Reviewed:
    """The answer and what was decided (for logging and the operator's wake-up)."""

    response: dict[str, Any]
    decision: Decision | None
    namespace: str
    dry_run: bool


def _request(review: Any) -> Mapping[str, Any]:
    if not isinstance(review, Mapping):
        raise BadReview("expected a JSON object")
    if review.get("apiVersion") != API_VERSION or review.get("kind") != KIND:
        raise BadReview(f"expected apiVersion {API_VERSION} and kind {KIND}")
    request = review.get("request")
    if not isinstance(request, Mapping) or not isinstance(request.get("uid"), str) or not request["uid"]:
        raise BadReview("request.uid is missing")
    return request


def _answer(uid: str, decision: Decision | None) -> dict[str, Any]:
    response: dict[str, Any] = {"uid": uid, "allowed": True}
    if decision is not None and decision.action is Action.DENY:
        response = {
            "uid": uid,
            "allowed": False,
            "status": {"code": 400, "reason": "BadRequest", "message": decision.reason},
        }
    elif decision is not None and decision.action is Action.INJECT:
        patch = json.dumps(list(decision.patch), separators=(",", ":")).encode()
        response.update(patchType="JSONPatch", patch=base64.b64encode(patch).decode())
    return {"apiVersion": API_VERSION, "kind": KIND, "response": response}


def review_pod(body: bytes, namespace_enabled: bool, template: SidecarTemplate) -> Reviewed:
    """Answer one AdmissionReview for a pod; raises :class:`BadReview` on a malformed body."""
    try:
        review = json.loads(body)
    except ValueError as exc:
        raise BadReview(f"the body is not JSON: {exc}") from None
    request = _request(review)
    kind = request.get("kind") or {}
    namespace = str(request.get("namespace") or "")
    dry_run = request.get("dryRun") is True
    if (
        (kind.get("group"), kind.get("version"), kind.get("kind")) != ("", "v1", "Pod")
        or request.get("operation") != "CREATE"
        or request.get("subResource")
    ):
        return Reviewed(_answer(request["uid"], None), None, namespace, dry_run)
    pod = request.get("object")
    if not isinstance(pod, Mapping):
        raise BadReview("request.object is not a Pod")
    decision = decide(pod, namespace, namespace_enabled, template)
    return Reviewed(_answer(request["uid"], decision), decision, namespace, dry_run)
