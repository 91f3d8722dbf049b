"""Thousands of ModelRoutes, for the tests and figures of sharded configs.

Each route is an ordinary one: an OpenAI-compatible deployment with an API key from one of a few
shared Secrets (teams share keys), every third with a fallback, every tenth with a second,
standby deployment; about 320-450 bytes of rendered config per route.
"""

from __future__ import annotations

from typing import Any

from kube_routes import deployment, route

SECRETS = 20


def route_body(i: int, total: int, namespace: str = "default") -> dict[str, Any]:
    deployments = [deployment("primary", secret=f"team-{i % SECRETS}",
                              baseUrl=f"https://llm-{i % 7}.example.com/v1", upstreamModel=f"m-{i}")]
    if i % 10 == 0:
        deployments.append(deployment("standby", secret=f"team-{(i + 1) % SECRETS}", weight=0,
                                      baseUrl="https://standby.example.com/v1"))
    spec: dict[str, Any] = {}
    if i % 3 == 0:
        spec["fallbacks"] = [f"model-{(i + 1) % total:05d}"]
    return route(f"r{i:05d}", f"model-{i:05d}", namespace=namespace, deployments=deployments, **spec)


def route_bodies(total: int, namespace: str = "default") -> list[dict[str, Any]]:
    return [route_body(i, total, namespace) for i in range(total)]


def team_secrets(namespace: str = "default") -> dict[tuple[str, str], dict[str, bytes]]:
    return {(namespace, f"team-{j}"): {"api-key": f"sk-team-{j}-{'x' * 40}".encode()}
            for j in range(SECRETS)}
