"""The governance part of a config document, compiled once per reload for the hot path.

Which keys have limits (their own, their tenant's, or both), what a model's traffic may cost at
most (for reservations) and what it costs where it was served (for reconciliation). Prices come
from :mod:`modelgate_gateway.pricing`, the same figures as ``modelgate_cost_usd_total``. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..config import BudgetWindow, GatewayConfig, RedisFailurePolicy, UsageLimits
from ..observability.pricing import Prices, effective_prices

NANO_USD = 1_000_000_000
"""Redis counts spend in integer nano-dollars: exact sums, no float drift across millions of requests."""


@dataclass(frozen=True, slots=True)
class Limits:
    """One subject's limits; 0 means "no such limit"."""

    requests_per_minute: int = 0
    tokens_per_minute: int = 0
    concurrency: int = 0
    budget_nano: int = 0
    window: BudgetWindow = BudgetWindow.TOTAL

    @classmethod
    def of(cls, limits: UsageLimits) -> Limits:
        budget = limits.budget
        return cls(
            limits.requests_per_minute or 0,
            limits.tokens_per_minute or 0,
            limits.max_concurrent_requests or 0,
            round(budget.usd * NANO_USD) if budget is not None else 0,
            budget.window if budget is not None else BudgetWindow.TOTAL,
        )

    @property
    def tracked(self) -> bool:
        """Whether requests are held in flight in Redis (for concurrency or budget reservations)."""
        return bool(self.concurrency or self.budget_nano)

    @property
    def any(self) -> bool:
        return bool(self.requests_per_minute or self.tokens_per_minute or self.tracked)


@dataclass(frozen=True, slots=True)
class Subject:
    kind: str
    """``key`` or ``tenant``."""
    name: str
    limits: Limits

    @property
    def redis_id(self) -> str:
        return f"{self.kind}:{self.name}"


@dataclass(frozen=True, slots=True)
class KeyPolicy:
    subjects: tuple[Subject, ...]
    """The key's own limits first, then its tenant's; only subjects that have limits."""


@dataclass(frozen=True, slots=True)
class GovernancePolicy:
    keys: Mapping[str, KeyPolicy] = field(default_factory=dict)
    """Only keys something limits: any other key costs one failed dict lookup per request."""
    rated: Mapping[str, KeyPolicy] = field(default_factory=dict)
    """Keys whose requests or tokens per minute are limited: every answer to them carries the
    x-ratelimit headers. Empty when nothing is rate-limited (the usual case costs one truth test)."""
    tenants: Mapping[str, Subject] = field(default_factory=dict)
    model_prices: Mapping[str, tuple[Prices, ...]] = field(default_factory=dict)
    """Every price a model's request may be served at (its targets, its fallbacks' targets)."""
    served_prices: Mapping[tuple[str, str], Prices] = field(default_factory=dict)
    """(model, deployment) -> the prices the metrics charge for it."""
    on_failure: RedisFailurePolicy = RedisFailurePolicy.FAIL_OPEN
    timeout_seconds: float = 0.5
    retry_after_seconds: float = 1.0
    default_max_output_tokens: int = 4096
    input_bytes_per_token: float = 4.0
    lease_seconds: Mapping[str, float] = field(default_factory=dict)
    """Per model: how long a request can run at most (its retry deadline); reservations outlive it."""


EMPTY = GovernancePolicy()


def compile_policy(config: GatewayConfig) -> GovernancePolicy:
    spec = config.spec
    gov = spec.governance
    tenants = {t.name: Subject("tenant", t.name, Limits.of(t.limits)) for t in gov.tenants}
    keys: dict[str, KeyPolicy] = {}
    for key in spec.auth.keys:
        subjects = []
        if key.limits is not None and Limits.of(key.limits).any:
            subjects.append(Subject("key", key.name, Limits.of(key.limits)))
        tenant = tenants.get(key.tenant) if key.tenant is not None else None
        if tenant is not None and tenant.limits.any:
            subjects.append(tenant)
        if subjects:
            keys[key.name] = KeyPolicy(tuple(subjects))
    models = {m.name: m for m in spec.models}
    deployments = {d.name: d for d in spec.deployments}
    served: dict[tuple[str, str], Prices] = {}
    for model in spec.models:
        for target in model.targets:
            dep = deployments.get(target.deployment)
            served[(model.name, target.deployment)] = effective_prices(
                model.pricing, dep.pricing if dep is not None else None
            )
    candidates: dict[str, tuple[Prices, ...]] = {}
    for model in spec.models:
        chain = [model.name, *model.fallbacks]
        candidates[model.name] = tuple(prices for (name, _), prices in served.items() if name in chain)
    rated = {
        name: policy
        for name, policy in keys.items()
        if any(s.limits.requests_per_minute or s.limits.tokens_per_minute for s in policy.subjects)
    }
    return GovernancePolicy(
        keys=keys,
        rated=rated,
        tenants=tenants,
        model_prices=candidates,
        served_prices=served,
        on_failure=gov.on_redis_failure,
        timeout_seconds=gov.redis_timeout_seconds,
        retry_after_seconds=gov.retry_redis_after_seconds,
        default_max_output_tokens=gov.default_max_output_tokens,
        input_bytes_per_token=gov.input_bytes_per_token,
        lease_seconds={m.name: m.retry.total_timeout_seconds for m in models.values()},
    )
