"""What a CRD's admission does to an object, replayed offline: defaulting, the structural schema
(OpenAPI 3.0, i.e. draft 4, with unknown fields rejected as kubectl's strict field validation does)
and every ``x-kubernetes-validations`` rule through cel-expr-python, with ``self`` bound as
Kubernetes binds it (``type: number`` values are doubles; property names that are CEL keywords are
escaped, ``namespace`` -> ``__namespace__``). Only a real API server checks CEL cost limits: the
cluster layer (tests/cluster) applies the same objects for real.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import Any

from cel_expr_python import cel
from jsonschema import Draft4Validator

CEL_ENV = cel.NewEnv(variables={"self": cel.Type.DYN})
# Kubernetes' CEL property-name escaping (apiserver/pkg/cel/escaping.go).
_CEL_KEYWORDS = {"true", "false", "null", "in", "as", "break", "const", "continue", "else", "for", "function",
                 "if", "import", "let", "loop", "package", "namespace", "return", "var", "void", "while"}


def strict(schema: dict[str, Any]) -> dict[str, Any]:
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
    # The API server always accepts these at the root, declared or not.
    schema["properties"]["metadata"] = {"type": "object"}
    schema["properties"].setdefault("apiVersion", {"type": "string"})
    schema["properties"].setdefault("kind", {"type": "string"})
    return schema


def with_defaults(schema: dict[str, Any], value: Any) -> Any:
    """The object after the API server's defaulting (a copy)."""
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        out = {k: with_defaults(props.get(k) or {}, v) for k, v in value.items()}
        for key, child in props.items():
            if key not in out and "default" in child:
                out[key] = with_defaults(child, copy.deepcopy(child["default"]))
        return out
    if isinstance(value, list):
        return [with_defaults(schema.get("items") or {}, v) for v in value]
    return value


def _escape(name: str) -> str:
    if name in _CEL_KEYWORDS:
        return f"__{name}__"
    name = name.replace("__", "__underscores__")
    return re.sub(r"[./-]", lambda m: {".": "__dot__", "/": "__slash__", "-": "__dash__"}[m.group()], name)


def cel_bind(schema: dict[str, Any], value: Any) -> Any:
    """``value`` as CEL sees it: doubles for ``type: number``, escaped declared property names."""
    if schema.get("type") == "number" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        return {(_escape(k) if k in props else k): cel_bind(props.get(k) or (extra if isinstance(extra, dict) else {}), v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [cel_bind(schema.get("items") or {}, v) for v in value]
    return value


def _cel_nodes(schema: dict[str, Any], value: Any, path: str) -> Iterator[tuple[str, dict[str, Any], dict[str, Any], Any]]:
    if value is None:
        return
    for rule in schema.get("x-kubernetes-validations") or []:
        yield path + (rule.get("fieldPath") or ""), rule, schema, value
    if isinstance(value, dict):
        for key, child in (schema.get("properties") or {}).items():
            if key in value:
                yield from _cel_nodes(child, value[key], f"{path}.{key}" if path else key)
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            yield from _cel_nodes(schema["items"], item, f"{path}[{index}]")


def json_path(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out


def admission_errors(schema: dict[str, Any], manifest: dict[str, Any]) -> list[str]:
    """Every reason the API server would reject ``manifest`` under ``schema`` (an
    openAPIV3Schema), as '<path>: <message>'."""
    defaulted = with_defaults(schema, manifest)
    errors = [f"{json_path(e.absolute_path) or '<root>'}: {e.message}"
              for e in Draft4Validator(strict(schema)).iter_errors(defaulted)]
    if errors:
        return errors  # the API server evaluates CEL only on schema-valid objects
    for where, rule, node_schema, value in _cel_nodes(schema, defaulted, ""):
        result = CEL_ENV.compile(rule["rule"]).eval(data={"self": cel_bind(node_schema, value)}).value()
        assert isinstance(result, bool), f"CEL rule {rule['rule']!r} failed to evaluate: {result}"
        if result is not True:
            errors.append(f"{where}: {rule['message']}")
    return errors
