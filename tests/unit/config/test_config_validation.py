"""The config document: every rule reports its path; good documents round-trip byte-stably."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from modelgate_gateway.config import ConfigError, dump_config, load_config, parse_config, validate_data
from modelgate_gateway.config.schema import schema_text

ROOT = Path(__file__).resolve().parents[3]
BASE = {
    "apiVersion": "config.modelgate.dev/v1alpha1",
    "kind": "GatewayConfig",
    "spec": {
        "deployments": [
            {"name": "a", "baseUrl": "https://api.example.com/v1", "model": "m"},
            {"name": "b", "baseUrl": "http://10.0.0.1:8000/v1", "model": "m"},
        ],
        "models": [
            {"name": "gpt-4o", "targets": [{"deployment": "a"}], "fallbacks": ["mini"]},
            {"name": "mini", "targets": [{"deployment": "b"}]},
        ],
        "auth": {"keys": [{"name": "k", "sha256": "0" * 64}]},
    },
}


def _with(path: str, value) -> dict:
    doc = copy.deepcopy(BASE)
    node = doc
    parts = path.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if part.isdigit() else node[part]
    last = parts[-1]
    if last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return doc


CASES = [
    (_with("apiVersion", "config.modelgate.dev/v9"), "apiVersion: 'config.modelgate.dev/v9' is not supported"),
    (_with("spec.deployments.1.name", "a"), "spec.deployments[1].name: duplicate deployment name 'a'"),
    (_with("spec.models.1.name", "gpt-4o"), "spec.models[1].name: duplicate model name 'gpt-4o'"),
    (
        _with("spec.models.0.targets", [{"deployment": "zzz"}]),
        "spec.models[0].targets[0].deployment: unknown deployment 'zzz'",
    ),
    (
        _with("spec.models.0.targets", [{"deployment": "a", "weight": 0}]),
        "spec.models[0].targets: at least one target needs a weight above 0",
    ),
    (_with("spec.models.0.fallbacks", ["ghost"]), "spec.models[0].fallbacks[0]: unknown model 'ghost'"),
    (_with("spec.models.0.fallbacks", ["gpt-4o"]), "spec.models[0].fallbacks[0]: a model cannot fall back to itself"),
    (_with("spec.models.1.fallbacks", ["gpt-4o"]), "fallback cycle: gpt-4o -> mini -> gpt-4o"),
    (_with("spec.deployments.0.baseUrl", ""), "spec.deployments[0].baseUrl: required unless provider is mock"),
    (_with("spec.deployments.0.weight", 2), "spec.deployments[0].weight: Extra inputs are not permitted"),
    (
        _with(
            "spec.deployments.0",
            {"name": "a", "baseUrl": "http://x/v1", "model": "m", "websocket": True, "api": "chat_completions"},
        ),
        "spec.deployments[0].websocket: only a responses deployment with a baseUrl speaks it",
    ),
    (
        _with("spec.deployments.0", {"name": "a", "provider": "mock", "model": "m", "websocket": True}),
        "spec.deployments[0].websocket: only a responses deployment with a baseUrl speaks it",
    ),
    (_with("spec.websocket", {"maxTurnsInFlight": 0}), "spec.websocket.maxTurnsInFlight"),
    (_with("spec.models.0.targets", [{"deployment": "a", "weight": -1}]), "spec.models[0].targets[0].weight"),
    (_with("spec.deployments.0.timeouts", {"connectSeconds": 0}), "spec.deployments[0].timeouts.connectSeconds"),
    (_with("spec.auth.keys", [{"name": "k"}]), "spec.auth.keys[0]: set exactly one of sha256 and valueFrom"),
    (_with("spec.deployments.0.credentials", {"value": "sk-inline"}), "spec.deployments[0].credentials"),
    (
        _with("spec.state", {"redisUrl": "redis://:hunter2@redis:6379/0"}),
        "spec.state.redisUrl: credentials do not belong",
    ),
    (
        _with("metadata", {"checksum": "sha256:" + "0" * 64}),
        "metadata.checksum: sha256:" + "0" * 64 + " does not match the spec",
    ),
]


@pytest.mark.parametrize(("doc", "message"), CASES, ids=[c[1][:60] for c in CASES])
def test_invalid_documents_report_the_path(doc: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_data(doc)
    assert any(message in error for error in caught.value.errors), caught.value.errors


def test_all_errors_are_reported_at_once() -> None:
    doc = _with("spec.models.0.fallbacks", ["ghost"])
    doc["spec"]["deployments"][1]["name"] = "a"
    with pytest.raises(ConfigError) as caught:
        validate_data(doc)
    assert len(caught.value.errors) >= 2


def test_dump_is_canonical_with_a_verified_checksum() -> None:
    config = validate_data(BASE)
    dumped = dump_config(config)
    assert dumped == dump_config(parse_config(dumped, "json"))
    assert json.loads(dumped)["metadata"]["checksum"].startswith("sha256:")


def test_yaml_and_json_parse_alike_and_garbage_is_refused() -> None:
    assert parse_config(json.dumps(BASE), "json") == parse_config(json.dumps(BASE), "yaml")
    with pytest.raises(ConfigError):
        parse_config(b"{: nope", "yaml")
    with pytest.raises(ConfigError):
        parse_config(b"[]", "json")


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_bundled_gateway_configs_are_valid(path: Path) -> None:
    if "GatewayConfig" in path.read_text():
        load_config(path)


def test_checked_in_json_schema_matches_the_models() -> None:
    checked_in = ROOT / "gateway/src/modelgate_gateway/config/schemas/v1alpha1.json"
    assert checked_in.read_text() == schema_text(), "run `make schema`"


def test_config_reference_doc_is_generated_from_the_schema() -> None:
    from modelgate_gateway.config.reference import reference_markdown

    assert (ROOT / "docs" / "config.md").read_text() == reference_markdown(), "regenerate docs/config.md"


def test_key_allowlists_may_name_models_no_route_serves_yet() -> None:
    validate_data(_with("spec.auth.keys", [{"name": "k", "sha256": "0" * 64, "models": ["not-yet-routed"]}]))
