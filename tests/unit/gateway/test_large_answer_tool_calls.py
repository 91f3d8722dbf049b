"""A large answer's hosted tool calls and compaction are found by the bounded scan wherever its
pieces are cut: only the ``type`` of ``output``'s items counts, not a type nested deeper, in
another top-level array, or inside a string."""

from __future__ import annotations

import orjson
import pytest

from modelgate_gateway.streaming.large_answer import AnswerPieces


def _answer() -> bytes:
    return orjson.dumps(
        {
            "id": "resp_up",
            "instructions": [{"type": "web_search_call", "id": "before_output"}],
            "output": [
                {"type": "web_search_call", "id": "ws_1", "action": {"type": "search", "query": "q"}},
                {"type": "file_search_call", "id": "fs_1", "results": [{"type": "web_search_call"}]},
                {"type": "function_call", "id": "fc_1", "arguments": '{"type": "web_search_call"}'},
                {"id": "ws_2", "status": "completed", "type": "web_search_call"},
                {"type": "compaction", "id": "cmp_1", "encrypted_content": "x" * 500},
                {"type": "message", "content": [{"type": "output_text", "text": "y" * 3000}]},
            ],
            "tools": [{"type": "web_search"}],
            "usage": {"input_tokens": 3, "output_tokens": 5},
        }
    ).replace(b'"type":"web_search_call"}', b'"type"  :  "web_search_call"}')


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 100, 1 << 20])
def test_output_item_kinds_are_counted_however_the_answer_is_cut(size: int) -> None:
    answer = _answer()
    pieces = AnswerPieces(lambda name, token: None)
    for start in range(0, len(answer), size):
        pieces.add(answer[start : start + size])
        pieces.take()
    pieces.end()
    usage = pieces.usage()
    assert usage is not None and (usage.input_tokens, usage.output_tokens) == (3, 5)
    assert dict(usage.tool_calls) == {"web_search": 2, "file_search": 1}
    assert usage.compacted
