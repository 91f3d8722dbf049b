"""Every Prometheus metric of the gateway, in one class bound to one registry.

Series (labels in braces; ``model``/``deployment``/``key``/``tenant`` values come from config,
``_other`` for a name the current config does not know, ``_none`` when the request never got that
far or the key has no tenant; ``end_user`` is capped, see :class:`.labels.EndUserLabels`):

- ``modelgate_requests_total{model,deployment,key,stream,outcome}`` counter
- ``modelgate_request_duration_seconds{model,deployment,stream}`` histogram
- ``modelgate_time_to_first_token_seconds{model,deployment}`` histogram (streams)
- ``modelgate_time_per_output_token_seconds{model,deployment}`` histogram (streams)
- ``modelgate_tokens_total{model,deployment,key,tenant,end_user,type,estimated,operation,tier}`` counter
- ``modelgate_cost_usd_total{model,deployment,key,tenant,end_user,estimated,operation,tier}`` counter
- ``modelgate_hosted_tool_calls_total{model,deployment,key,tenant,end_user,tool,operation,priced}`` counter
- ``modelgate_background_responses_total{model,deployment,status,recorded_by}`` counter;
  ``modelgate_background_responses_pending`` gauge
- ``modelgate_unpriced_requests_total{model,deployment}`` counter
- ``modelgate_attempts_total{model,deployment,outcome}`` counter
- ``modelgate_retries_total{model}`` counter
- ``modelgate_fallbacks_total{from_model,to_model}`` counter
- ``modelgate_cooldowns_total{deployment}`` counter
- ``modelgate_deferrals_total{deployment,capped}`` counter
- ``modelgate_deployment_cooling_down{deployment}`` gauge
- ``modelgate_requests_in_flight`` gauge
- ``modelgate_end_user_labels`` gauge; ``modelgate_end_user_overflow_total`` counter
- ``modelgate_config_reloads_total{result}`` counter; ``modelgate_config_last_reload_successful``
  gauge; ``modelgate_config_last_reload_success_timestamp_seconds`` gauge;
  ``modelgate_config_info{api_version,checksum,generation}`` info
- ``modelgate_request_log_dropped_total`` counter; ``modelgate_observer_errors_total`` counter
- ``modelgate_websocket_connections`` gauge; ``modelgate_websocket_turns_total{model,deployment,key,outcome}``
  counter (WebSocket mode; each turn is also a request in the series above)
- ``modelgate_client_connections`` gauge; ``modelgate_client_connections_closed_total{reason}``
  counter (see :mod:`modelgate_gateway.server.clientconn`)

Per-request families are plain dicts of floats exported by one custom collector: a
prometheus_client child costs ~1 µs per ``inc`` and ~2 µs per ``observe`` (locks, checks),
which at a dozen updates per request would be a tenth of the gateway's whole CPU budget. They
are written only from the event loop thread (so need no lock) and read at scrape time.
Rare or cross-thread metrics (config, log drops) stay regular prometheus_client metrics.
"""

from __future__ import annotations

import abc
from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Info
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

# OTel GenAI semconv advisory buckets for request duration, extended to ~11 min because
# reasoning models and long streams legitimately run for minutes.
DURATION_BUCKETS = (
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
    163.84,
    327.68,
    655.36,
)
# Time to first token: tens of ms for small models up to a minute+ for reasoning models.
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0)
# Per-token latency after the first: ~1 ms (fast small models) to seconds (overloaded upstreams).
TPOT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5)

TOKEN_TYPES = ("input", "cached_input", "cache_write", "output", "reasoning")

Labels = tuple[str, ...]


class Family(abc.ABC):
    """Series of one labelled metric keyed by label-value tuples (the cache of "children").

    ``config_labels`` maps a label position to the config kind ("model", "deployment", "key")
    its value names; ``prune`` drops series whose value vanished from the config on reload.
    """

    kind = "untyped"
    __slots__ = ("_config_labels", "documentation", "labelnames", "name", "values")

    def __init__(self, name: str, doc: str, labelnames: Labels, config_labels: dict[int, str]):
        self.name = name
        self.documentation = doc
        self.labelnames = labelnames
        self._config_labels = config_labels
        self.values: dict[Labels, float] = {}

    def prune(self, alive: Callable[[str, str], bool]) -> None:
        """Drop every series with a config-derived value for which ``alive(kind, value)`` fails."""
        for labels in list(self.values):
            if not all(alive(kind, labels[pos]) for pos, kind in self._config_labels.items()):
                del self.values[labels]

    @abc.abstractmethod
    def metric(self) -> Metric:
        """The family's samples as a prometheus_client Metric, built at scrape time."""


class CounterFamily(Family):
    kind = "counter"
    __slots__ = ()

    def inc(self, labels: Labels, amount: float = 1.0) -> None:
        values = self.values
        values[labels] = values.get(labels, 0.0) + amount

    def ensure(self, labels: Labels) -> None:
        """Create the series at 0 so ``rate()`` sees its first increment (pre-labelling)."""
        self.values.setdefault(labels, 0.0)

    def metric(self) -> Metric:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, value in list(self.values.items()):
            family.add_metric(labels, value)
        return family


class GaugeFamily(Family):
    kind = "gauge"
    __slots__ = ()

    def set(self, labels: Labels, value: float) -> None:
        self.values[labels] = value

    def ensure(self, labels: Labels) -> None:
        self.values.setdefault(labels, 0.0)

    def metric(self) -> Metric:
        family = GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, value in list(self.values.items()):
            family.add_metric(labels, value)
        return family


class HistogramFamily(Family):
    """Per series: non-cumulative bucket counts (last one is +Inf) and, at the end, the sum."""

    kind = "histogram"
    __slots__ = ("_bounds", "_les", "buckets")

    def __init__(
        self,
        name: str,
        doc: str,
        labelnames: Labels,
        config_labels: dict[int, str],
        bounds: tuple[float, ...],
    ) -> None:
        super().__init__(name, doc, labelnames, config_labels)
        self._bounds = bounds
        self._les = [_le(b) for b in bounds] + ["+Inf"]
        self.buckets: dict[Labels, list[float]] = {}

    def observe(self, labels: Labels, value: float) -> None:
        counts = self.buckets.get(labels)
        if counts is None:
            counts = self.buckets[labels] = [0.0] * (len(self._bounds) + 2)
            self.values[labels] = 0.0  # keeps prune/series uniform across families
        counts[bisect_left(self._bounds, value)] += 1.0  # first bound >= value: "le" semantics
        counts[-1] += value

    def prune(self, alive: Callable[[str, str], bool]) -> None:
        super().prune(alive)
        for labels in [k for k in self.buckets if k not in self.values]:
            del self.buckets[labels]

    def metric(self) -> Metric:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, counts in list(self.buckets.items()):
            snapshot = list(counts)
            cumulative, total = [], 0.0
            for le, count in zip(self._les, snapshot[:-1], strict=True):
                total += count
                cumulative.append((le, total))
            family.add_metric(labels, cumulative, snapshot[-1])
        return family


def _le(bound: float) -> str:
    """The ``le`` label prometheus_client itself would write for this bound."""
    text: str = floatToGoString(bound)  # type: ignore[no-untyped-call]
    return text


class _FamiliesCollector:
    """Exports the lock-free families; registered once in the registry."""

    def __init__(self, families: list[Family]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        for family in self._families:
            yield family.metric()

    def describe(self) -> Iterator[Metric]:
        for family in self._families:
            yield Metric(family.name, family.documentation, family.kind)


@dataclass(frozen=True, slots=True)
class FamilyInfo:
    """What ``docs/metrics.md`` must list for one metric (checked by a test)."""

    name: str
    type: str
    labels: Labels
    documentation: str


class Metrics:
    """All gateway metrics, registered in ``registry`` (a fresh one per test)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry
        self._families: list[Family] = []
        self._described: list[FamilyInfo] = []
        md, dp, key = "model", "deployment", "key"
        tenant, end_user = "tenant", "end_user"
        # What is billed is by model, deployment, key, its tenant and end user (bounded), on every figure.
        billed = {0: md, 1: dp, 2: key, 3: tenant}
        self.requests = self._counter(
            "modelgate_requests",
            "Requests finished, by outcome (status class or error type).",
            (md, dp, key, "stream", "outcome"),
            {0: md, 1: dp, 2: key},
        )
        self.request_duration = self._histogram(
            "modelgate_request_duration_seconds",
            "Arrival to last byte sent to the client.",
            (md, dp, "stream"),
            DURATION_BUCKETS,
        )
        self.time_to_first_token = self._histogram(
            "modelgate_time_to_first_token_seconds",
            "Streams: arrival to the first output delta sent to the client.",
            (md, dp),
            TTFT_BUCKETS,
        )
        self.time_per_output_token = self._histogram(
            "modelgate_time_per_output_token_seconds",
            "Streams: (last byte - first delta) / (output tokens - 1).",
            (md, dp),
            TPOT_BUCKETS,
        )
        self.tokens = self._counter(
            "modelgate_tokens",
            "Tokens by type; cached_input (cache reads) and cache_write are part of input, reasoning part of "
            "output; tier is the service tier that served them.",
            (md, dp, key, tenant, end_user, "type", "estimated", "operation", "tier"),
            billed,
        )
        self.cost = self._counter(
            "modelgate_cost_usd",
            "Spend in USD from configured prices: tokens at the served tier's prices plus hosted tool calls.",
            (md, dp, key, tenant, end_user, "estimated", "operation", "tier"),
            billed,
        )
        self.tool_calls = self._counter(
            "modelgate_hosted_tool_calls",
            "Hosted tool calls (web_search, file_search, ...) in responses' output; "
            "priced=false when no per-call price is configured (they cost 0).",
            (md, dp, key, tenant, end_user, "tool", "operation", "priced"),
            billed,
        )
        self.background = self._counter(
            "modelgate_background_responses",
            "Background responses accounted, by terminal status (expired: not finished within the follow-up "
            "deadline) and who saw the end first (create, poll, follow_up).",
            (md, dp, "status", "recorded_by"),
            {0: md, 1: dp},
        )
        self.unpriced = self._counter(
            "modelgate_unpriced_requests",
            "Requests with tokens but no configured price (cost 0).",
            (md, dp),
            {0: md, 1: dp},
        )
        self.attempts = self._counter(
            "modelgate_attempts", "Upstream attempts by result.", (md, dp, "outcome"), {0: md, 1: dp}
        )
        self.retries = self._counter(
            "modelgate_retries", "Upstream attempts beyond the first of a request.", (md,), {0: md}
        )
        self.fallbacks = self._counter(
            "modelgate_fallbacks",
            "Fallbacks from one public model to another.",
            ("from_model", "to_model"),
            {0: md, 1: md},
        )
        self.cooldowns = self._counter("modelgate_cooldowns", "Times a deployment entered cooldown.", (dp,), {0: dp})
        self.deferrals = self._counter(
            "modelgate_deferrals",
            "Times an upstream 429's Retry-After took a deployment out of rotation (capped: it asked "
            "for longer than retryAfterCapSeconds).",
            (dp, "capped"),
            {0: dp},
        )
        self.affinity = self._counter(
            "modelgate_affinity_requests",
            "Requests naming a session (prompt_cache_key, affinity header), by outcome: hit (served "
            "by the session's own deployment) or moved (another one; its own could not serve).",
            (md, "outcome"),
            {0: md},
        )
        self.stripped_items = self._counter(
            "modelgate_affinity_stripped_items",
            "Organisation-bound input items (encrypted reasoning, compaction) removed because a session moved to "
            "a deployment of another organisation.",
            (dp,),
            {0: dp},
        )
        self.cooling_down = GaugeFamily(
            "modelgate_deployment_cooling_down",
            "1 while a deployment is out of rotation (cooldown or Retry-After) until it serves again, else 0.",
            (dp,),
            {0: dp},
        )
        self._families.append(self.cooling_down)
        self._note(self.cooling_down.name, "gauge", self.cooling_down.documentation, (dp,))
        self.end_user_overflow = self._counter(
            "modelgate_end_user_overflow",
            'Requests whose end user was folded into end_user="other" by the cap.',
            (),
            {},
        )
        self.end_user_overflow.ensure(())  # unlabelled: exported at 0 from the start
        self.client_connections_closed = self._counter(
            "modelgate_client_connections_closed",
            "Client connections the gateway closed or refused, by reason.",
            ("reason",),
            {},
        )
        self.websocket_turns = self._counter(
            "modelgate_websocket_turns",
            "Turns (response.create frames) served over client WebSockets, by outcome; each is also a request "
            "in modelgate_requests_total and the duration, TTFT and cost series.",
            (md, dp, "key", "outcome"),
            {0: md, 1: dp, 2: "key"},
        )
        registry.register(_FamiliesCollector(self._families))

        self.in_flight = self._gauge("modelgate_requests_in_flight", "Requests started and not yet finished.")
        self.client_connections = self._gauge(
            "modelgate_client_connections", "Open client connections (read at scrape time)."
        )
        self.websocket_connections = self._gauge(
            "modelgate_websocket_connections", "Open client WebSockets (WebSocket mode; read at scrape time)."
        )
        self.background_pending = self._gauge(
            "modelgate_background_responses_pending",
            "Background responses this gateway follows up that have not reached a terminal state yet.",
        )
        self.end_user_labels = self._gauge(
            "modelgate_end_user_labels", "Distinct end_user label values in use (capped)."
        )
        self.config_reloads = self._plain_counter(
            "modelgate_config_reloads", "Config loads by result (success, failure).", ("result",)
        )
        self.config_last_reload_successful = self._gauge(
            "modelgate_config_last_reload_successful", "1 if the last config load succeeded."
        )
        self.config_last_success_timestamp = self._gauge(
            "modelgate_config_last_reload_success_timestamp_seconds", "Unix time of the last successful config load."
        )
        self.config_info = Info("modelgate_config", "The active config document.", registry=registry)
        self._described.append(
            FamilyInfo(
                "modelgate_config_info",
                "info",
                ("api_version", "checksum", "generation"),
                "The active config document.",
            )
        )
        self.request_log_dropped = self._plain_counter(
            "modelgate_request_log_dropped", "Request log lines dropped because the sink could not keep up."
        )
        self.observer_errors = self._plain_counter(
            "modelgate_observer_errors", "Bugs caught in the metrics/log observer."
        )
        for result in ("success", "failure"):
            self.config_reloads.labels(result)

    def _note(self, name: str, kind: str, doc: str, labels: Labels) -> None:
        self._described.append(FamilyInfo(name, kind, labels, doc))

    def _counter(self, name: str, doc: str, labels: Labels, config_labels: dict[int, str]) -> CounterFamily:
        family = CounterFamily(name, doc, labels, config_labels)
        self._families.append(family)
        self._note(name + "_total", "counter", doc, labels)
        return family

    def _histogram(self, name: str, doc: str, labels: Labels, buckets: tuple[float, ...]) -> HistogramFamily:
        family = HistogramFamily(name, doc, labels, {0: "model", 1: "deployment"}, buckets)
        self._families.append(family)
        self._note(name, "histogram", doc, labels)
        return family

    def _plain_counter(self, name: str, doc: str, labels: Labels = ()) -> Counter:
        self._note(name + "_total", "counter", doc, labels)
        return Counter(name, doc, labels, registry=self._registry)

    def _gauge(self, name: str, doc: str) -> Gauge:
        self._note(name, "gauge", doc, ())
        return Gauge(name, doc, registry=self._registry)

    def families(self) -> list[Family]:
        """The per-request families (pruned on reload)."""
        return list(self._families)

    def describe(self) -> list[FamilyInfo]:
        """Exposed name, type, labels and help of every metric (for docs and their test)."""
        return list(self._described)
