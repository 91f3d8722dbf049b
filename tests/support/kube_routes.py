"""Builders of ModelRoute, Secret and gateway objects for operator tests (plain dicts)."""

from __future__ import annotations

import base64
from typing import Any


def deployment(
    name: str = "main",
    *,
    secret: str | None = "openai",
    key: str = "api-key",
    weight: float | None = None,
    **extra: Any,
) -> dict[str, Any]:
    dep: dict[str, Any] = {
        "name": name,
        "provider": "openai",
        "baseUrl": "https://api.openai.com/v1",
        "upstreamModel": "gpt-4o",
    }
    if secret is not None:
        dep["apiKeySecretRef"] = {"name": secret, "key": key}
    if weight is not None:
        dep["weight"] = weight
    dep.update(extra)
    return dep


def route(
    name: str,
    model: str,
    *,
    namespace: str = "default",
    created: str = "2026-01-01T00:00:00Z",
    generation: int = 1,
    deployments: list[dict[str, Any]] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    return {
        "apiVersion": "modelgate.dev/v1alpha1",
        "kind": "ModelRoute",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "generation": generation,
            "uid": f"uid-{namespace}-{name}",
            "creationTimestamp": created,
        },
        "spec": {"model": model, "deployments": deployments or [deployment()], **spec},
    }


def mock_deployment(name: str = "mock", text: str = "hello from the mock") -> dict[str, Any]:
    return {"name": name, "provider": "mock", "upstreamModel": "mock-model", "mock": {"text": text}}


def secret(name: str, data: dict[str, str], namespace: str = "default") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }
