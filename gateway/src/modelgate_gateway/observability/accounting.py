"""Charging one billed event: tokens, hosted tool calls and cost into the metrics.

A billed event is a create (plain or streamed), a compaction, or a background response that reached
its end; each has an ``operation`` label and a usage source (reported by the upstream, estimated
from text, or followed up after the create returned). :func:`charge` is the one place that turns
usage into samples, so every path (the observer's per-request accounting, the background follow-up,
and a future endpoint's handler through ``RequestRecord.operation``) counts the same way. The cost
itself is :func:`.pricing.cost_usd`, a pure function budgets can call too.
"""

from __future__ import annotations

import enum

from . import estimating
from .labels import DEFAULT_TIER, NONE_LABEL, OTHER_LABEL, ConfigView, EndUserLabels
from .metrics import Metrics
from .pricing import Prices, cost_usd
from .recording import RequestRecord, Usage
from .usage import usage_from_response_json

BILLED_ROUTES = frozenset({"create", "compact"})
"""Routes whose calls consume tokens; retrieve etc. carry the usage of a create, input_tokens runs no model."""


class Operation(enum.StrEnum):
    """The ``operation`` label: what the provider bills."""

    CREATE = "create"
    BACKGROUND = "background"
    """A ``background: true`` create: billed once, when it reaches a terminal state."""
    COMPACT = "compact"
    """``POST /v1/responses/compact``, or a create whose ``context_management`` compacts server-side."""


class UsageSource(enum.StrEnum):
    REPORTED = "reported"
    ESTIMATED = "estimated"
    FOLLOWED_UP = "followed_up"
    """Reported by the upstream after the create returned (background responses)."""
    UNKNOWN = "unknown"
    """A background response the follow-up gave up on (deadline): nothing to charge."""


def operation_of(record: RequestRecord, usage: Usage | None) -> str:
    """The ``operation`` a request is billed as; sets ``record.operation`` to it (the log shows it).

    A billed endpoint other than create (``POST /v1/responses/compact``: route ``compact``) is its
    own operation; a create whose answer holds a ``compaction`` item compacted server-side
    (``context_management``) and is billed as ``compact`` (the provider reports one usage for the
    call, compaction included, so it cannot be split).
    """
    if record.route != "create":
        record.operation = record.route
    elif usage is not None and usage.compacted and record.operation == Operation.CREATE:
        record.operation = Operation.COMPACT
    return record.operation


def billing(record: RequestRecord) -> tuple[Usage | None, bool, str]:
    """(usage, estimated, operation) of a finished request: :func:`billed_usage` and :func:`operation_of`
    in one call, with their usual case (a create whose upstream reported usage) written out."""
    usage = record.usage
    operation = record.operation
    if usage is not None and record.route == "create" and operation != Operation.BACKGROUND:
        if usage.compacted and operation == Operation.CREATE:
            record.operation = operation = Operation.COMPACT
        return usage, False, operation
    usage, estimated = billed_usage(record)
    return usage, estimated, operation_of(record, usage)


def charge(
    metrics: Metrics,
    view: ConfigView,
    end_users: EndUserLabels,
    labels: tuple[str, str, str],
    *,
    end_user: str | None,
    operation: str,
    usage: Usage,
    estimated: bool,
) -> tuple[float, Prices]:
    """Count ``usage`` of one billed event under bounded ``labels`` (model, deployment, key); (cost, prices).

    Every figure (tokens, cost, hosted tool calls) carries the same who-labels: model, deployment,
    key, the key's tenant and the end user (capped by ``end_users``).

    Runs once per request, so the usual case is written out: a plain tuple back, no object per
    call, input and output counted without a loop (the cache and reasoning counts, parts of
    them, only when there are any), the counters' ``inc`` inlined, and no call for an absent end
    user, a tier-less usage or prices found under the (model, deployment) pair.
    """
    model, deployment, key = labels
    tenant = view.key_tenants.get(key, NONE_LABEL)
    user = end_users.label(end_user) if end_user else NONE_LABEL
    est = "true" if estimated else "false"
    tier = usage.service_tier
    tier = DEFAULT_TIER if tier is None else tier if tier in view.tiers else OTHER_LABEL
    tokens = metrics.tokens.values  # CounterFamily.inc written out: a call fewer per figure
    count = usage.input_tokens
    if count:
        series = (model, deployment, key, tenant, user, "input", est, operation, tier)
        tokens[series] = tokens.get(series, 0.0) + count
    count = usage.output_tokens
    if count:
        series = (model, deployment, key, tenant, user, "output", est, operation, tier)
        tokens[series] = tokens.get(series, 0.0) + count
    if usage.cached_input_tokens or usage.cache_write_tokens or usage.reasoning_tokens:  # parts of those two
        for token_type, count in (
            ("cached_input", usage.cached_input_tokens),
            ("cache_write", usage.cache_write_tokens),
            ("reasoning", usage.reasoning_tokens),
        ):
            if count:
                series = (model, deployment, key, tenant, user, token_type, est, operation, tier)
                tokens[series] = tokens.get(series, 0.0) + count
    prices = view.prices.get((model, deployment))
    if prices is None:
        prices = view.prices_for(model, deployment)
    cost = cost_usd(usage, prices)
    costs = metrics.cost.values
    spent = (model, deployment, key, tenant, user, est, operation, tier)
    costs[spent] = costs.get(spent, 0.0) + cost
    if not prices.known and (usage.input_tokens or usage.output_tokens):
        metrics.unpriced.inc((model, deployment))
    if usage.tool_calls:
        for tool, calls in usage.tool_calls:
            priced = "true" if tool in prices.tools else "false"
            label = tool if tool in view.tools else OTHER_LABEL
            metrics.tool_calls.inc((model, deployment, key, tenant, user, label, operation, priced), calls)
    return cost, prices


def billed_usage(record: RequestRecord, estimate: bool = True) -> tuple[Usage | None, bool]:
    """What a finished request is charged: (usage, estimated). Metrics and budgets both use it.

    Reported usage, else an estimate when the request produced output or succeeded; with
    ``estimate=False`` only says whether an estimate would be made (second item). Only create
    (and compact) calls consume tokens: a retrieved or cancelled response carries the usage of
    the call that created it, which was accounted then. A background create is charged once,
    when it ends (:mod:`..state.background`), never here. Estimating needs the tokenizer
    (:func:`.estimating.encoding`): callers on the event loop load it in a thread first.
    """
    if record.route not in BILLED_ROUTES or record.operation == Operation.BACKGROUND:
        return None, False
    if record.usage is not None:
        return record.usage, False
    succeeded = 200 <= record.status < 300
    body = record.response_body if succeeded else None
    # The hot path may not have parsed usage itself: look where the upstream would put it.
    reported = (
        usage_from_response_json(body)
        if body
        else estimating.usage_from_sse_blocks(record.stream_blocks)
        if record.stream_blocks
        else None
    )
    if reported is not None:
        return reported, False
    if not (succeeded or record.delta_payloads):
        return None, False
    if not estimate:
        return None, True
    return estimating.estimate_usage(record.request_body, body, record.delta_payloads, record.stream_blocks), True
