"""ModelGateKeys into spec.auth.keys, pure: hashes not keys, per-key refusals, base keys first, status."""

from __future__ import annotations

import hashlib
from typing import Any

from modelgate_gateway.config import validate_data
from modelgate_operator.keys.rendering import add_keys
from modelgate_operator.keys.resources import parse_key
from modelgate_operator.keys.status import Spend, build_status


def body(name: str, namespace: str = "team-a", created: str = "2026-01-01T00:00:00Z", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace, "generation": 2, "uid": f"uid-{name}",
                         "creationTimestamp": created},
            "spec": {"secretRef": {"name": f"{name}-key"}, **spec}}


def base(redis: bool = True, keys: list[dict[str, Any]] | None = None) -> Any:
    spec: dict[str, Any] = {"auth": {"keys": keys or []}}
    if redis:
        spec["state"] = {"redisUrl": "redis://r:6379/0"}
    return validate_data({"apiVersion": "config.modelgate.dev/v1alpha1", "kind": "GatewayConfig",
                          "metadata": {"checksum": None}, "spec": spec})


def secrets(**values: str) -> dict[tuple[str, str], dict[str, bytes]]:
    return {("team-a", f"{name}-key"): {"api-key": value.encode()} for name, value in values.items()}


def test_a_key_becomes_its_hash_with_the_namespace_as_tenant() -> None:
    config, verdicts = add_keys(base(), [parse_key(body("ci", limits={"requestsPerMinute": 5}), "gw")],
                                secrets(ci="sk-ci-0123456789abcdef\n"), "gw")
    assert config is not None
    [key] = config.spec.auth.keys
    assert key.name == "team-a/ci" and key.tenant == "team-a"
    assert key.sha256 == hashlib.sha256(b"sk-ci-0123456789abcdef").hexdigest()
    assert key.limits is not None and key.limits.requests_per_minute == 5
    assert "sk-ci" not in config.model_dump_json()
    assert verdicts[("team-a", "ci")].ready


def test_each_unservable_key_is_refused_alone() -> None:
    taken = {"name": "team-a/taken", "sha256": hashlib.sha256(b"sk-shared-0123456789").hexdigest()}
    keys = [parse_key(body(name, **spec), "gw") for name, spec in [
        ("taken", {}), ("dup", {}), ("short", {}), ("nosecret", {}), ("limited", {"limits": {"tokensPerMinute": 9}}),
        ("bad", {"models": ["gpt-*-x"]}), ("other", {"gatewayRef": {"name": "another"}}), ("ok", {})]]
    lookup = {**secrets(taken="sk-other-0123456789", dup="sk-shared-0123456789", short="sk-1",
                        limited="sk-limited-0123456789", bad="sk-bad-0123456789abc", ok="sk-ok-0123456789abc")}
    config, verdicts = add_keys(base(redis=False, keys=[taken]), keys, lookup, "gw")
    reasons = {name: v.reason for (_, name), v in verdicts.items()}
    assert reasons == {"taken": "KeyNameConflict", "dup": "DuplicateKey", "short": "WeakKey",
                       "nosecret": "SecretNotFound", "limited": "LimitsUnavailable", "bad": "InvalidSpec",
                       "ok": "Ready"}  # "other" is another gateway's
    assert config is not None and [k.name for k in config.spec.auth.keys] == ["team-a/taken", "team-a/ok"]


def test_older_key_wins_a_shared_value_and_a_tenant_is_namespaced() -> None:
    older = parse_key(body("a", created="2026-01-01T00:00:00Z", tenant="bots"), "gw")
    newer = parse_key(body("b", created="2026-02-01T00:00:00Z"), "gw")
    value = "sk-same-0123456789abc"
    config, verdicts = add_keys(None, [newer, older], secrets(a=value, b=value), "gw")
    assert config is not None and [(k.name, k.tenant) for k in config.spec.auth.keys] == [("team-a/a", "team-a/bots")]
    assert verdicts[("team-a", "b")].reason == "DuplicateKey"


def test_status_keeps_its_transition_time_and_shows_spend() -> None:
    key = parse_key(body("ci", limits={"budget": {"usd": 10}}), "gw")
    _, verdicts = add_keys(base(), [key], secrets(ci="sk-ci-0123456789abcdef"), "gw")
    first, changed = build_status(key, verdicts[key.ref], Spend("M202611", 2.5, 10.0, "2026-11-30T10:00:00Z"),
                                  None, "2026-11-30T12:00:00Z")
    assert changed and first["spentUsd"] == "2.500000" and first["remainingUsd"] == "7.500000"
    assert first["window"] == "M202611" and first["lastUsed"] == "2026-11-30T10:00:00Z"
    again, changed = build_status(key, verdicts[key.ref], Spend(), first, "2026-11-30T13:00:00Z")
    assert not changed and again["conditions"][0]["lastTransitionTime"] == "2026-11-30T12:00:00Z"


def test_unusable_specs_are_errors_not_crashes() -> None:
    assert parse_key({"metadata": {"name": "x", "namespace": "n"}, "spec": {}}, "gw").error == "spec.secretRef.name: required"
    assert parse_key(body("x", expiresAt="tomorrow"), "gw").error == "spec.expiresAt: not an RFC 3339 time"
    assert parse_key(body("x", tenant="a/b"), "gw").error is not None
    assert parse_key(body("x", expiresAt="2030-01-01T02:00:00+02:00"), "gw").expires_at == "2030-01-01T00:00:00Z"
