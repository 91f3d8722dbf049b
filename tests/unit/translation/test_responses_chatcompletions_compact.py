"""Compaction over chat upstreams: the bridge's own compaction items round-trip, foreign ones are refused."""

from __future__ import annotations

import pytest

from modelgate_gateway.upstream.translation.responses_chatcompletions import UntranslatableError, input_messages
from modelgate_gateway.upstream.translation.responses_chatcompletions_compact import (
    compacted_response,
    compaction_item,
    user_items,
)


def test_a_bridge_compaction_item_becomes_the_summary_message() -> None:
    item = compaction_item("The answer is 42.")
    assert input_messages([item]) == [{"role": "user",
                                       "content": "[Summary of the earlier conversation]\nThe answer is 42."}]


@pytest.mark.parametrize("content, param", [("gAAAAB-openai", "input[0].type"), ("mgc1.__4=", "input[0].encrypted_content")])
def test_foreign_or_damaged_compaction_items_are_refused(content: str, param: str) -> None:
    with pytest.raises(UntranslatableError) as caught:
        input_messages([{"type": "compaction", "encrypted_content": content}])
    assert caught.value.param == param


def test_the_compacted_window_keeps_user_messages_then_the_summary() -> None:
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello"},
                {"role": "user", "content": "[Summary of the earlier conversation]\nolder"}]
    kept = user_items(messages)
    completion = {"choices": [{"message": {"content": "They said hi."}}],
                  "usage": {"prompt_tokens": 30, "completion_tokens": 5, "total_tokens": 35}}
    compacted = compacted_response(completion, kept, "resp_1", 0)
    assert [item["type"] for item in compacted["output"]] == ["message", "compaction"]
    assert compacted["output"][0]["content"] == [{"type": "input_text", "text": "hi"}]
    assert compacted["usage"]["input_tokens"] == 30 and compacted["object"] == "response.compaction"
