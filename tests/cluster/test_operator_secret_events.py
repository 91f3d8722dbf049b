"""kopf watches Secrets (a changed referenced key re-renders within seconds), but Secrets no route
references are not even handled: no log line per Secret change in the cluster."""

from __future__ import annotations

import base64
import logging

import pytest

from cluster_operator import eventually, operator_on, operator_settings, route, route_status
from kube_cluster import Cluster


def _secret(name: str, value: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
            "data": {"api-key": base64.b64encode(value.encode()).decode()}}


def _handled(record: logging.LogRecord, name: str) -> bool:
    """A record kopf logged about the Secret ``name`` (its object logger tags the object)."""
    ref = getattr(record, "k8s_ref", None) or {}
    return ref.get("kind") == "Secret" and ref.get("name") == name


def _about(record: logging.LogRecord, name: str) -> bool:
    return _handled(record, name) or name in record.getMessage()


async def test_unrelated_secret_events_are_not_logged(
        cluster: Cluster, namespace: str, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    deployment = {"name": "openai", "provider": "openai", "baseUrl": "https://api.openai.com/v1",
                  "upstreamModel": "gpt-4o", "apiKeySecretRef": {"name": "keys", "key": "api-key"}}
    cluster.apply_all([_secret("keys", "sk-1"), route("r", "gpt-4o", deployment)], namespace)
    caplog.set_level(logging.INFO)
    async with operator_on(cluster, operator_settings(namespace), monkeypatch):
        await eventually(lambda: route_status(cluster, namespace, "r").get("observedGeneration") == 1,
                         what="the route reconciled")
        # Unrelated Secrets change first; then the referenced one, twice: once kopf has handled
        # both changes of `keys` (same watch stream, later events), it has seen the others too.
        cluster.apply_all([_secret("unrelated-a", "x"), _secret("unrelated-a", "y"), _secret("unrelated-b", "z")],
                          namespace)
        for value in ("sk-2", "sk-3"):
            seen = len([r for r in caplog.records if _handled(r, "keys")])
            cluster.apply(_secret("keys", value), namespace)
            await eventually(lambda seen=seen: len([r for r in caplog.records if _handled(r, "keys")]) > seen,
                             what="the referenced Secret's change handled")

    noise = [r.getMessage() for r in caplog.records
             if r.levelno >= logging.INFO and (_about(r, "unrelated-a") or _about(r, "unrelated-b"))]
    assert noise == []
