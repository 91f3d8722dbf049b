"""Reading usage as billed out of Responses objects: cache writes, served tier, hosted tool calls."""

from modelgate_gateway.observability.recording import Usage
from modelgate_gateway.observability.usage import hosted_tool_calls, usage_from_mapping, usage_of

USAGE = {
    "input_tokens": 120,
    "input_tokens_details": {"cached_tokens": 20, "cache_write_tokens": 50},
    "output_tokens": 30,
    "output_tokens_details": {"reasoning_tokens": 12},
    "total_tokens": 150,
}


def test_cache_write_tokens_are_read_next_to_cached_tokens() -> None:
    assert usage_from_mapping(USAGE) == Usage(120, 20, 30, 12, cache_write_tokens=50)


def test_the_served_tier_and_hosted_tool_calls_come_from_the_response() -> None:
    response = {
        "object": "response",
        "status": "completed",
        "service_tier": "flex",
        "usage": USAGE,
        "output": [
            {"type": "web_search_call", "id": "ws_1", "status": "completed"},
            {"type": "web_search_call", "id": "ws_2", "status": "completed"},
            {"type": "file_search_call", "id": "fs_1", "status": "completed", "queries": []},
            {"type": "function_call", "id": "fc_1", "name": "f", "arguments": "{}", "call_id": "c"},
            {"type": "computer_call", "id": "cc_1"},
            {"type": "message", "id": "msg_1", "role": "assistant", "content": []},
        ],
    }
    usage = usage_of(response)
    assert usage is not None
    assert usage.service_tier == "flex"
    assert usage.tool_calls == (("web_search", 2), ("file_search", 1))
    assert not usage.compacted


def test_a_compaction_item_marks_the_usage_compacted() -> None:
    usage = usage_of({"usage": USAGE, "output": [{"type": "compaction", "id": "cmp_1", "encrypted_content": "x"}]})
    assert usage is not None and usage.compacted


def test_a_response_without_usage_has_no_usage_of() -> None:
    assert usage_of({"status": "queued", "usage": None, "service_tier": "flex"}) is None
    assert usage_of("not a response") is None


def test_odd_output_is_ignored_and_tool_kinds_are_bounded() -> None:
    assert hosted_tool_calls("nope") == ()
    assert hosted_tool_calls([1, {"type": 2}, {"type": "message"}]) == ()
    many = [{"type": f"tool{i}_call"} for i in range(40)]
    assert len(hosted_tool_calls(many)) == 16


def test_tool_calls_after_usual_items_and_odd_item_types_are_read() -> None:
    # Answers made only of messages and reasoning skip the scan; anything else after them must not.
    output = [
        {"type": "reasoning", "id": "rs_1"},
        {"type": "message", "id": "msg_1"},
        {"type": ["not", "hashable"]},
        "not an item",
        {"type": "web_search_call", "id": "ws_1"},
        {"type": "compaction", "id": "cmp_1"},
    ]
    usage = usage_of({"usage": USAGE, "output": output})
    assert usage is not None
    assert usage.tool_calls == (("web_search", 1),)
    assert usage.compacted
    plain = usage_of({"usage": USAGE, "output": [{"type": "reasoning"}, {"type": "message"}]})
    assert plain is not None and plain.tool_calls == () and not plain.compacted


def test_an_absurd_tier_value_is_not_taken() -> None:
    usage = usage_of({"usage": USAGE, "service_tier": "x" * 500})
    assert usage is not None and usage.service_tier is None
