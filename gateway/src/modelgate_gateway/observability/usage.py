"""Read token usage out of a Responses object, tolerant of servers that omit parts of it."""

from __future__ import annotations

from typing import Any

from .recording import Usage


def _int(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def usage_of(response: dict[str, Any] | None) -> Usage | None:
    """Usage of a Responses ``response`` object, or None when the upstream reported none."""
    if not isinstance(response, dict):
        return None
    usage = response.get("usage")
    if not isinstance(usage, dict):
        return None
    input_details = usage.get("input_tokens_details")
    output_details = usage.get("output_tokens_details")
    return Usage(
        input_tokens=_int(usage.get("input_tokens")),
        cached_input_tokens=_int(input_details.get("cached_tokens")) if isinstance(input_details, dict) else 0,
        output_tokens=_int(usage.get("output_tokens")),
        reasoning_tokens=_int(output_details.get("reasoning_tokens")) if isinstance(output_details, dict) else 0,
    )
