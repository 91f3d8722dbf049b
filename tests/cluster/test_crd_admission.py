"""The ModelRoute CRD on a real API server: every case of the offline table (tests/contract/crd_cases)
is created for real, so the replayed admission (jsonschema + CEL in tests/contract) cannot drift
from what kube-apiserver does.

Why both: the offline replay misses what only the server's validator does. `minimum: 0.001` rejected
integer 0 offline, but kube-apiserver compared the integer with a truncated minimum and admitted it
(issue 19); `exclusiveMinimum` over 0 is rejected by both.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from kube_cluster import ApiError, Cluster

CASES = sorted((Path(__file__).parents[1] / "contract" / "crd_cases").glob("*.yaml"))


def _create(cluster: Cluster, namespace: str, manifest: dict[str, Any]) -> dict[str, Any]:
    body = copy.deepcopy(manifest)
    body["metadata"]["namespace"] = namespace
    path = cluster.path_of(body["apiVersion"], body["kind"], namespace)
    # Strict, as kubectl (>= 1.27) asks by default: unknown fields are errors, not pruned.
    return dict(cluster.request("POST", f"{path}?fieldValidation=Strict", body))


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_case_is_admitted_or_rejected_by_the_api_server(cluster: Cluster, namespace: str, path: Path) -> None:
    case = yaml.safe_load(path.read_text())
    if case["expect"] == "accepted":
        assert _create(cluster, namespace, case["manifest"])["metadata"]["uid"]
        return
    with pytest.raises(ApiError) as err:
        _create(cluster, namespace, case["manifest"])
    # 400: a strict decoding error (unknown field), before validation; 422: invalid.
    assert err.value.status == (400 if "Additional properties" in case["reason"] else 422), err.value
    field = case["reason"].split(": ", 1)[0]
    if field == "spec":  # a CEL rule on spec reports the fieldPath it names
        field = "spec."
    assert field in err.value.message, err.value.message
    if "apiServerMessage" in case:
        assert f'ModelRoute.modelgate.dev "case" is invalid: {case["apiServerMessage"]}' == err.value.message

