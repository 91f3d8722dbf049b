"""ModelGateKey status: a Ready condition, the key's name and tenant in the gateway, its spend. Pure.

``lastTransitionTime`` moves only when Ready's status changes, so an unchanged situation gives an
identical status and no write.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .rendering import KeyVerdict
from .resources import GateKey


@dataclass(frozen=True, slots=True)
class Spend:
    """What the gateway's counters say about a key (see :mod:`.spend`)."""

    window: str | None = None
    spent_usd: float | None = None
    budget_usd: float | None = None
    last_used: str | None = None


def build_status(key: GateKey, verdict: KeyVerdict, spend: Spend, previous: Mapping[str, Any] | None,
                 now: str) -> tuple[dict[str, Any], bool]:
    """The status, and whether Ready changed (status or reason) since ``previous``."""
    old: Sequence[Any] = (previous or {}).get("conditions") or []
    before = next((c for c in old if isinstance(c, Mapping) and c.get("type") == "Ready"), None)
    status_text = "True" if verdict.ready else "False"
    same = before is not None and before.get("status") == status_text
    condition = {"type": "Ready", "status": status_text, "reason": verdict.reason, "message": verdict.message,
                 "observedGeneration": key.generation,
                 "lastTransitionTime": (before.get("lastTransitionTime") if same and before else None) or now}
    status: dict[str, Any] = {"observedGeneration": key.generation, "conditions": [condition],
                              "keyName": key.key_name, "tenant": key.tenant}
    if spend.window is not None and spend.spent_usd is not None:
        status["window"] = spend.window
        status["spentUsd"] = f"{spend.spent_usd:.6f}"
        if spend.budget_usd is not None:
            status["remainingUsd"] = f"{max(spend.budget_usd - spend.spent_usd, 0.0):.6f}"
    if spend.last_used is not None:
        status["lastUsed"] = spend.last_used
    changed = before is None or not same or before.get("reason") != verdict.reason
    return status, changed
