"""The ModelGateKey CRD, admission replayed offline (schema + CEL), and every CEL rule mirrored by
the operator, which refuses the same spec for a cluster without CEL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

import crd_admission
from modelgate_gateway.config import validate_data
from modelgate_operator.keys.rendering import add_keys
from modelgate_operator.keys.resources import parse_key
from modelgatekey_cases import ACCEPTED, REJECTED

CRD_PATH = Path(__file__).resolve().parents[2] / "crds" / "modelgatekeys.modelgate.dev.yaml"


def _version() -> dict[str, Any]:
    versions: list[dict[str, Any]] = yaml.safe_load(CRD_PATH.read_text())["spec"]["versions"]
    return versions[0]


def errors(manifest: dict[str, Any]) -> list[str]:
    return crd_admission.admission_errors(_version()["schema"]["openAPIV3Schema"], manifest)


def test_identity_columns_and_status() -> None:
    crd = yaml.safe_load(CRD_PATH.read_text())
    assert crd["metadata"]["name"] == "modelgatekeys.modelgate.dev" and crd["spec"]["scope"] == "Namespaced"
    version = _version()
    assert version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]] == ["Tenant", "Spent", "Remaining", "Ready", "Age"]


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_accepted(name: str) -> None:
    assert errors(ACCEPTED[name]) == []


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_rejected_and_mirrored(name: str) -> None:
    manifest, reason, cel = REJECTED[name]
    found = errors(manifest)
    assert len(found) == 1 and found[0].startswith(reason), found
    if cel:  # the operator refuses what CEL refuses (objects admitted before the rule, clusters without CEL)
        body = {**manifest, "metadata": {**manifest["metadata"], "creationTimestamp": "2026-01-01T00:00:00Z"}}
        key = parse_key(body, "modelgate")
        secrets = {("default", "ci-key"): {"api-key": b"sk-0123456789abcdefgh"}}
        _, verdicts = add_keys(None, [key], secrets, "modelgate")
        assert verdicts[key.ref].reason == "InvalidSpec", verdicts


def test_every_cel_rule_has_a_rejecting_case() -> None:
    text = CRD_PATH.read_text()
    rules = text.count("- rule:")
    assert rules == sum(1 for _, _, cel in REJECTED.values() if cel) == 2


def test_example_is_admitted_and_rendered() -> None:
    example = yaml.safe_load((CRD_PATH.parents[1] / "examples" / "modelgatekey-team.yaml").read_text())
    assert errors(example) == []
    body = {**example, "metadata": {**example["metadata"], "namespace": "team-a"}}
    key = parse_key(body, "modelgate")
    base = validate_data({"apiVersion": "config.modelgate.dev/v1alpha1", "kind": "GatewayConfig",
                          "spec": {"state": {"redisUrl": "redis://redis:6379/0"}}})
    config, verdicts = add_keys(base, [key], {("team-a", "ci-key"): {"api-key": b"sk-mg-0123456789abcdef"}},
                                "modelgate")
    assert verdicts[key.ref].ready and config is not None and config.spec.auth.keys[0].name == "team-a/ci"
