"""`modelgate-operator` as a pod runs it, against the real API server: its liveness endpoint is
where the settings say (two operators on one host no longer clash on 0.0.0.0:8080)."""

from __future__ import annotations

from cluster_operator import eventually, mock_deployment, route, route_status
from gateway_process import free_port
from kube_cluster import Cluster
from operator_process import OperatorProcess


async def test_two_operators_on_one_host_serve_liveness_on_their_own_ports(cluster: Cluster, namespace: str) -> None:
    cluster.apply(route("r", "m", mock_deployment("a"), mock_deployment("b")), namespace)
    ports = [free_port(), free_port()]
    operators = [OperatorProcess(cluster.kubeconfig, {
        "MODELGATE_OPERATOR_NAMESPACES": namespace, "MODELGATE_OPERATOR_GATEWAY_NAMESPACE": namespace,
        "MODELGATE_OPERATOR_PEERING": f"mg-{namespace}", "MODELGATE_OPERATOR_PEERING_PRIORITY": str(index + 1),
        "MODELGATE_OPERATOR_DEBOUNCE_SECONDS": "0.1",
        "MODELGATE_OPERATOR_LIVENESS_HOST": "127.0.0.1", "MODELGATE_OPERATOR_LIVENESS_PORT": str(port),
    }) for index, port in enumerate(ports)]
    logs = []
    try:
        for operator in operators:
            operator.start()
        for operator, port in zip(operators, ports, strict=True):
            operator.wait_healthz(f"http://127.0.0.1:{port}/healthz")
        status = await eventually(lambda: route_status(cluster, namespace, "r").get("deploymentNames"),
                                  timeout=30, what="the route reconciled by a process")
    finally:
        logs = [operator.stop() for operator in operators]
    assert status == "a,b"
    for log in logs:
        assert "Traceback" not in log, log
        assert "address already in use" not in log.lower(), log
