"""The chart's HTTPRoute on a real API server with the Gateway API HTTPRoute CRD
(tests/chart/gateway-api/): `helm template ... | kubectl apply` is admitted, defaulted as the
Gateway API says, and the CRD's CEL rules hold on the server too."""

from __future__ import annotations

import copy

import pytest

from chart_helm import CI_VALUES, find, render
from chart_kube import THIRD_PARTY_CRDS
from kube_cluster import ApiError, Cluster

ON = next(p for p in CI_VALUES if "httproute-on" in p.name)


def test_rendered_httproute_is_admitted(cluster: Cluster, namespace: str) -> None:
    assert cluster.apply_crds(sorted(THIRD_PARTY_CRDS.glob("*.yaml"))) == ["httproutes.gateway.networking.k8s.io"]
    objects = render((ON,), release="modelgate", namespace=namespace)
    service, route = find(objects, "Service", "modelgate-gateway"), find(objects, "HTTPRoute", "modelgate-gateway")
    cluster.apply_all([service, route], namespace)

    stored = cluster.get("gateway.networking.k8s.io/v1", "HTTPRoute", "modelgate-gateway", namespace)
    assert stored["spec"]["parentRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "public",
                                             "namespace": "gateway-system", "sectionName": "https"}]
    assert stored["spec"]["hostnames"] == ["llm.example.com"]
    assert stored["spec"]["rules"] == [{"backendRefs": [{"group": "", "kind": "Service", "name": "modelgate-gateway",
                                                         "port": 80, "weight": 1}]}]

    broken = copy.deepcopy(route)
    broken["metadata"]["name"] = "no-port"
    del broken["spec"]["rules"][0]["backendRefs"][0]["port"]
    with pytest.raises(ApiError) as err:
        cluster.apply(broken, namespace)
    assert err.value.status == 422
    assert err.value.message.endswith("spec.rules[0].backendRefs[0]: Invalid value: Must have port for Service reference")
