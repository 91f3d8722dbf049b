"""The optional Gateway API HTTPRoute: rendered only when enabled, attached to the configured
Gateway(s), forwarding to the gateway Service, valid against the HTTPRoute CRD (schema, defaults
and CEL rules, tests/chart/gateway-api/) and refused early when it could not be."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from chart_helm import CI_VALUES, find, kinds, render, render_fails
from chart_kube import THIRD_PARTY_CRDS, validate
from crd_admission import admission_errors

ON = next(p for p in CI_VALUES if "httproute-on" in p.name)


def _route(objects: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    return find(objects, "HTTPRoute", "modelgate-gateway")


def _schema() -> dict[str, Any]:
    crd = yaml.safe_load((THIRD_PARTY_CRDS / "httproutes.gateway.networking.k8s.io.yaml").read_text())
    return dict(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])


def test_not_rendered_by_default() -> None:
    assert kinds(render(), "HTTPRoute") == []


def test_attaches_the_gateway_service_to_the_configured_gateway() -> None:
    objects = render((ON,))
    route = _route(objects)
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["metadata"]["namespace"] == "modelgate"
    assert route["metadata"]["annotations"] == {"example.com/owner": "platform"}
    assert route["metadata"]["labels"]["exposure"] == "public"
    assert route["metadata"]["labels"]["app.kubernetes.io/component"] == "gateway"
    assert route["spec"]["parentRefs"] == [{"name": "public", "namespace": "gateway-system", "sectionName": "https"}]
    assert route["spec"]["hostnames"] == ["llm.example.com"]
    service = find(objects, "Service", "modelgate-gateway")
    assert route["spec"]["rules"] == [{"backendRefs": [
        {"group": "", "kind": "Service", "name": service["metadata"]["name"], "port": service["spec"]["ports"][0]["port"]},
    ]}]
    validate(route)


def test_follows_the_service_port_and_leaves_hostnames_to_the_gateway() -> None:
    route = _route(render(sets=("gateway.httpRoute.enabled=true", "gateway.httpRoute.parentRefs[0].name=edge",
                                "gateway.service.port=8080")))
    assert route["spec"]["rules"][0]["backendRefs"][0]["port"] == 8080
    assert "hostnames" not in route["spec"] and "annotations" not in route["metadata"]
    assert route["spec"]["parentRefs"] == [{"name": "edge"}]
    validate(route)  # group and kind of the parentRef come from the CRD's defaults


def test_enabled_without_a_parent_fails_with_a_clear_message() -> None:
    stderr = render_fails(sets=("gateway.httpRoute.enabled=true",))
    assert "gateway.httpRoute.parentRefs: name at least one Gateway" in stderr


@pytest.mark.parametrize(("setting", "complaint"), [
    ("gateway.httpRoute.hostnames[0]=10.0.0.1:443", "hostnames"),
    ("gateway.httpRoute.parentRefs[0].port=443", "port"),  # experimental channel only
    ("gateway.httpRoute.parentRefs[0].namespace=Not_A_Namespace", "namespace"),
])
def test_values_schema_refuses_what_the_crd_would(setting: str, complaint: str) -> None:
    stderr = render_fails(sets=("gateway.httpRoute.enabled=true", "gateway.httpRoute.parentRefs[0].name=edge", setting))
    assert complaint in stderr


def test_the_crd_schema_catches_what_the_chart_must_never_render() -> None:
    """The offline replay has teeth: the CRD's rules reject broken variants of the rendered route."""
    route = _route(render((ON,)))
    schema = _schema()
    assert admission_errors(schema, route) == []
    no_port = copy.deepcopy(route)
    del no_port["spec"]["rules"][0]["backendRefs"][0]["port"]
    assert admission_errors(schema, no_port) == ["spec.rules[0].backendRefs[0]: Must have port for Service reference"]
    twice = copy.deepcopy(route)
    twice["spec"]["parentRefs"] *= 2
    assert admission_errors(schema, twice) == [
        "spec.parentRefs: sectionName must be unique when parentRefs includes 2 or more references to the same parent"]
    mixed = copy.deepcopy(route)
    mixed["spec"]["parentRefs"].append({"name": "public", "namespace": "gateway-system"})
    assert admission_errors(schema, mixed) == [
        "spec.parentRefs: sectionName must be specified when parentRefs includes 2 or more references to the same parent"]
    extra = copy.deepcopy(route)
    extra["spec"]["rules"][0]["filters"] = []
    assert "Additional properties are not allowed" in admission_errors(schema, extra)[0]
