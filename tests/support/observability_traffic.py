"""Synthetic config and RequestRecords for the observability tests (unit and e2e).

The records are what the gateway's hot path would fill; the tests feed them to
``GatewayObserver`` directly, so expected metric values can be computed from the same data.
"""

from __future__ import annotations

import json
from typing import Any

from modelgate_gateway.config import GatewayConfig, parse_config
from modelgate_gateway.observability.recording import AttemptOutcome, AttemptRecord, RequestRecord, Usage

CHECKSUM = "sha256:" + "ab" * 32


def config_data(models: list[str] | None = None, end_user_limit: int = 100) -> dict[str, Any]:
    """Two priced models on three deployments (one deployment overrides prices), one unpriced."""
    models = models if models is not None else ["gpt-4o", "gpt-4o-mini", "free-model"]
    all_models: dict[str, dict[str, Any]] = {
        "gpt-4o": {
            "name": "gpt-4o",
            "targets": [{"deployment": "east"}, {"deployment": "west"}],
            "fallbacks": ["gpt-4o-mini"],
            "pricing": {
                "inputUsdPerMillionTokens": 2.5,
                "cachedInputUsdPerMillionTokens": 1.25,
                "cacheWriteUsdPerMillionTokens": 3.125,
                "outputUsdPerMillionTokens": 10,
                "tiers": {"flex": {"inputUsdPerMillionTokens": 1.25, "outputUsdPerMillionTokens": 5}},
                "hostedToolUsdPerCall": {"web_search": 0.01},
            },
        },
        "gpt-4o-mini": {
            "name": "gpt-4o-mini",
            "targets": [{"deployment": "mini"}],
            "pricing": {"inputUsdPerMillionTokens": 0.15, "outputUsdPerMillionTokens": 0.6},
        },
        "free-model": {"name": "free-model", "targets": [{"deployment": "local"}]},
    }
    chosen = [all_models[m] for m in models]
    for m in chosen:
        m["fallbacks"] = [f for f in m.get("fallbacks", []) if f in models]
    used = {t["deployment"] for m in chosen for t in m["targets"]}
    deployments: list[dict[str, Any]] = [
        {"name": "east", "provider": "mock", "model": "m"},
        # west is a pricier region: its prices override the model's.
        {
            "name": "west",
            "provider": "mock",
            "model": "m",
            "pricing": {"inputUsdPerMillionTokens": 5, "outputUsdPerMillionTokens": 20},
        },
        {"name": "mini", "provider": "mock", "model": "m"},
        {"name": "local", "provider": "mock", "model": "m"},
    ]
    return {
        "apiVersion": "config.modelgate.dev/v1alpha1",
        "kind": "GatewayConfig",
        "metadata": {"generation": 7},
        "spec": {
            "deployments": [d for d in deployments if d["name"] in used],
            "models": chosen,
            "auth": {
                "keys": [
                    {"name": "team-a", "sha256": "a" * 64, "tenant": "acme"},
                    {"name": "team-b", "sha256": "b" * 64},
                ]
            },
            "observability": {"endUserLabelLimit": end_user_limit},
        },
    }


def make_config(models: list[str] | None = None, end_user_limit: int = 100) -> GatewayConfig:
    return parse_config(json.dumps(config_data(models, end_user_limit)), fmt="json")


def record(
    *,
    model: str = "gpt-4o",
    deployment: str = "east",
    key: str | None = "team-a",
    end_user: str | None = "alice",
    stream: bool = False,
    status: int = 200,
    usage: Usage | None = None,
    start: float = 1000.0,
    duration: float = 0.5,
    ttft: float | None = None,
    attempts: list[AttemptRecord] | None = None,
    **extra: Any,
) -> RequestRecord:
    """A finished request as the hot path records it."""
    rec = RequestRecord(f"req_{start}", start, 1_700_000_000.0 + start)
    rec.key_name, rec.end_user, rec.requested_model, rec.model = key, end_user, model, model
    rec.deployment, rec.stream, rec.status, rec.usage = deployment, stream, status, usage
    rec.first_token_at = None if ttft is None else start + ttft
    rec.finished_at = start + duration
    rec.attempts = (
        attempts
        if attempts is not None
        else [AttemptRecord(model, deployment, AttemptOutcome.SUCCESS, status, start, duration)]
    )
    for name, value in extra.items():  # RequestRecord's __init__ takes only its identity; the rest are set
        setattr(rec, name, value)
    return rec


def delta_block(text: str) -> bytes:
    payload = json.dumps({"type": "response.output_text.delta", "delta": text})
    return f"event: response.output_text.delta\ndata: {payload}\n\n".encode()
