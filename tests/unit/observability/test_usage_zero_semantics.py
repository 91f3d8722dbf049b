"""One usage reader for every path (hot path, observer, chat translation): a reported zero is a
report, an empty or missing usage is none, and a count that is not a non-negative integer is 0.

Before the parsers were merged, ``{}`` was "zero tokens" for the streaming relay and the chat
translator but "no usage" (estimate) for the observer; a chat ``total_tokens`` of ``true`` or a
negative count passed through to the client's ``usage``."""

from __future__ import annotations

import orjson
import pytest

from modelgate_gateway.observability.recording import Usage
from modelgate_gateway.observability.usage import usage_from_mapping, usage_from_response_json, usage_of
from modelgate_gateway.upstream.translation.responses_chatcompletions import map_usage

ZERO = Usage(0, 0, 0, 0)


@pytest.mark.parametrize(
    "usage",
    [
        {"input_tokens": 0, "output_tokens": 0},
        {"input_tokens": 0},
        {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    ],
)
def test_reported_zero_is_a_report_on_every_path(usage: dict[str, int]) -> None:
    assert usage_from_mapping(usage) == ZERO
    assert usage_of({"usage": usage}) == ZERO
    assert usage_from_response_json(orjson.dumps({"response": {"usage": usage}})) == ZERO


@pytest.mark.parametrize("usage", [None, {}, {"total_tokens": 5}, [], "12"])
def test_empty_or_missing_usage_is_no_report_on_every_path(usage: object) -> None:
    assert usage_from_mapping(usage) is None
    assert usage_of({"usage": usage}) is None
    assert usage_from_response_json(orjson.dumps({"usage": usage})) is None
    assert map_usage(usage) is None


def test_counts_that_are_not_non_negative_integers_read_as_zero() -> None:
    odd = {
        "prompt_tokens": -3,
        "completion_tokens": True,
        "total_tokens": True,
        "prompt_tokens_details": {"cached_tokens": 2.0},
        "completion_tokens_details": {"reasoning_tokens": "4"},
    }
    assert usage_from_mapping(odd) == ZERO
    assert map_usage(odd) == {
        "input_tokens": 0,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": 0,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 0,
    }


def test_client_usage_and_metered_usage_agree_for_chat_upstreams() -> None:
    chat = {
        "prompt_tokens": 10,
        "completion_tokens": 4,
        "prompt_tokens_details": {"cached_tokens": 6},
        "completion_tokens_details": {"reasoning_tokens": 1},
    }
    mapped = map_usage(chat)
    assert mapped is not None and mapped["total_tokens"] == 14
    assert usage_from_mapping(mapped) == usage_from_mapping(chat) == Usage(10, 6, 4, 1)


def test_odd_counts_of_a_responses_usage_read_as_zero_whatever_their_truth() -> None:
    # Truthy odd values (not only zeros) through every field of the Responses shape.
    odd = {
        "input_tokens": 3.5,
        "input_tokens_details": {"cached_tokens": True, "cache_write_tokens": "7"},
        "output_tokens": -2,
        "output_tokens_details": {"reasoning_tokens": [1]},
    }
    assert usage_from_mapping(odd) == ZERO
    assert usage_from_mapping({"input_tokens": 5, "output_tokens": None}) == Usage(5, 0, 0, 0)
