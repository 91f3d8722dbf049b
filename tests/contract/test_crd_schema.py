"""The ModelRoute CRD: structural schema and CEL rules against one fixture per rule, and examples.

No API server runs here, so admission is replayed: the openAPIV3Schema through jsonschema
(with unknown fields rejected, as kubectl's strict field validation does) and every
x-kubernetes-validations rule through cel-expr-python, with ``self`` bound as Kubernetes binds it
(numbers of ``type: number`` fields are doubles).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cel_expr_python import cel
from jsonschema import Draft4Validator

from modelgate_gateway.config import parse_config
from modelgate_operator.rendering import render
from modelgate_operator.resources import parse_route

ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = ROOT / "crds" / "modelroutes.modelgate.dev.yaml"
CASES = sorted((Path(__file__).parent / "crd_cases").glob("*.yaml"))
EXAMPLES = sorted((ROOT / "examples").glob("modelroute-*.yaml"))
CEL_ENV = cel.NewEnv(variables={"self": cel.Type.DYN})


def _crd() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(CRD_PATH.read_text())
    return data


def _version() -> dict[str, Any]:
    versions: list[dict[str, Any]] = _crd()["spec"]["versions"]
    return versions[0]


def _strict(schema: dict[str, Any]) -> dict[str, Any]:
    """Copy of the schema where objects with declared properties reject unknown fields."""
    schema = copy.deepcopy(schema)

    def visit(node: dict[str, Any]) -> None:
        if node.get("type") == "object" and "properties" in node:
            node.setdefault("additionalProperties", False)
        for child in (node.get("properties") or {}).values():
            visit(child)
        if isinstance(node.get("items"), dict):
            visit(node["items"])
        if isinstance(node.get("additionalProperties"), dict):
            visit(node["additionalProperties"])
    visit(schema)
    schema["properties"]["metadata"] = {"type": "object"}
    return schema


def _path(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out


def _as_kubernetes(schema: dict[str, Any], value: Any) -> Any:
    """Bind values as the API server does for CEL: ``type: number`` is always a double."""
    if schema.get("type") == "number" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        return {k: _as_kubernetes(props.get(k) or (extra if isinstance(extra, dict) else {}), v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_as_kubernetes(schema.get("items") or {}, v) for v in value]
    return value


def _cel_nodes(schema: dict[str, Any], value: Any, path: str) -> Iterator[tuple[str, dict[str, Any], Any]]:
    if value is None:
        return
    for rule in schema.get("x-kubernetes-validations") or []:
        where = path + (rule.get("fieldPath") or "")
        yield where, rule, value
    if isinstance(value, dict):
        for key, child in (schema.get("properties") or {}).items():
            if key in value:
                yield from _cel_nodes(child, value[key], f"{path}.{key}" if path else key)
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            yield from _cel_nodes(schema["items"], item, f"{path}[{index}]")


def admission_errors(manifest: dict[str, Any]) -> list[str]:
    """Every reason the API server would reject the manifest, as '<path>: <message>'."""
    schema = _version()["schema"]["openAPIV3Schema"]
    errors = [f"{_path(e.absolute_path) or '<root>'}: {e.message}"
              for e in Draft4Validator(_strict(schema)).iter_errors(manifest)]
    if errors:
        return errors  # the API server evaluates CEL only on schema-valid objects
    bound = _as_kubernetes(schema, manifest)
    for where, rule, value in _cel_nodes(schema, bound, ""):
        result = CEL_ENV.compile(rule["rule"]).eval(data={"self": value}).value()
        assert isinstance(result, bool), f"CEL rule {rule['rule']!r} failed to evaluate: {result}"
        if result is not True:
            errors.append(f"{where}: {rule['message']}")
    return errors


def test_crd_identity_and_printer_columns() -> None:
    crd = _crd()
    assert crd["metadata"]["name"] == "modelroutes.modelgate.dev"
    assert crd["spec"]["scope"] == "Namespaced" and crd["spec"]["names"]["shortNames"] == ["mr"]
    version = _version()
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["Model", "Deployments", "Ready", "Rollout", "Age"]


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
    secrets = {("default", d.api_key.name): {d.api_key.key: b"sk-example"}
               for r in routes for d in r.deployments if d.api_key}
    rendered = render(routes, secrets, None, gateway="modelgate", generation=1)
    assert all(v.included for v in rendered.verdicts.values()), rendered.verdicts
    config = parse_config(rendered.document, "json")
    assert sorted(m.name for m in config.spec.models) == sorted(r.model for r in routes)
