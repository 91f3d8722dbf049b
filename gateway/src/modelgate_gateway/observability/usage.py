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

Beyond the token counts, a Responses object says what else is billed: the tier that served it
(``service_tier``; ``auto`` is a request value, not a tier), the hosted tool calls among its output
items (``web_search_call``, ...; client-side tools such as ``function_call`` are billed as tokens),
and whether the server compacted the context (a ``compaction`` item). :func:`usage_of` reads all of
it into one :class:`Usage`, which :func:`.pricing.cost_usd` prices.
"""

from __future__ import annotations

from typing import Any

import orjson

from .recording import Usage

TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled", "incomplete"})
"""Statuses after which a response's usage no longer changes (background responses end in one)."""
# Output items of tools the model runs client-side: billed as tokens, not per call.
_CLIENT_SIDE_TOOLS = frozenset({"function", "custom_tool", "computer", "local_shell", "shell", "apply_patch"})
_MAX_TOOL_KINDS = 16  # distinct tool kinds read per response; the rest are ignored (bounded work)
_USUAL_ITEMS = ("message", "reasoning")
"""Output items billed as tokens only, as nearly every answer is made of (a tuple: ``in`` compares, so
a malformed, unhashable ``type`` is simply not one of them)."""
MAX_ITEM_KINDS = 64
"""Distinct output item types looked at per response (bounded work and memory)."""
_MAX_TIER_CHARS = 32


# (input count, output count, input details, output details): a Responses usage, a Chat Completions one
_RESPONSES_FIELDS = ("input_tokens", "output_tokens", "input_tokens_details", "output_tokens_details")
_CHAT_FIELDS = ("prompt_tokens", "completion_tokens", "prompt_tokens_details", "completion_tokens_details")


def usage_from_mapping(usage: Any) -> Usage | None:
    """A Responses ``usage`` object, or a Chat Completions one; None when it reports no count.

    Written out rather than through helpers: it runs once per request and each Python call costs.
    """
    if not isinstance(usage, dict):
        return None
    if "input_tokens" in usage or "output_tokens" in usage:
        input_key, output_key, input_details, output_details = _RESPONSES_FIELDS
    elif "prompt_tokens" in usage or "completion_tokens" in usage:
        input_key, output_key, input_details, output_details = _CHAT_FIELDS
    else:
        return None
    inputs, outputs = usage.get(input_key), usage.get(output_key)
    cached: Any = 0
    cache_write: Any = 0
    reasoning: Any = 0
    details = usage.get(input_details)
    if isinstance(details, dict):
        cached, cache_write = details.get("cached_tokens"), details.get("cache_write_tokens")
    details = usage.get(output_details)
    if isinstance(details, dict):
        reasoning = details.get("reasoning_tokens")
    # ``x and`` first: a zero or absent count (most of the details) costs one test, not a type check.
    # Positional, in Usage's field order: keywords to a class call cost a dict per call (~2k instructions).
    return Usage(
        inputs if inputs and type(inputs) is int and inputs > 0 else 0,  # input_tokens
        cached if cached and type(cached) is int and cached > 0 else 0,  # cached_input_tokens
        outputs if outputs and type(outputs) is int and outputs > 0 else 0,  # output_tokens
        reasoning if reasoning and type(reasoning) is int and reasoning > 0 else 0,  # reasoning_tokens
        cache_write if cache_write and type(cache_write) is int and cache_write > 0 else 0,  # cache_write_tokens
    )


def usage_of(response: Any) -> Usage | None:
    """Usage of a Responses ``response`` object (already parsed) as billed: tokens, the served tier,
    hosted tool calls, compaction; None when it reports no usage (unfinished, or an upstream that
    reports none: estimated elsewhere)."""
    if not isinstance(response, dict):
        return None
    usage = usage_from_mapping(response.get("usage"))
    if usage is None:
        return None
    if response.get("service_tier") is not None:
        usage.service_tier = served_tier(response)
    output = response.get("output")
    if isinstance(output, list):
        for item in output:  # an answer of messages and reasoning (nearly all) needs no _scan_output call
            kind = item.get("type") if isinstance(item, dict) else None
            if kind not in _USUAL_ITEMS:
                usage.tool_calls, usage.compacted = _scan_output(output)
                break
    return usage


def served_tier(response: dict[str, Any]) -> str | None:
    """The ``service_tier`` the response reports (the one that served it), if any."""
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
    kinds: dict[str, int] | None = None
    for item in output:
        kind = item.get("type") if isinstance(item, dict) else None
        if not isinstance(kind, str) or kind in _USUAL_ITEMS:
            continue  # the usual items: no dict, no call for an answer made of them
        if kinds is None:
            kinds = {}
        if kind in kinds or len(kinds) < MAX_ITEM_KINDS:
            kinds[kind] = kinds.get(kind, 0) + 1
    return billed_items(kinds) if kinds else ((), False)


def billed_items(kinds: dict[str, int]) -> tuple[tuple[tuple[str, int], ...], bool]:
    """From the ``type`` of a response's output items, with their counts: (hosted tool, calls) for
    the tool calls billed per call, and whether the server compacted (a ``compaction`` item).
    Shared by parsed answers and the large-answer scan (``streaming.large_answer``)."""
    counts: dict[str, int] | None = None
    compacted = False
    for kind, calls in kinds.items():
        if kind == "compaction":
            compacted = True
        elif kind.endswith("_call") and kind[:-5] not in _CLIENT_SIDE_TOOLS:
            if counts is None:
                counts = {}
            if len(counts) < _MAX_TOOL_KINDS:
                counts[kind[:-5]] = calls
    return (tuple(counts.items()) if counts else ()), compacted


def is_terminal(response: Any) -> bool:
    """The response reached a state after which its usage no longer changes."""
    return isinstance(response, dict) and response.get("status") in TERMINAL_STATUSES


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
