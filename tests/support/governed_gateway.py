"""Config documents for gateways whose keys have budgets and rate limits, and a Redis to count in.

``governed_doc`` serves model ``gpt-4o`` from the built-in mock provider (8 output words per
answer, priced so a request costs cents) and, with ``upstream``, model ``fake`` from a fake
Responses upstream. Keys: ``team-a`` and ``team-b`` (tenant ``acme``) and ``free`` (no limits).
"""

from __future__ import annotations

import hashlib
from typing import Any

KEYS = {"team-a": "sk-team-a-0123456789", "team-b": "sk-team-b-0123456789", "free": "sk-free-0123456789"}
PRICING = {"inputUsdPerMillionTokens": 1000.0, "outputUsdPerMillionTokens": 2000.0}
"""$0.001 per input token, $0.002 per output token: a mock answer (8 output tokens) costs ~$0.02."""
MOCK_WORDS = 8
RATE_HEADERS = (  # OpenAI's, on every answer to a key whose requests or tokens per minute are limited
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
)


def governed_doc(
    redis_url: str,
    *,
    key_limits: dict[str, Any] | None = None,
    tenant_limits: dict[str, Any] | None = None,
    upstream: str | None = None,
    token_delay: float = 0.0,
    **governance: Any,
) -> dict[str, Any]:
    keys: list[dict[str, Any]] = []
    for name, secret in KEYS.items():
        entry: dict[str, Any] = {"name": name, "sha256": hashlib.sha256(secret.encode()).hexdigest()}
        if name != "free":
            entry["tenant"] = "acme"
            if key_limits is not None and name == "team-a":
                entry["limits"] = key_limits
        keys.append(entry)
    deployments: list[dict[str, Any]] = [
        {
            "name": "mock",
            "provider": "mock",
            "model": "mock-model",
            "mock": {"text": " ".join(f"w{i}" for i in range(MOCK_WORDS)), "tokenDelaySeconds": token_delay},
        }
    ]
    models: list[dict[str, Any]] = [{"name": "gpt-4o", "targets": [{"deployment": "mock"}], "pricing": PRICING}]
    if upstream is not None:
        deployments.append({"name": "fake", "provider": "openai-compatible", "baseUrl": upstream, "model": "up"})
        models.append(
            {"name": "fake", "targets": [{"deployment": "fake"}], "pricing": PRICING, "retry": {"maxAttempts": 1}}
        )
    gov: dict[str, Any] = dict(governance)
    if tenant_limits is not None:
        gov["tenants"] = [{"name": "acme", "limits": tenant_limits}]
    spec = {
        "deployments": deployments,
        "models": models,
        "auth": {"keys": keys},
        "responseIds": {"signingKey": {"secretKey": "signing-key"}},
        "state": {"redisUrl": redis_url},
        "governance": gov,
    }
    return {"apiVersion": "config.modelgate.dev/v1alpha1", "kind": "GatewayConfig", "spec": spec}


def usage_cost(usage: Any) -> float:
    """What a response's reported usage costs at :data:`PRICING`, in USD."""
    return (
        usage.input_tokens * PRICING["inputUsdPerMillionTokens"]
        + usage.output_tokens * PRICING["outputUsdPerMillionTokens"]
    ) / 1e6
