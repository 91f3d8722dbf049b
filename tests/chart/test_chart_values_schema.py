"""values.schema.json is strict: typos, wrong types and out-of-range values fail `helm template`
(and so `helm install`); values.yaml documents every key and gives an example for every empty
non-scalar."""

import json
import re
from typing import Any

import jsonschema
import pytest
import yaml

from chart_helm import CHART, CI_VALUES, render_fails

SCHEMA = json.loads((CHART / "values.schema.json").read_text())


def test_schema_is_a_valid_draft7_schema_and_accepts_the_defaults() -> None:
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    jsonschema.validate(yaml.safe_load((CHART / "values.yaml").read_text()), SCHEMA)


def _strict_objects(schema: dict[str, Any], path: str = "") -> list[str]:
    found = []
    if schema.get("type") == "object" and "properties" in schema:
        found.append(path or "<root>")
        assert schema.get("additionalProperties") is False, f"{path or '<root>'} is not strict"
        for key, sub in schema["properties"].items():
            found += _strict_objects(sub, f"{path}.{key}" if path else key)
    return found


def test_every_chart_owned_object_rejects_unknown_keys() -> None:
    assert len(_strict_objects(SCHEMA)) > 20


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("gatway.replicaCount=2", "gatway"),
        ("gateway.replicaCont=2", "replicaCont"),
        ("gateway.apiKeys.existingSecrets=x", "existingSecrets"),
        ("operator.watchNamespace=team-a", "watchNamespace"),
        ("gateway.replicaCount=-1", "replicaCount"),
        ("operator.replicaCount=-1", "replicaCount"),
        ("operator.replicaCount=3", "replicaCount"),
        ("gateway.image.pullPolicy=Sometimes", "pullPolicy"),
        ("gateway.service.port=70000", "port"),
        ("gateway.logLevel=verbose", "logLevel"),
        # Worker i > 0 would serve /metrics on 9090 + i, which the chart does not expose.
        ("gateway.workers=2", "workers"),
        ("gateway.metrics.serviceMonitor.interval=soon", "interval"),
        ("gateway.apiKeys.keys[0].name=bad name", "name"),
        ("gateway.apiKeys.keys[0].tenant=bad tenant", "tenant"),
        ("gateway.config.limits.maxRequestBodyBytes=10", "maxRequestBodyBytes"),
        ("gateway.clients.headerTimeoutSeconds=0", "headerTimeoutSeconds"),
        ("gateway.clients.maxConnections=0", "maxConnections"),
        ("gateway.clients.idleTimeout=5", "idleTimeout"),
        # Below the gateway's overrun after its drain period (draining.SHUTDOWN_OVERRUN_SECONDS).
        ("gateway.terminationGraceMarginSeconds=2", "terminationGraceMarginSeconds"),
    ],
)
def test_bad_values_are_rejected_by_the_schema(setting: str, message: str) -> None:
    stderr = render_fails(sets=(setting,))
    assert "schema" in stderr.lower() and message in stderr, stderr


def test_wrong_types_are_rejected(tmp_path: Any) -> None:
    bad = tmp_path / "bad-values.yaml"
    bad.write_text("gateway:\n  replicaCount: two\n  kubeWatch: 'yes'\n")
    stderr = render_fails(values=(bad,))
    assert "replicaCount" in stderr and "kubeWatch" in stderr, stderr


def test_chart_level_rules_fail_with_a_clear_message() -> None:
    stderr = render_fails(
        sets=(
            "gateway.autoscaling.enabled=true",
            "gateway.autoscaling.minReplicas=5",
            "gateway.autoscaling.maxReplicas=2",
        )
    )
    assert "minReplicas must not exceed maxReplicas" in stderr
    stderr = render_fails(
        sets=(
            "gateway.autoscaling.enabled=true",
            "gateway.autoscaling.targetCPUUtilizationPercentage=null",
        )
    )
    assert "targetCPUUtilizationPercentage" in stderr


def _merged(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        return {k: _merged(base.get(k), v) for k, v in override.items()} | {
            k: v for k, v in base.items() if k not in override
        }
    return override


def test_ci_scenarios_merged_with_defaults_validate_against_the_schema() -> None:
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    for path in CI_VALUES:
        jsonschema.validate(_merged(defaults, yaml.safe_load(path.read_text()) or {}), SCHEMA)


KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][\w.-]*):(?P<rest>.*)$")


def _documented_keys() -> list[tuple[str, bool, str]]:
    """(dotted path, has a comment right above, the comment block) for each chart-owned key."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    stack: list[tuple[int, str]] = []
    result = []
    for index, line in enumerate(lines):
        match = KEY_LINE.match(line)
        if not match:
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = ".".join([k for _, k in stack] + [match["key"]])
        stack.append((indent, match["key"]))
        comment = []
        cursor = index - 1
        while cursor >= 0 and lines[cursor].strip().startswith("#"):
            comment.insert(0, lines[cursor])
            cursor -= 1
        result.append((path, bool(comment), "\n".join(comment)))
    return result


def _schema_at(path: str) -> tuple[dict[str, Any] | None, bool]:
    """(schema of the key, whether its parent is a strict chart-owned object)."""
    node: dict[str, Any] = SCHEMA
    parts = path.split(".")
    for part in parts[:-1]:
        node = node.get("properties", {}).get(part, {})
    strict_parent = node.get("additionalProperties") is False
    return node.get("properties", {}).get(parts[-1]), strict_parent


def test_every_values_key_is_commented_and_empty_collections_have_examples() -> None:
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    undocumented, without_example, unknown = [], [], []
    for path, commented, comment in _documented_keys():
        schema, strict_parent = _schema_at(path)
        if not strict_parent:
            continue  # inside a Kubernetes pass-through object (resources, securityContext, …)
        if schema is None:
            unknown.append(path)
            continue
        if not commented and not (
            "properties" in schema and schema.get("additionalProperties") is False
        ):
            undocumented.append(path)
        value: Any = defaults
        for part in path.split("."):
            value = value[part]
        if value in ({}, []) and "Example" not in comment:
            without_example.append(path)
    assert unknown == []
    assert undocumented == []
    assert without_example == []
