"""Bounded label values for the observer's metric series, and the config they are checked against.

Every ``model``/``deployment``/``key``/``tenant`` label is a name the active config knows, ``_other`` for
one it does not, or ``_none`` when the request never got that far; :class:`ConfigView` holds
those names (and the prices keyed by them), swapped atomically on reload. ``end_user`` values
are client-supplied: capped by :class:`EndUserLabels` and made encodable by
:func:`.clienttext.safe_text` (one undecodable byte would otherwise fail every scrape). Used per
request by :mod:`.observer`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import Gauge

from ..config import GatewayConfig
from .clienttext import safe_text
from .metrics import CounterFamily
from .pricing import UNKNOWN_PRICES, Prices, effective_prices

NONE_LABEL = "_none"  # the request never got that far (no key, no model, no deployment)
OTHER_LABEL = "_other"  # a name the active config does not know
END_USER_OVERFLOW = "other"
END_USER_LABEL_MAX_CHARS = 128  # label values are stored per series; the log keeps the full value
DEFAULT_TIER = "default"  # the tier label of a response that reports none (it pays the base prices)
# Values the tier and tool labels take without any config naming them; others need a price list entry.
KNOWN_TIERS = frozenset({"auto", "default", "flex", "priority", "scale"})
KNOWN_TOOLS = frozenset({"web_search", "file_search", "code_interpreter", "image_generation", "mcp"})


def known_label(value: str | None, known: frozenset[str]) -> str:
    if value is None:
        return NONE_LABEL
    return value if value in known else OTHER_LABEL


@dataclass(frozen=True, slots=True)
class ConfigView:
    """What the observer needs from one config: known names and prices, swapped atomically."""

    models: frozenset[str] = frozenset()
    deployments: frozenset[str] = frozenset()
    keys: frozenset[str] = frozenset()
    tenants: frozenset[str] = frozenset()
    key_tenants: dict[str, str] = field(default_factory=dict)
    """key -> its tenant (keys without one are absent: their tenant label is ``_none``)."""
    prices: dict[tuple[str, str], Prices] = field(default_factory=dict)
    model_prices: dict[str, Prices] = field(default_factory=dict)
    tiers: frozenset[str] = KNOWN_TIERS
    tools: frozenset[str] = KNOWN_TOOLS

    def prices_for(self, model: str, deployment: str) -> Prices:
        found = self.prices.get((model, deployment))
        if found is None:
            found = self.model_prices.get(model, UNKNOWN_PRICES)
        return found

    @classmethod
    def of(cls, config: GatewayConfig) -> ConfigView:
        spec = config.spec
        deployment_pricing = {d.name: d.pricing for d in spec.deployments}
        pricings = [m.pricing for m in spec.models] + [p for p in deployment_pricing.values() if p is not None]
        return cls(
            models=frozenset(m.name for m in spec.models),
            deployments=frozenset(deployment_pricing),
            keys=frozenset(k.name for k in spec.auth.keys),
            tenants=frozenset(k.tenant for k in spec.auth.keys if k.tenant)
            | frozenset(t.name for t in spec.governance.tenants),
            key_tenants={k.name: k.tenant for k in spec.auth.keys if k.tenant},
            prices={
                (m.name, t.deployment): effective_prices(m.pricing, deployment_pricing.get(t.deployment))
                for m in spec.models
                for t in m.targets
            },
            model_prices={m.name: Prices.from_pricing(m.pricing) for m in spec.models},
            tiers=KNOWN_TIERS.union(*(p.tiers for p in pricings)),
            tools=KNOWN_TOOLS.union(*(p.hosted_tool_usd_per_call for p in pricings)),
        )

    def alive(self, kind: str, value: str) -> bool:
        if value in (NONE_LABEL, OTHER_LABEL):
            return True
        known = {"model": self.models, "deployment": self.deployments, "key": self.keys, "tenant": self.tenants}[kind]
        return value in known


class EndUserLabels:
    """Caps distinct ``end_user`` label values: the first ``limit`` users keep their own label,
    later ones share ``other``. Bounded memory: at most ``limit`` entries are remembered."""

    def __init__(self, limit: int, in_use: Gauge, overflow: CounterFamily) -> None:
        self.limit = limit
        self._labels: dict[str, str] = {}
        self._in_use = in_use
        self._overflow = overflow

    def label(self, end_user: str | None) -> str:
        if not end_user:
            return NONE_LABEL
        found = self._labels.get(end_user)
        if found is not None:
            return found
        if len(self._labels) < self.limit:
            found = self._labels[end_user] = safe_text(end_user[:END_USER_LABEL_MAX_CHARS])
            self._in_use.set(len(self._labels))
            return found
        self._overflow.inc(())
        return END_USER_OVERFLOW
