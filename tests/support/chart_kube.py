"""Validation of rendered objects: Kubernetes schemas for built-in kinds, CRD schemas (with their
defaults and CEL rules, tests/support/crd_admission.py) for custom kinds: the chart's own CRDs and
the Gateway API HTTPRoute CRD vendored under tests/chart/gateway-api/; structural checks for the
Prometheus Operator's ServiceMonitor (whose CRD the chart does not ship)."""

from __future__ import annotations

import functools
import re
from typing import Any

import kubernetes_validate
import yaml

from chart_helm import CHART, ROOT
from crd_admission import admission_errors

# CRDs of kinds the chart renders but does not ship (the cluster must have them).
THIRD_PARTY_CRDS = ROOT / "tests" / "chart" / "gateway-api"

# The newest release kubernetes-validate bundles schemas for, and an older one still in support.
KUBERNETES_VERSIONS = ("1.33", "1.37")


@functools.cache
def chart_crds() -> tuple[dict[str, Any], ...]:
    docs: list[dict[str, Any]] = []
    for path in sorted((CHART / "crds").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return tuple(docs)


@functools.cache
def known_crds() -> tuple[dict[str, Any], ...]:
    """The chart's CRDs and the third-party ones its optional objects need."""
    third_party = [d for p in sorted(THIRD_PARTY_CRDS.glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]
    return chart_crds() + tuple(third_party)


def _crd_schema(api_version: str, kind: str) -> dict[str, Any] | None:
    group, _, version = api_version.rpartition("/")
    for crd in known_crds():
        spec = crd["spec"]
        if spec["group"] == group and spec["names"]["kind"] == kind:
            for served in spec["versions"]:
                if served["name"] == version:
                    return served["schema"]["openAPIV3Schema"]
    return None


def _check_service_monitor(obj: dict[str, Any]) -> None:
    allowed = {"apiVersion", "kind", "metadata", "spec"}
    assert set(obj) <= allowed, set(obj) - allowed
    spec = obj["spec"]
    assert set(spec) <= {"jobLabel", "namespaceSelector", "selector", "endpoints"}, spec
    assert spec["selector"]["matchLabels"], "ServiceMonitor must select the metrics Service"
    for endpoint in spec["endpoints"]:
        assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout"}, endpoint
        assert isinstance(endpoint["port"], str)


def _check_pod_monitor(obj: dict[str, Any]) -> None:
    """The fields of monitoring.coreos.com/v1 PodMonitor the chart uses (its CRD is not shipped)."""
    assert set(obj) <= {"apiVersion", "kind", "metadata", "spec"}, set(obj)
    spec = obj["spec"]
    assert set(spec) <= {"jobLabel", "namespaceSelector", "selector", "podMetricsEndpoints"}, spec
    assert set(spec["namespaceSelector"]) <= {"any", "matchNames"}, spec["namespaceSelector"]
    assert spec["selector"]["matchLabels"], "PodMonitor must select the injected pods"
    for endpoint in spec["podMetricsEndpoints"]:
        assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "relabelings"}, endpoint
        for rule in endpoint.get("relabelings", []):
            assert set(rule) <= {"sourceLabels", "regex", "targetLabel", "replacement", "action"}, rule
            assert all(isinstance(label, str) for label in rule.get("sourceLabels", []))


def _check_cert_manager(obj: dict[str, Any]) -> None:
    """cert-manager.io/v1 Issuer (selfSigned or ca) and Certificate, the fields the chart uses
    (as cert-manager's CRDs define them; the CRDs are not shipped)."""
    assert set(obj) <= {"apiVersion", "kind", "metadata", "spec"}, set(obj)
    spec = obj["spec"]
    if obj["kind"] == "Issuer":
        assert spec == {"selfSigned": {}} or (set(spec) == {"ca"} and set(spec["ca"]) == {"secretName"}), spec
        return
    allowed = {"secretName", "dnsNames", "issuerRef", "isCA", "commonName", "duration", "privateKey"}
    assert set(spec) <= allowed, spec
    assert spec["secretName"] and (spec.get("dnsNames") or spec.get("commonName")) and spec["issuerRef"]["name"]
    assert set(spec["issuerRef"]) <= {"name", "kind", "group"}, spec["issuerRef"]
    assert isinstance(spec.get("isCA", False), bool) and len(spec.get("commonName", "")) <= 64
    assert re.fullmatch(r"([0-9]+h)?([0-9]+m)?([0-9]+s)?", spec.get("duration", "")), spec.get("duration")
    key = spec.get("privateKey", {})
    assert set(key) <= {"algorithm", "size", "rotationPolicy", "encoding"}, key
    assert key.get("algorithm", "RSA") in {"RSA", "ECDSA", "Ed25519"}
    assert key.get("rotationPolicy", "Always") in {"Always", "Never"}
    if key.get("algorithm") == "ECDSA":
        assert key.get("size", 256) in {256, 384, 521}


def validate(obj: dict[str, Any]) -> None:
    """Raise if the object is not valid for its kind."""
    api_version, kind = obj["apiVersion"], obj["kind"]
    if api_version == "monitoring.coreos.com/v1" and kind == "ServiceMonitor":
        _check_service_monitor(obj)
        return
    if api_version == "monitoring.coreos.com/v1" and kind == "PodMonitor":
        _check_pod_monitor(obj)
        return
    if api_version == "cert-manager.io/v1" and kind in {"Issuer", "Certificate"}:
        _check_cert_manager(obj)
        return
    schema = _crd_schema(api_version, kind)
    if schema is not None:
        errors = admission_errors(schema, obj)
        assert errors == [], errors
        name = obj["metadata"]["name"]
        assert isinstance(name, str) and 0 < len(name) <= 253
        return
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(obj, version, strict=True)
