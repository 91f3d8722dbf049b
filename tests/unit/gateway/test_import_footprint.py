"""A gateway is paid per pod in sidecar mode: what it never uses is never imported."""

from __future__ import annotations

import subprocess
import sys


def test_the_gateway_imports_redis_only_for_a_config_that_names_a_store() -> None:
    code = (
        "import sys, modelgate_gateway.main, modelgate_gateway.app, modelgate_gateway.upstream.chat_transport; "
        "print(sorted(m for m in sys.modules if m == 'redis' or m.startswith('redis.')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"


def test_the_store_class_is_still_importable_from_the_state_package() -> None:
    from modelgate_gateway.state import RedisConversationStore
    from modelgate_gateway.state.redis_store import RedisConversationStore as direct

    assert RedisConversationStore is direct
