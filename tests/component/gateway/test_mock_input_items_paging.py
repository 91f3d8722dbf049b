"""The mock provider pages ``input_items`` like the Responses API (order, after, limit), with the
same pager as chat-completions deployments: before they were merged it returned every item at
once with ``has_more`` always false, whatever the client asked."""

from __future__ import annotations

from typing import Any

from gateway_harness import config_doc


async def test_mock_input_items_follow_order_after_and_limit(gateway: Any) -> None:
    doc = config_doc([{"name": "mock", "provider": "mock", "model": "mock-model"}],
                     [{"name": "gpt-4o", "targets": [{"deployment": "mock"}]}])
    gw = await gateway(doc)
    messages = [{"id": f"msg_{i}", "type": "message", "role": "user", "content": f"turn {i}"} for i in range(3)]
    async with gw.client() as client:
        response = await client.responses.create(model="gpt-4o", input=messages)  # type: ignore[arg-type]
        first = await client.responses.input_items.list(response.id, limit=2, order="asc")
        assert [item.id for item in first.data] == ["msg_0", "msg_1"]
        assert first.has_more is True and first.last_id == "msg_1"
        rest = await client.responses.input_items.list(response.id, limit=2, order="asc", after="msg_1")
        assert [item.id for item in rest.data] == ["msg_2"] and rest.has_more is False
        newest = await client.responses.input_items.list(response.id, limit=1)
        assert [item.id for item in newest.data] == ["msg_2"] and newest.has_more is True
