"""ModelRoute status: Accepted / ResolvedRefs / Ready conditions with observedGeneration.

Pure: the caller passes the clock reading. ``lastTransitionTime`` only moves when a condition's
status changes, so an unchanged situation yields an identical status and no write. Neighbour:
:mod:`.rendering` produces the :class:`~.rendering.Verdict` this module turns into conditions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .rendering import Verdict
from .resources import ModelRoute

ACCEPTED = "Accepted"
RESOLVED_REFS = "ResolvedRefs"
READY = "Ready"


@dataclass(frozen=True, slots=True)
class Rollout:
    """How many gateway pods serve a route's current generation, out of all gateway pods."""

    serving: int
    total: int

    def __str__(self) -> str:
        return f"{self.serving}/{self.total}"


@dataclass(frozen=True, slots=True)
class ConditionChange:
    """A condition that changed status or reason; becomes a Kubernetes Event."""

    type: str
    status: str
    reason: str
    message: str

    @property
    def event_type(self) -> str:
        return "Normal" if self.status == "True" else "Warning"


@dataclass(frozen=True, slots=True)
class Withheld:
    """Why a route that rendered fine is still not served: the whole document was not published.

    Not a property of the route (its Verdict is fine), so Ready carries it, after any reason of
    the route's own: a route left out for its own spec keeps that reason, which it must fix first.
    """

    reason: str
    message: str


def _condition(ctype: str, status: bool | None, reason: str, message: str,
               generation: int) -> dict[str, Any]:
    return {
        "type": ctype,
        "status": "Unknown" if status is None else ("True" if status else "False"),
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
    }


def _ready(verdict: Verdict, rollout: Rollout, withheld: Withheld | None) -> tuple[bool, str, str]:
    if not verdict.accepted:
        return False, verdict.accepted_reason, verdict.accepted_message
    if not verdict.resolved:
        return False, verdict.resolved_reason, verdict.resolved_message
    if withheld is not None:
        return False, withheld.reason, withheld.message
    if rollout.total == 0:
        return True, "Published", "In the gateway's config; no gateway pods found to count."
    if rollout.serving < rollout.total:
        return False, "RollingOut", f"Served by {rollout} gateway pods; waiting for the rest."
    return True, "Serving", f"Served by {rollout} gateway pods."


def desired_conditions(route: ModelRoute, verdict: Verdict, rollout: Rollout,
                       withheld: Withheld | None = None) -> list[dict[str, Any]]:
    """The three conditions for a route, without timestamps."""
    gen = route.generation
    accepted = _condition(ACCEPTED, verdict.accepted, verdict.accepted_reason,
                          verdict.accepted_message, gen)
    if verdict.accepted:
        resolved = _condition(RESOLVED_REFS, verdict.resolved, verdict.resolved_reason,
                              verdict.resolved_message, gen)
    else:
        resolved = _condition(RESOLVED_REFS, None, "NotAccepted",
                              "References are checked once the route is accepted.", gen)
    ready = _condition(READY, *_ready(verdict, rollout, withheld), gen)
    return [accepted, resolved, ready]


def build_status(route: ModelRoute, verdict: Verdict, rollout: Rollout,
                 previous: Mapping[str, Any] | None, now: str, withheld: Withheld | None = None,
                 ) -> tuple[dict[str, Any], list[ConditionChange]]:
    """The full status for a route and the condition changes since ``previous``.

    ``withheld``: the pass did not publish the document (see :class:`Withheld`).
    """
    old_conditions: Sequence[Any] = (previous or {}).get("conditions") or []
    old = {c.get("type"): c for c in old_conditions if isinstance(c, Mapping)}
    conditions = []
    changes = []
    for cond in desired_conditions(route, verdict, rollout, withheld):
        before = old.get(cond["type"])
        same_status = before is not None and before.get("status") == cond["status"]
        transition = before.get("lastTransitionTime") if same_status and before else None
        conditions.append({**cond, "lastTransitionTime": transition or now})
        if before is None or not same_status or before.get("reason") != cond["reason"]:
            changes.append(ConditionChange(cond["type"], cond["status"], cond["reason"],
                                           cond["message"]))
    status: dict[str, Any] = {
        "observedGeneration": route.generation,
        "conditions": conditions,
        "rollout": str(rollout) if verdict.included else "-",
        "deployments": list(verdict.deployments),
        # Every name, joined: a printer column's JSONPath shows only its first match.
        "deploymentNames": ",".join(route.deployment_names),
    }
    return status, changes


def status_differs(new: Mapping[str, Any], old: Mapping[str, Any] | None) -> bool:
    """True when writing ``new`` would change what the API server holds."""
    if not old:
        return True
    return any(old.get(key) != value for key, value in new.items())
