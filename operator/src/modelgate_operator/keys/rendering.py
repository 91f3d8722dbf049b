"""Pure: ModelGateKeys + their Secrets + the base document -> the base with the keys added.

Each key becomes one ``spec.auth.keys`` entry after the base's own: name ``<namespace>/<name>``,
the SHA-256 of the key (never the key), the models, the tenant, the expiry and the limits. A key
that cannot be served is left out with a :class:`KeyVerdict` saying why; the others still are.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from modelgate_gateway.config import ApiKey, GatewayConfig, config_to_data, validate_data

from .resources import GateKey, KeyRef

SecretLookup = Mapping[tuple[str, str], Mapping[str, bytes] | None]


@dataclass(frozen=True, slots=True)
class KeyVerdict:
    ready: bool = True
    reason: str = "Ready"
    message: str = "The key is in the gateway's config."


def referenced_secrets(keys: Iterable[GateKey]) -> set[tuple[str, str]]:
    return {(k.namespace, k.secret_name) for k in keys if k.error is None}


def _entry(key: GateKey, secret: Mapping[str, bytes] | None) -> tuple[dict[str, Any] | None, KeyVerdict]:
    if key.error is not None:
        return None, KeyVerdict(False, "InvalidSpec", key.error)
    if secret is None:
        return None, KeyVerdict(False, "SecretNotFound", f"Secret {key.namespace}/{key.secret_name} not found")
    value = secret.get(key.secret_key)
    if value is None:
        return None, KeyVerdict(False, "SecretKeyNotFound",
                                f"Secret {key.namespace}/{key.secret_name} has no key {key.secret_key!r}")
    token = value.decode("utf-8", "replace").strip()
    if len(token) < 16:
        return None, KeyVerdict(False, "WeakKey", f"the key in Secret {key.namespace}/{key.secret_name} is "
                                "shorter than 16 characters")
    entry: dict[str, Any] = {"name": key.key_name, "sha256": hashlib.sha256(token.encode()).hexdigest(),
                             "models": list(key.models), "tenant": key.tenant}
    if key.expires_at is not None:
        entry["expiresAt"] = key.expires_at
    if key.limits:
        entry["limits"] = dict(key.limits)
    try:
        ApiKey.model_validate(entry)
    except ValidationError as exc:
        problems = "; ".join(f"spec.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                             for e in exc.errors(include_url=False))
        return None, KeyVerdict(False, "InvalidSpec", problems)
    return entry, KeyVerdict()


def add_keys(base: GatewayConfig | None, keys: Iterable[GateKey], secrets: SecretLookup,
             gateway: str) -> tuple[GatewayConfig | None, dict[KeyRef, KeyVerdict]]:
    """The base with every servable key of ``gateway`` added, and a verdict per key."""
    mine = sorted((k for k in keys if k.gateway == gateway), key=lambda k: k.age_key)
    verdicts: dict[KeyRef, KeyVerdict] = {}
    if not mine:
        return base, verdicts
    data: dict[str, Any] = config_to_data(base) if base is not None else {
        "apiVersion": "config.modelgate.dev/v1alpha1", "kind": "GatewayConfig", "spec": {}}
    data.get("metadata", {}).pop("checksum", None)  # the spec changes: the base's checksum no longer holds
    spec = data.setdefault("spec", {})
    auth = spec.setdefault("auth", {})
    entries: list[dict[str, Any]] = list(auth.get("keys", []))
    names = {str(e["name"]) for e in entries}
    digests = {str(e["sha256"]) for e in entries if e.get("sha256")}
    has_redis = bool(spec.get("state", {}).get("redisUrl"))
    for key in mine:
        entry, verdict = _entry(key, secrets.get((key.namespace, key.secret_name)))
        if entry is not None:
            if entry["name"] in names:
                entry, verdict = None, KeyVerdict(False, "KeyNameConflict",
                                                  f"the gateway's base config already has a key named {key.key_name}")
            elif entry["sha256"] in digests:
                entry, verdict = None, KeyVerdict(False, "DuplicateKey", "another key of the gateway has the same "
                                                  "secret value; generate a new one")
            elif entry.get("limits") and not has_redis:
                entry, verdict = None, KeyVerdict(False, "LimitsUnavailable", "the gateway has no Redis "
                                                  "(spec.state.redisUrl of its base config) to count limits in")
        if entry is not None:
            entries.append(entry)
            names.add(entry["name"])
            digests.add(entry["sha256"])
        verdicts[key.ref] = verdict
    auth["keys"] = entries
    return validate_data(data, source="base config with ModelGateKeys"), verdicts
