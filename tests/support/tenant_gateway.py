"""Gateways with several API keys and tenants, for the tests of who may use which response id.

``KEYS`` are the clients' secrets; ``auth()`` turns ``name -> (tenant, models)`` into the config
document's ``spec.auth``; ``running()`` starts a :class:`GatewayHarness` (real app, real loopback
socket) and always closes it.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from gateway_harness import GatewayHarness

KEYS = {name: f"sk-{name}-0123456789" for name in ("alice", "bob", "carol", "limited", "full")}


def auth(keys: dict[str, tuple[str | None, list[str]]], allow_unauthenticated: bool = False) -> dict[str, Any]:
    entries = []
    for name, (tenant, models) in keys.items():
        entry: dict[str, Any] = {
            "name": name,
            "sha256": hashlib.sha256(KEYS[name].encode()).hexdigest(),
            "models": models,
        }
        if tenant is not None:
            entry["tenant"] = tenant
        entries.append(entry)
    return {"keys": entries, "allowUnauthenticated": allow_unauthenticated}


@asynccontextmanager
async def running(directory: Path, doc: dict[str, Any]) -> AsyncIterator[GatewayHarness]:
    """A gateway serving ``doc``, its files in ``directory`` (which exists)."""
    harness = GatewayHarness(directory, doc)
    await harness.start()
    try:
        yield harness
    finally:
        await harness.close()
