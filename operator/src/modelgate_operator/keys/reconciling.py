"""ModelGateKeys inside the operator's reconcile pass.

Each pass :meth:`Keys.collect` lists the keys and reads (or generates) their Secrets;
the reconciler renders with ``round.apply(base)`` as its base document, and after publishing
:meth:`Keys.report` writes the statuses that changed, with the spend read from Redis when the
operator knows the gateway's Redis (``MODELGATE_OPERATOR_REDIS_URL``, ``..._REDIS_PASSWORD``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from modelgate_gateway.config import GatewayConfig

from ..settings import OperatorSettings
from .rendering import KeyVerdict, SecretLookup, add_keys
from .resources import GateKey, KeyRef, parse_key
from .spend import SpendReader
from .status import Spend, build_status

log = logging.getLogger("modelgate_operator.keys")


class KeyApi(Protocol):
    """The API calls of a pass's keys (:class:`.client.KeyClient`); a Protocol, so the reconcile loop
    never imports the Kubernetes client."""

    def list_keys(self) -> list[dict[str, Any]]: ...

    def read_secret(self, namespace: str, name: str) -> dict[str, bytes] | None: ...

    def generate_secret(self, key: GateKey) -> dict[str, bytes]: ...

    def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None: ...


@dataclass(slots=True)
class KeyRound:
    """One pass's keys, their Secrets, and (after :meth:`apply`) their verdicts."""

    gateway: str
    keys: list[tuple[GateKey, dict[str, Any]]]
    secrets: SecretLookup
    verdicts: dict[KeyRef, KeyVerdict] = field(default_factory=dict)

    @property
    def referenced(self) -> frozenset[tuple[str, str]]:
        return frozenset(self.secrets)

    def apply(self, base: GatewayConfig | None) -> GatewayConfig | None:
        """The base document with the servable keys added."""
        config, self.verdicts = add_keys(base, [k for k, _ in self.keys], self.secrets, self.gateway)
        return config


class Keys:
    def __init__(self, api: KeyApi, settings: OperatorSettings, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.client = api
        self.settings = settings
        self.gateway = settings.gateway_name
        url = env.get("MODELGATE_OPERATOR_REDIS_URL")
        self.spend = SpendReader(url, env.get("MODELGATE_OPERATOR_REDIS_PASSWORD") or None) if url else None

    def collect(self) -> KeyRound:
        s = self.settings
        found = []
        for body in self.client.list_keys():
            key = parse_key(body, self.gateway)
            if key.gateway != self.gateway or (s.namespaces and key.namespace not in s.namespaces):
                continue
            if (body.get("metadata") or {}).get("deletionTimestamp"):
                continue
            found.append((key, body))
        secrets: dict[tuple[str, str], Mapping[str, bytes] | None] = {}
        for key, _ in sorted(found, key=lambda pair: pair[0].age_key):
            ref = (key.namespace, key.secret_name)
            if key.error is not None or ref in secrets:
                continue
            data = self.client.read_secret(*ref)
            if data is None and key.generate:
                data = self.client.generate_secret(key)
            secrets[ref] = data
        return KeyRound(self.gateway, found, secrets)

    def report(self, keys: KeyRound, now: str) -> None:
        moment = datetime.now(UTC)
        for key, body in keys.keys:
            verdict = keys.verdicts.get(key.ref)
            if verdict is None:
                continue
            spend = self.spend.read(key, moment) if self.spend is not None and verdict.ready else Spend()
            previous = body.get("status")
            status, changed = build_status(key, verdict, spend, previous, now)
            if changed:
                log.info("ModelGateKey %s/%s: Ready=%s %s: %s", key.namespace, key.name,
                         "True" if verdict.ready else "False", verdict.reason, verdict.message)
            if not previous or any(previous.get(k) != v for k, v in status.items()):
                self.client.patch_status(key.namespace, key.name, status)
