"""The real Codex CLI (``codex exec``, default settings) completes a tool loop on a chat-backed model.

Codex sends ``client_metadata``, ``namespace`` tools and ``web_search`` on every request, with
``store: false`` and a ``prompt_cache_key``; the chat deployment drops the hosted tool
(``translation.unsupportedTools: drop``), flattens the namespaces and maps the model's calls back.
The fake chat upstream asks for one ``exec_command`` call, Codex runs it and sends the output back,
the model answers. The CLI comes from npm (``scripts/bootstrap.sh codex``, part of ``all``).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from fake_chat_upstream import ChatScript, FakeChatUpstream, ToolCallScript
from gateway_harness import API_KEY, config_doc, deployment, harnesses
from gateway_process import ROOT

CODEX = ROOT / ".tools" / "codex" / "node_modules" / ".bin" / "codex"
HINT = f"the Codex CLI is not installed at {CODEX}: run scripts/bootstrap.sh codex"
RUN_TIMEOUT_SECONDS = 120


@pytest.fixture
def codex() -> Path:
    if not os.access(CODEX, os.X_OK):
        if os.environ.get("MODELGATE_REQUIRE_ENVTEST") == "1":  # .ci/run: never skip silently
            pytest.fail(HINT)
        pytest.skip(HINT)
    return CODEX


async def test_codex_exec_completes_a_tool_loop_on_a_chat_deployment(tmp_path: Path, codex: Path) -> None:
    work, home = tmp_path / "work", tmp_path / "codex-home"
    work.mkdir()
    home.mkdir()
    async with FakeChatUpstream() as chat, harnesses(tmp_path) as start:
        dep = deployment("chat", chat.base_url, api="chat_completions", provider="vllm",
                         translation={"unsupportedTools": "drop"})
        gw = await start(config_doc([dep], [{"name": "codex-model", "targets": [{"deployment": "chat"}]}]))
        chat.script(ChatScript(text=[], tool_calls=[ToolCallScript("exec_command",
                                                                   ['{"cmd": "echo modelgate-tool-ok"}'])]),
                    ChatScript(text=["Done", "."]))
        provider = f'{{name="modelgate", base_url="{gw.base_url}", env_key="MODELGATE_TEST_KEY", wire_api="responses"}}'
        proc = await asyncio.create_subprocess_exec(
            str(codex), "exec", "--skip-git-repo-check", "-C", str(work), "-c", "model_provider=modelgate",
            "-c", f"model_providers.modelgate={provider}", "-c", 'model="codex-model"', "Run the check.",
            env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "CODEX_HOME": str(home),
                 "MODELGATE_TEST_KEY": API_KEY},
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), RUN_TIMEOUT_SECONDS)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert proc.returncode == 0, err.decode()[-2000:]
    assert out.decode().strip().endswith("Done.")
    first, second = chat.requests
    names = [tool["function"]["name"] for tool in first["tools"]]
    assert "exec_command" in names and any("__" in name for name in names)  # a flattened namespace
    assert "client_metadata" not in first and "prompt_cache_key" not in first
    tool_message = second["messages"][-1]
    assert tool_message["role"] == "tool" and tool_message["tool_call_id"] == "call_0"
    assert "modelgate-tool-ok" in str(tool_message["content"]) or "sandbox" in str(tool_message["content"]).lower()
