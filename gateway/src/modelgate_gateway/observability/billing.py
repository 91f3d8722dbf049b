"""Usage as billed, read out of a Responses object: tokens, the serving tier, hosted tool calls.

One reader for every place a Responses object shows up (a plain answer, the terminal event of a
stream, a retrieved background response). Pure: no I/O, no aiohttp. A count that is missing,
negative or not an integer reads as 0; a zero is a real zero (a reply that produced no output),
not "unreported": only a missing ``usage`` object means the upstream reported nothing.
"""

from __future__ import annotations

from typing import Any

from ..recording import Usage

TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled", "incomplete"})
"""Statuses after which a response's usage no longer changes (background responses end in one)."""

# Output items of tools the model runs client-side: billed as tokens, not per call.
_CLIENT_SIDE_TOOLS = frozenset({"function", "custom_tool", "computer", "local_shell", "shell", "apply_patch"})
_MAX_TOOL_KINDS = 16  # distinct tool kinds read per response; the rest are ignored (bounded work)
_MAX_TIER_CHARS = 32


def _int(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0


def _detail(usage: dict[str, Any], details_key: str, key: str) -> int:
    details = usage.get(details_key)
    return _int(details.get(key)) if isinstance(details, dict) else 0


def tokens_from_mapping(usage: Any) -> Usage | None:
    """Token counts of a Responses ``usage`` object, or a Chat Completions one (translated upstreams)."""
    if not isinstance(usage, dict):
        return None
    if "input_tokens" in usage or "output_tokens" in usage:
        return Usage(
            input_tokens=_int(usage.get("input_tokens")),
            cached_input_tokens=_detail(usage, "input_tokens_details", "cached_tokens"),
            output_tokens=_int(usage.get("output_tokens")),
            reasoning_tokens=_detail(usage, "output_tokens_details", "reasoning_tokens"),
            cache_write_tokens=_detail(usage, "input_tokens_details", "cache_write_tokens"),
        )
    if "prompt_tokens" in usage or "completion_tokens" in usage:
        return Usage(
            input_tokens=_int(usage.get("prompt_tokens")),
            cached_input_tokens=_detail(usage, "prompt_tokens_details", "cached_tokens"),
            output_tokens=_int(usage.get("completion_tokens")),
            reasoning_tokens=_detail(usage, "completion_tokens_details", "reasoning_tokens"),
            cache_write_tokens=_detail(usage, "prompt_tokens_details", "cache_write_tokens"),
        )
    return None


def served_tier(response: dict[str, Any]) -> str | None:
    """The ``service_tier`` the response reports (the one that served it), if any.

    ``auto`` is a request value, not a tier: an upstream echoing it (translated chat upstreams do)
    reported no tier.
    """
    tier = response.get("service_tier")
    if isinstance(tier, str) and tier and tier != "auto" and len(tier) <= _MAX_TIER_CHARS:
        return tier
    return None


def hosted_tool_calls(output: Any) -> tuple[tuple[str, int], ...]:
    """(tool, calls) for every hosted tool call item (``web_search_call``, ...) in ``output``."""
    return _scan_output(output)[0]


def _scan_output(output: Any) -> tuple[tuple[tuple[str, int], ...], bool]:
    """Hosted tool calls in ``output``, and whether it holds a ``compaction`` item."""
    if not isinstance(output, list):
        return (), False
    counts: dict[str, int] | None = None
    compacted = False
    for item in output:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if not isinstance(kind, str):
            continue
        if kind == "compaction":
            compacted = True
            continue
        if not kind.endswith("_call"):
            continue
        tool = kind[:-5]
        if tool in _CLIENT_SIDE_TOOLS:
            continue
        if counts is None:
            counts = {}
        if tool in counts:
            counts[tool] += 1
        elif len(counts) < _MAX_TOOL_KINDS:
            counts[tool] = 1
    return (tuple(counts.items()) if counts else ()), compacted


def billed_usage(response: Any) -> Usage | None:
    """Usage of a Responses ``response`` object, or None when it reports none.

    Hosted tool calls and the tier are read only when there is usage: a response without usage is
    not finished (or its upstream reports nothing), and is estimated elsewhere.
    """
    if not isinstance(response, dict):
        return None
    usage = tokens_from_mapping(response.get("usage"))
    if usage is None:
        return None
    usage.service_tier = served_tier(response)
    usage.tool_calls, usage.compacted = _scan_output(response.get("output"))
    return usage


def is_terminal(response: Any) -> bool:
    return isinstance(response, dict) and response.get("status") in TERMINAL_STATUSES
