"""ModelRoute status: Accepted / ResolvedRefs / Ready conditions with observedGeneration.

Pure: the caller passes the clock reading. ``lastTransitionTime`` only moves when a condition's
status changes, so an unchanged situation yields an identical status and no write. Neighbour:
:mod:`.rendering` produces the :class:`~.rendering.Verdict` this module turns into conditions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..rendering.render import Verdict
from ..rendering.resources import ModelRoute

ACCEPTED = "Accepted"
RESOLVED_REFS = "ResolvedRefs"
READY = "Ready"
FALLBACK_UNAVAILABLE = "FallbackUnavailable"
"""ResolvedRefs=False reason of a route served without some of its fallbacks."""
DEGRADED = "Degraded"
"""Ready=True reason of a route served without some of its fallbacks."""
WARNING_REASONS = frozenset({DEGRADED})
"""Reasons of a True condition that still deserve a Warning Event."""


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
        healthy = self.status == "True" and self.reason not in WARNING_REASONS
        return "Normal" if healthy else "Warning"


@dataclass(frozen=True, slots=True)
class Withheld:
    """Why a route that rendered fine is still not served: the whole document was not published.

    Not a property of the route (its Verdict is fine), so Ready carries it, after any reason of
    the route's own: a route left out for its own spec keeps that reason, which it must fix first.
    """

    reason: str
    message: str


def _condition(ctype: str, status: bool | None, reason: str, message: str, generation: int) -> dict[str, Any]:
    return {
        "type": ctype,
        "status": "Unknown" if status is None else ("True" if status else "False"),
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
    }


def _missing(verdict: Verdict) -> str:
    names = ", ".join(map(repr, verdict.missing_fallbacks))
    plural = "s" if len(verdict.missing_fallbacks) > 1 else ""
    return f"fallback{plural} {names}"


def _resolved(verdict: Verdict) -> tuple[bool, str, str]:
    if not verdict.resolved:
        return False, verdict.resolved_reason, verdict.resolved_message
    if verdict.missing_fallbacks:
        return (
            False,
            FALLBACK_UNAVAILABLE,
            (
                f"spec.fallbacks: no model named {', '.join(map(repr, verdict.missing_fallbacks))} is "
                "served by this gateway; the route is served without it until such a model is back."
            ),
        )
    return True, verdict.resolved_reason, verdict.resolved_message


def _served_by(rollout: Rollout, sidecars: Rollout | None) -> tuple[bool, str]:
    """(still rolling out, "Served by …" or the no-pods text), gateway pods and sidecars alike."""
    counts = [(rollout, "gateway pods")] if rollout.total else []
    if sidecars is not None and sidecars.total:
        counts.append((sidecars, "sidecars"))
    if not counts:
        return False, "In the gateway's config; no gateway pods found to count"
    rolling = any(count.serving < count.total for count, _ in counts)
    return rolling, "Served by " + " and ".join(f"{count} {what}" for count, what in counts)


def _ready(
    verdict: Verdict, rollout: Rollout, withheld: Withheld | None, sidecars: Rollout | None = None
) -> tuple[bool, str, str]:
    if not verdict.accepted:
        return False, verdict.accepted_reason, verdict.accepted_message
    if not verdict.resolved:
        return False, verdict.resolved_reason, verdict.resolved_message
    if withheld is not None:
        return False, withheld.reason, withheld.message
    rolling, where = _served_by(rollout, sidecars)
    if rolling:
        return False, "RollingOut", f"{where}; waiting for the rest."
    if verdict.missing_fallbacks:
        return True, DEGRADED, f"{where}, without {_missing(verdict)} (not served by this gateway)."
    counted = rollout.total or (sidecars is not None and sidecars.total)
    return True, ("Serving" if counted else "Published"), f"{where}."


def desired_conditions(
    route: ModelRoute,
    verdict: Verdict,
    rollout: Rollout,
    withheld: Withheld | None = None,
    sidecars: Rollout | None = None,
) -> list[dict[str, Any]]:
    """The three conditions for a route, without timestamps."""
    gen = route.generation
    accepted = _condition(ACCEPTED, verdict.accepted, verdict.accepted_reason, verdict.accepted_message, gen)
    if verdict.accepted:
        resolved = _condition(RESOLVED_REFS, *_resolved(verdict), gen)
    else:
        resolved = _condition(
            RESOLVED_REFS, None, "NotAccepted", "References are checked once the route is accepted.", gen
        )
    ready = _condition(READY, *_ready(verdict, rollout, withheld, sidecars), gen)
    return [accepted, resolved, ready]


def build_status(
    route: ModelRoute,
    verdict: Verdict,
    rollout: Rollout,
    previous: Mapping[str, Any] | None,
    now: str,
    withheld: Withheld | None = None,
    *,
    sidecars: Rollout | None = None,
    sidecar_mode: bool = False,
) -> tuple[dict[str, Any], list[ConditionChange]]:
    """The full status for a route and the condition changes since ``previous``.

    ``withheld``: the pass did not publish the document (see :class:`Withheld`). ``sidecars``:
    sidecars serving the route's generation (sidecar mode, None when no sidecar serves it);
    ``status.sidecars`` exists only in sidecar mode.
    """
    old_conditions: Sequence[Any] = (previous or {}).get("conditions") or []
    old = {c.get("type"): c for c in old_conditions if isinstance(c, Mapping)}
    conditions = []
    changes = []
    for cond in desired_conditions(route, verdict, rollout, withheld, sidecars):
        before = old.get(cond["type"])
        same_status = before is not None and before.get("status") == cond["status"]
        transition = before.get("lastTransitionTime") if same_status and before else None
        conditions.append({**cond, "lastTransitionTime": transition or now})
        if before is None or not same_status or before.get("reason") != cond["reason"]:
            changes.append(ConditionChange(cond["type"], cond["status"], cond["reason"], cond["message"]))
    status: dict[str, Any] = {
        "observedGeneration": route.generation,
        "conditions": conditions,
        "rollout": str(rollout) if verdict.included else "-",
        "deployments": list(verdict.deployments),
        # Every name, joined: a printer column's JSONPath shows only its first match.
        "deploymentNames": ",".join(route.deployment_names),
    }
    if not route.sidecars.shared_gateway:
        status["rollout"] = "-"  # the shared gateway does not serve it
    if sidecar_mode:
        status["sidecars"] = str(sidecars) if sidecars is not None and verdict.included else "-"
    return status, changes


def status_differs(new: Mapping[str, Any], old: Mapping[str, Any] | None) -> bool:
    """True when writing ``new`` would change what the API server holds."""
    if not old:
        return True
    return any(old.get(key) != value for key, value in new.items())
