"""What a request reserves when admitted and what it is charged when it ends. Pure.

The reservation is an upper bound where the request allows one: output is bounded by its
``max_output_tokens`` (else the configured default), input by body bytes over
``inputBytesPerToken``, cost by the dearest deployment that may serve it. The charge is the
reported usage at the prices where it was served, through :func:`modelgate_gateway.pricing.cost_usd`,
the function behind ``modelgate_cost_usd_total``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..observability.pricing import UNKNOWN_PRICES, cost_usd
from ..observability.recording import Usage
from .policy import NANO_USD, GovernancePolicy


def output_bound(payload: Mapping[str, Any], default: int) -> int:
    value = payload.get("max_output_tokens")
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return default


def reservation(policy: GovernancePolicy, model: str, payload: Mapping[str, Any], body_bytes: int) -> tuple[int, int]:
    """(tokens, nano-USD) reserved for a create request of ``model``."""
    usage = Usage(input_tokens=math.ceil(body_bytes / policy.input_bytes_per_token),
                  output_tokens=output_bound(payload, policy.default_max_output_tokens))
    prices = policy.model_prices.get(model) or (UNKNOWN_PRICES,)
    cost = max(cost_usd(usage, p) for p in prices)
    return usage.input_tokens + usage.output_tokens, math.ceil(cost * NANO_USD)


def charge(policy: GovernancePolicy, usage: Usage, model: str | None, deployment: str | None) -> tuple[int, int]:
    """(tokens, nano-USD) a finished request used, from its reported usage."""
    prices = policy.served_prices.get((model or "", deployment or ""), UNKNOWN_PRICES)
    tokens = max(usage.input_tokens, 0) + max(usage.output_tokens, 0)
    return tokens, round(cost_usd(usage, prices) * NANO_USD)
