"""Rotating or revoking a secret a config references takes effect without a config change."""

from __future__ import annotations

import asyncio
import time

import openai
import pytest

from gateway_harness import config_doc, deployment


async def test_rotated_api_key_file_is_picked_up_and_the_old_key_revoked(gateway, upstream_a) -> None:
    doc = config_doc([deployment("a", upstream_a.base_url)], [{"name": "gpt-4o", "targets": [{"deployment": "a"}]}])
    gw = await gateway(doc)
    keys = gw.dir / "keys"
    keys.mkdir()
    (keys / "team").write_text("sk-old\n")
    doc["spec"]["auth"]["keys"] = [{"name": "team", "valueFrom": {"file": "keys/team"}}]
    old = gw.state.current().checksum
    gw.write(doc)
    await gw.wait_for_checksum_change(old)
    async with gw.client(api_key="sk-old") as client:
        await client.responses.create(model="gpt-4o", input="hi")
    (keys / "team").write_text("sk-new\n")  # the document itself does not change
    deadline = time.monotonic() + 5
    async with gw.client(api_key="sk-old") as stale, gw.client(api_key="sk-new") as fresh:
        while True:
            try:
                await stale.responses.create(model="gpt-4o", input="hi")
            except openai.AuthenticationError:
                break
            assert time.monotonic() < deadline, "the old key still works"
            await asyncio.sleep(0.05)
        assert (await fresh.responses.create(model="gpt-4o", input="hi")).output_text
    with pytest.raises(openai.AuthenticationError):
        async with gw.client(api_key="sk-old") as client:
            await client.responses.create(model="gpt-4o", input="hi")
