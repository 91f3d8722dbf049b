"""Config documents for gateway processes served by the built-in mock provider.

``model`` answers from the mock (``words`` words, ``token_delay`` seconds apart when streamed);
``upstreams`` adds OpenAI-compatible deployments (fake upstreams), each its own model of the
same name. Clients authenticate with :data:`API_KEY`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import yaml

API_KEY = "sk-robustness-key-0123456789"
JSON_TEXT = '{"name": "Ada", "age": 36}'
"""A mock text that is also JSON (structured-output helpers such as the SDK's ``parse()`` work on it)."""


def mock_config(path: Path, *, words: int = 8, token_delay: float = 0.0, model: str = "gpt-4o",
                upstreams: dict[str, str] | None = None, **spec_extra: Any) -> Path:
    text = " ".join(f"w{i}" for i in range(words))
    deployments: list[dict[str, Any]] = [
        {"name": "mock", "provider": "mock", "model": "mock-model",
         "mock": {"text": text, "tokenDelaySeconds": token_delay}}]
    models: list[dict[str, Any]] = [{"name": model, "targets": [{"deployment": "mock"}]}]
    for name, base_url in (upstreams or {}).items():
        deployments.append({"name": name, "provider": "openai-compatible", "baseUrl": base_url,
                            "model": f"up-{name}", "timeouts": {"firstByteSeconds": 60, "totalSeconds": 120}})
        models.append({"name": name, "targets": [{"deployment": name}]})
    spec = {"deployments": deployments, "models": models,
            "auth": {"keys": [{"name": "robust", "sha256": hashlib.sha256(API_KEY.encode()).hexdigest()}]},
            **spec_extra}
    path.write_text(yaml.safe_dump({"apiVersion": "config.modelgate.dev/v1alpha1", "kind": "GatewayConfig",
                                    "spec": spec}))
    return path
