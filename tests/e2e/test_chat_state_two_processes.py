"""Conversation state of a chat-completions deployment, shared by two gateway processes via Redis."""

from __future__ import annotations

import asyncio
from pathlib import Path

import openai
import pytest
import yaml

from fake_chat_upstream import FakeChatUpstream
from gateway_process import GatewayProcess
from redis_server import redis_server  # noqa: F401  (fixture)

pytestmark = pytest.mark.e2e


async def test_previous_response_id_works_across_two_gateway_processes(tmp_path: Path, redis_server) -> None:  # noqa: F811
    async with FakeChatUpstream() as chat:
        config = tmp_path / "gateway.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "config.modelgate.dev/v1alpha1",
                    "kind": "GatewayConfig",
                    "spec": {
                        "deployments": [
                            {
                                "name": "llama",
                                "provider": "vllm",
                                "api": "chat_completions",
                                "baseUrl": chat.base_url,
                                "model": "llama-3",
                            }
                        ],
                        "models": [{"name": "llama", "targets": [{"deployment": "llama"}]}],
                        "auth": {"allowUnauthenticated": True},
                        "responseIds": {"signingKey": {"file": "signing-key"}},
                        "state": {"redisUrl": redis_server.url},
                    },
                }
            )
        )
        (tmp_path / "signing-key").write_text("shared-by-both-processes")
        first, second = GatewayProcess(config), GatewayProcess(config)
        await asyncio.gather(asyncio.to_thread(first.start), asyncio.to_thread(second.start))
        try:
            async with (
                openai.AsyncOpenAI(base_url=first.base_url, api_key="x", max_retries=0) as one,
                openai.AsyncOpenAI(base_url=second.base_url, api_key="x", max_retries=0) as two,
            ):
                opening = await one.responses.create(model="llama", input="My name is Ada.")
                follow = await two.responses.create(
                    model="llama", input="What is my name?", previous_response_id=opening.id
                )
                messages = chat.requests[-1]["messages"]
                assert [m["role"] for m in messages] == ["user", "assistant", "user"]
                assert messages[0]["content"] == "My name is Ada." and messages[1]["content"] == opening.output_text
                assert (await one.responses.retrieve(follow.id)).output_text == follow.output_text
        finally:
            await asyncio.gather(asyncio.to_thread(first.stop), asyncio.to_thread(second.stop))
