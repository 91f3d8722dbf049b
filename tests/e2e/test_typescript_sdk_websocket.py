"""The official TypeScript SDK (``ResponsesWS``) runs a store=false loop over the gateway's WebSocket mode.

Three turns on one socket, each continuing the last by its id with only new input, served by the
mock (which refuses an id it did not store, as OpenAI): the gateway sends the context it remembers.
The SDK comes from npm (``scripts/bootstrap.sh node-sdk``, part of ``all``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway_harness import API_KEY, config_doc, harnesses
from gateway_process import ROOT
from raw_http_server import eventually

NODE_MODULES = ROOT / ".tools" / "node-sdk" / "node_modules"
SCRIPT = Path(__file__).resolve().parents[1] / "support" / "ts_websocket_loop.cjs"
HINT = f"the TypeScript SDK is not installed in {NODE_MODULES}: run scripts/bootstrap.sh node-sdk"
TURNS = 3


@pytest.fixture
def node() -> str:
    found = shutil.which("node")
    if found is None or not (NODE_MODULES / "openai" / "package.json").exists():
        if os.environ.get("MODELGATE_REQUIRE_ENVTEST") == "1":  # .ci/run: never skip silently
            pytest.fail(HINT)
        pytest.skip(HINT)
    return found


async def test_the_typescript_sdk_continues_store_false_responses_over_one_socket(tmp_path: Path, node: str) -> None:
    mock = {"name": "m", "provider": "mock", "model": "mock-model", "mock": {"text": "typed hello"}}
    async with harnesses(tmp_path) as start:
        gw = await start(config_doc([mock], [{"name": "gpt-4o", "targets": [{"deployment": "m"}]}]))
        proc = await asyncio.create_subprocess_exec(
            node,
            str(SCRIPT),
            gw.base_url,
            API_KEY,
            "gpt-4o",
            str(TURNS),
            env={**os.environ, "NODE_PATH": str(NODE_MODULES)},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), 60)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode == 0, err.decode()
        finals: list[dict[str, Any]] = orjson.loads(out)
        assert [f["type"] for f in finals] == ["response.completed"] * TURNS, finals
        assert [f["text"] for f in finals] == ["typed hello"] * TURNS
        assert len({f["id"] for f in finals}) == TURNS

        def turns() -> list[dict[str, Any]]:
            return [line for line in gw.log_lines() if line.get("transport") == "websocket"]

        await eventually(lambda: len(turns()) == TURNS, timeout=5)
        assert all(line["status"] == 200 for line in turns())
