"""Metrics of budgets and rate limits (see docs/governance.md).

- ``modelgate_governance_spend_usd{subject_kind,subject}`` gauge: spend in the current budget
  window, fleet-wide, as this replica last saw it (take the max over replicas)
- ``modelgate_governance_reserved_usd{subject_kind,subject}`` gauge: reservations of requests in flight
- ``modelgate_governance_budget_usd{subject_kind,subject}`` gauge: the configured budget
- ``modelgate_governance_limit_hits_total{subject_kind,subject,limit}`` counter: 429s by limit
  (requests, tokens, concurrency, budget)
- ``modelgate_governance_reservations_in_flight`` gauge: this replica's unreconciled requests
- ``modelgate_governance_redis_failures_total{operation,policy}`` counter: reserve, reconcile or
  peek (the counts an answer's headers show) calls that Redis did not answer, and the policy
  applied (fail-open, fail-closed)

Updated only for keys that have limits, once or twice per request; subjects come from the config
(bounded) and vanish from the series when they vanish from it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge

_LIMITS = ("requests", "tokens", "concurrency", "budget")


class GovernanceMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        subject = ("subject_kind", "subject")
        self.spend = Gauge(
            "modelgate_governance_spend_usd",
            "Spend in the current budget window (fleet-wide).",
            subject,
            registry=registry,
        )
        self.reserved = Gauge(
            "modelgate_governance_reserved_usd", "Budget reserved by requests in flight.", subject, registry=registry
        )
        self.budget = Gauge(
            "modelgate_governance_budget_usd", "Configured budget per window.", subject, registry=registry
        )
        self.limit_hits = Counter(
            "modelgate_governance_limit_hits", "Requests refused by a limit.", (*subject, "limit"), registry=registry
        )
        self.in_flight = Gauge(
            "modelgate_governance_reservations_in_flight",
            "Requests of limited keys admitted and not yet reconciled (this replica).",
            registry=registry,
        )
        self.redis_failures = Counter(
            "modelgate_governance_redis_failures",
            "Ledger calls Redis did not answer, by the policy applied.",
            ("operation", "policy"),
            registry=registry,
        )
        self._subjects: set[tuple[str, str]] = set()

    def configure(self, subjects: Iterable[tuple[str, str, float]], policy: str) -> None:
        """Subjects (kind, name, budget USD or 0) of the new config and its Redis failure policy;
        series exist from the start (at 0), those of vanished subjects are dropped."""
        for operation in ("reserve", "reconcile"):
            self.redis_failures.labels(operation, policy)
        current = set()
        for kind, name, budget in subjects:
            current.add((kind, name))
            if budget:
                self.budget.labels(kind, name).set(budget)
            for limit in _LIMITS:
                self.limit_hits.labels(kind, name, limit)
        for kind, name in self._subjects - current:
            for gauge in (self.spend, self.reserved, self.budget):
                _remove(gauge.remove, kind, name)
            for limit in _LIMITS:
                _remove(self.limit_hits.remove, kind, name, limit)
        self._subjects = current


def _remove(remove: Callable[..., None], *labels: str) -> None:
    try:
        remove(*labels)
    except KeyError:  # never set
        pass
