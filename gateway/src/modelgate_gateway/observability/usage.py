"""The one reader of token usage an upstream reports: Responses objects, their terminal events, and
Chat Completions ``usage`` (translated deployments).

What counts as *reported*, and why zero matters: a ``usage`` object that carries at least one
token count of its shape (``input_tokens``/``output_tokens``, or ``prompt_tokens``/
``completion_tokens``) is the upstream's word, even when the count is ``0`` (a response cut
before any token, a cached no-op): the gateway records those zeros and never estimates over
them, which would bill tokens the upstream says it did not use. A missing ``usage``, ``null``,
or an object with none of those counts (``{}``) is no report at all: ``None``, and the observer
estimates. A count that is not a non-negative integer (``null``, a string, a float, a boolean,
a negative number) is read as ``0`` within a report: it is never guessed at.
"""

from __future__ import annotations

from typing import Any

import orjson

from .recording import Usage


def _count(value: Any) -> int:
    return value if type(value) is int and value >= 0 else 0


def _detail(usage: dict[str, Any], details_key: str, key: str) -> int:
    details = usage.get(details_key)
    return _count(details.get(key)) if isinstance(details, dict) else 0


def usage_from_mapping(usage: Any) -> Usage | None:
    """A Responses ``usage`` object, or a Chat Completions one; None when it reports no count."""
    if not isinstance(usage, dict):
        return None
    if "input_tokens" in usage or "output_tokens" in usage:  # no generator: this runs per request
        return Usage(
            input_tokens=_count(usage.get("input_tokens")),
            cached_input_tokens=_detail(usage, "input_tokens_details", "cached_tokens"),
            output_tokens=_count(usage.get("output_tokens")),
            reasoning_tokens=_detail(usage, "output_tokens_details", "reasoning_tokens"),
        )
    if "prompt_tokens" in usage or "completion_tokens" in usage:
        return Usage(
            input_tokens=_count(usage.get("prompt_tokens")),
            cached_input_tokens=_detail(usage, "prompt_tokens_details", "cached_tokens"),
            output_tokens=_count(usage.get("completion_tokens")),
            reasoning_tokens=_detail(usage, "completion_tokens_details", "reasoning_tokens"),
        )
    return None


def usage_of(response: Any) -> Usage | None:
    """Usage of a Responses ``response`` object (already parsed), or None when it reports none."""
    return usage_from_mapping(response.get("usage")) if isinstance(response, dict) else None


def usage_from_response_json(body: bytes) -> Usage | None:
    """Usage in a Responses object or a terminal event's payload (``{"response": {...}}``); None if absent."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    inner = data.get("response")
    return usage_of(inner if isinstance(inner, dict) else data)
