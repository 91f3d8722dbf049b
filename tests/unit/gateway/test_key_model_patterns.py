"""A key's model allowlist: exact names, '*' for all, and prefixes ending in '*'; expiry is compiled to UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from modelgate_gateway.config import ConfigError, validate_data
from modelgate_gateway.runtime import compile_runtime


def _keys(models: list[str], **extra: object) -> dict[str, object]:
    return {"apiVersion": "config.modelgate.dev/v1alpha1", "kind": "GatewayConfig",
            "spec": {"auth": {"keys": [{"name": "k", "sha256": "0" * 64, "models": models, **extra}]}}}


def test_prefix_patterns_allow_by_prefix_only(tmp_path: Path) -> None:
    runtime = compile_runtime(validate_data(_keys(["gpt-4o*", "o3"])), {}, str(tmp_path))
    key = runtime.keys_by_digest[bytes(32)]
    assert key.allows("gpt-4o") and key.allows("gpt-4o-mini") and key.allows("o3")
    assert not key.allows("o3-mini") and not key.allows("gpt-4")


@pytest.mark.parametrize("bad", ["gpt-*-mini", "**", ""])
def test_a_star_anywhere_but_the_end_is_refused(bad: str) -> None:
    with pytest.raises(ConfigError):
        validate_data(_keys([bad]))


def test_an_expiry_without_a_zone_is_utc(tmp_path: Path) -> None:
    runtime = compile_runtime(validate_data(_keys(["*"], expiresAt="2030-01-02T03:04:05")), {}, str(tmp_path))
    expected = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()
    assert runtime.keys_by_digest[bytes(32)].expires_at == expected
