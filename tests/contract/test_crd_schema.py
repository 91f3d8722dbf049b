"""The ModelRoute CRD: structural schema and CEL rules against one fixture per rule, and examples.

No API server runs here, so admission is replayed: the openAPIV3Schema through jsonschema
(with unknown fields rejected, as kubectl's strict field validation does) and every
x-kubernetes-validations rule through cel-expr-python, with ``self`` bound as Kubernetes binds it
(numbers of ``type: number`` fields are doubles).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

import crd_admission
from modelgate_gateway.config import parse_config
from modelgate_operator.rendering.render import render
from modelgate_operator.rendering.resources import parse_route

ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = ROOT / "crds" / "modelroutes.modelgate.dev.yaml"
CASES = sorted((Path(__file__).parent / "crd_cases").glob("*.yaml"))
EXAMPLES = sorted((ROOT / "examples").glob("modelroute-*.yaml"))


def _crd() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(CRD_PATH.read_text())
    return data


def _version() -> dict[str, Any]:
    versions: list[dict[str, Any]] = _crd()["spec"]["versions"]
    return versions[0]


def admission_errors(manifest: dict[str, Any]) -> list[str]:
    """Every reason the API server would reject the manifest, as '<path>: <message>'."""
    return crd_admission.admission_errors(_version()["schema"]["openAPIV3Schema"], manifest)


def test_crd_identity_and_printer_columns() -> None:
    crd = _crd()
    assert crd["metadata"]["name"] == "modelroutes.modelgate.dev"
    assert crd["spec"]["scope"] == "Namespaced" and crd["spec"]["names"]["shortNames"] == ["mr"]
    version = _version()
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["Model", "Deployments", "Ready", "Rollout", "Sidecars", "Age"]
    # Sidecar counts only in `kubectl get mr -o wide`: without sidecar mode the column is empty.
    assert [c.get("priority", 0) for c in version["additionalPrinterColumns"]] == [0, 0, 0, 0, 1, 0]
    # The API server's table printer shows only the first match of a wildcard, so a column over a
    # list must read a field the operator fills with every value (tests/cluster/test_printer_columns.py).
    paths = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert paths["Deployments"] == ".status.deploymentNames"
    assert [p for p in paths.values() if "[*]" in p or ".." in p] == []


def test_every_cel_rule_has_a_rejecting_fixture() -> None:
    messages = _all_rule_messages()
    assert len(messages) == CRD_PATH.read_text().count("- rule:") == 5  # keep CEL rules few
    reasons = [yaml.safe_load(p.read_text()).get("reason", "") for p in CASES]
    assert [m for m in messages if not any(r.endswith(m) for r in reasons)] == []


def _all_rule_messages() -> list[str]:
    out: list[str] = []

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            out.extend(r["message"] for r in node.get("x-kubernetes-validations") or [])
            for child in node.values():
                visit(child)
        elif isinstance(node, list):
            for child in node:
                visit(child)

    visit(_version()["schema"])
    return out


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_fixture(path: Path) -> None:
    case = yaml.safe_load(path.read_text())
    errors = admission_errors(case["manifest"])
    if case["expect"] == "accepted":
        assert errors == []
        return
    assert len(errors) == 1, errors
    assert errors[0].startswith(case["reason"]), errors
    if "cel" in path.stem:  # every CEL rule is mirrored by the operator or the gateway
        route = parse_route(case["manifest"], "modelgate")
        rendered = render([route], {}, None, gateway="modelgate", generation=1)
        verdict = rendered.verdicts[route.key]
        assert not verdict.accepted and verdict.accepted_reason == "InvalidSpec", verdict


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_is_admitted_and_renders(path: Path) -> None:
    routes = []
    for manifest in yaml.safe_load_all(path.read_text()):
        assert admission_errors(manifest) == [], manifest["metadata"]["name"]
        body = copy.deepcopy(manifest)
        body["metadata"].update(namespace="default", creationTimestamp="2026-01-01T00:00:00Z")
        routes.append(parse_route(body, "modelgate"))
    secrets = {
        ("default", d.api_key.name): {d.api_key.key: b"sk-example"} for r in routes for d in r.deployments if d.api_key
    }
    rendered = render(routes, secrets, None, gateway="modelgate", generation=1)
    assert all(v.included for v in rendered.verdicts.values()), rendered.verdicts
    config = parse_config(rendered.document, "json")
    assert sorted(m.name for m in config.spec.models) == sorted(r.model for r in routes)
