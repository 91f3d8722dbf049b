"""The ModelGateKey CRD on a real API server: the offline cases (tests/support/modelgatekey_cases.py)
created for real, so the replayed admission cannot drift from kube-apiserver's."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kube_cluster import ApiError, Cluster
from modelgatekey_cases import ACCEPTED, REJECTED


def _create(cluster: Cluster, namespace: str, manifest: dict[str, Any]) -> dict[str, Any]:
    body = copy.deepcopy(manifest)
    body["metadata"]["namespace"] = namespace
    path = cluster.path_of(body["apiVersion"], body["kind"], namespace)
    return dict(cluster.request("POST", f"{path}?fieldValidation=Strict", body))


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_accepted_with_defaults(cluster: Cluster, namespace: str, name: str) -> None:
    created = _create(cluster, namespace, ACCEPTED[name])
    spec = created["spec"]
    if name == "minimal":  # the defaults the operator relies on
        assert spec["secretRef"]["key"] == "api-key" and spec["models"] == ["*"] and spec["generateSecret"] is False


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_rejected(cluster: Cluster, namespace: str, name: str) -> None:
    manifest, reason, _ = REJECTED[name]
    with pytest.raises(ApiError) as err:
        _create(cluster, namespace, manifest)
    assert err.value.status == 422, err.value
    field = reason.split(": ", 1)[0]
    assert (field if field != "spec" else "spec.") in err.value.message, err.value.message
