"""serviceRef routes: rendered with the route's own namespace; refused where the gateway may not read
EndpointSlices (the chart's gateway.rbac.endpointSliceNamespaces, told to the operator)."""

from __future__ import annotations

from typing import Any

from modelgate_operator.rendering.render import render
from modelgate_operator.rendering.resources import parse_route
from modelgate_operator.settings import OperatorSettings


def _route(namespace: str, name: str = "llama") -> Any:
    body = {
        "apiVersion": "modelgate.dev/v1alpha1",
        "kind": "ModelRoute",
        "metadata": {"name": name, "namespace": namespace, "generation": 1, "uid": f"u-{namespace}"},
        "spec": {
            "model": f"llama-{namespace}",
            "deployments": [
                {
                    "name": "pool",
                    "provider": "vllm",
                    "upstreamModel": "m",
                    "serviceRef": {"name": "vllm", "port": "http"},
                }
            ],
        },
    }
    return parse_route(body, "modelgate")


def test_a_service_ref_is_rendered_in_the_routes_own_namespace() -> None:
    rendered = render([_route("models")], {}, None, gateway="modelgate", generation=1)
    deployment = rendered.data["spec"]["deployments"][0]
    assert deployment["serviceRef"] == {"name": "vllm", "port": "http", "namespace": "models"}


def test_routes_where_the_gateway_may_not_read_endpointslices_are_left_out_with_the_reason() -> None:
    routes = [_route("models"), _route("elsewhere")]
    rendered = render(routes, {}, None, gateway="modelgate", generation=1, service_namespaces=frozenset({"models"}))
    assert [m["name"] for m in rendered.data["spec"]["models"]] == ["llama-models"]
    verdict = rendered.verdicts[("elsewhere", "llama")]
    assert not verdict.resolved and verdict.resolved_reason == "ServiceNotReadable"
    assert "may not read EndpointSlices in namespace elsewhere" in verdict.resolved_message
    assert "gateway.rbac.endpointSliceNamespaces" in verdict.resolved_message
    everywhere = render(routes, {}, None, gateway="modelgate", generation=1, service_namespaces=None)
    assert len(everywhere.data["spec"]["models"]) == 2


def test_the_operator_reads_the_namespaces_from_its_environment() -> None:
    assert OperatorSettings.from_env({}).service_namespaces is None
    assert (
        OperatorSettings.from_env({"MODELGATE_OPERATOR_ENDPOINTSLICE_NAMESPACES": ""}).service_namespaces == frozenset()
    )
    listed = OperatorSettings.from_env({"MODELGATE_OPERATOR_ENDPOINTSLICE_NAMESPACES": "b, a,,a"})
    assert listed.service_namespaces == frozenset({"a", "b"})
    assert OperatorSettings.from_env({"MODELGATE_OPERATOR_ENDPOINTSLICE_NAMESPACES": "a,*"}).service_namespaces is None
