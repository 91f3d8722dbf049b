"""ModelGateKey manifests the CRD must admit or reject, shared by the offline replay
(tests/contract/test_modelgatekey_crd.py) and the real API server (tests/cluster)."""

from __future__ import annotations

import copy
from typing import Any

FULL: dict[str, Any] = {
    "apiVersion": "modelgate.dev/v1alpha1", "kind": "ModelGateKey",
    "metadata": {"name": "case", "namespace": "default"},
    "spec": {"gatewayRef": {"name": "modelgate"}, "secretRef": {"name": "ci-key", "key": "api-key"},
             "generateSecret": True, "models": ["gpt-4o*", "o3"], "tenant": "ci", "expiresAt": "2030-01-01T00:00:00Z",
             "limits": {"requestsPerMinute": 600, "tokensPerMinute": 150000, "maxConcurrentRequests": 20,
                        "budget": {"usd": 25.5, "window": "daily"}}},
}


def _with(**spec: Any) -> dict[str, Any]:
    manifest = copy.deepcopy(FULL)
    for name, value in spec.items():
        if value is None:
            manifest["spec"].pop(name, None)
        else:
            manifest["spec"][name] = value
    return manifest


MINIMAL = {"apiVersion": "modelgate.dev/v1alpha1", "kind": "ModelGateKey",
           "metadata": {"name": "case", "namespace": "default"}, "spec": {"secretRef": {"name": "ci-key"}}}

ACCEPTED = {"full": FULL, "minimal": MINIMAL}
# name -> (manifest, the offline reason's start, whether a CEL rule rejects it)
REJECTED: dict[str, tuple[dict[str, Any], str, bool]] = {
    "cel-star-inside-a-model": (_with(models=["gpt-*-mini"]), "spec.models: a '*' may only end a model name", True),
    "cel-empty-limits": (_with(limits={}), "spec.limits: limits must set at least one limit", True),
    "no-secret-ref": (_with(secretRef=None), "spec: 'secretRef' is a required property", False),
    "tenant-with-a-slash": (_with(tenant="a/b"), "spec.tenant:", False),
    "zero-budget": (_with(limits={"budget": {"usd": 0}}), "spec.limits.budget.usd:", False),
    "unknown-window": (_with(limits={"budget": {"usd": 1, "window": "weekly"}}), "spec.limits.budget.window:", False),
    "zero-rpm": (_with(limits={"requestsPerMinute": 0}), "spec.limits.requestsPerMinute:", False),
}
