"""The gateway's metrics, cost and request-log observer.

The hot path (handlers) calls :class:`GatewayObserver` through the :class:`recording.Observer`
protocol: ``request_started`` when a record is created and ``request_finished`` exactly once
when the client side is done (abandoned streams included). The reloader calls
``config_loaded`` / ``config_failed``. Per-request work is dict lookups on cached label
children and a few float operations; bodies are parsed only when usage must be estimated or
content logging is on. Neighbours: :mod:`.metrics`, :mod:`.labels`, :mod:`.pricing`,
:mod:`.estimating`, :mod:`.requestlog`; :mod:`.exposition` serves the registry on ``/metrics``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import IO

from prometheus_client import CollectorRegistry

from ..config import GatewayConfig
from . import estimating
from .accounting import BILLED_ROUTES, UsageSource, billed_usage, billing, charge
from .clienttext import safe_optional, safe_text
from .labels import DEFAULT_TIER, NONE_LABEL, OTHER_LABEL, ConfigView, EndUserLabels, known_label
from .metrics import TOKEN_TYPES, Metrics
from .pricing import UNKNOWN_PRICES
from .recording import AttemptOutcome, BilledEvent, RequestRecord
from .requestlog import RequestLogWriter, log_line
from .tracing import RequestTracer, tracer_for

logger = logging.getLogger(__name__)

ERROR_TYPE_LABEL_LIMIT = 32  # error types come from code paths, but bound them anyway
_STATUS_CLASS = {status: f"{status // 100}xx" for status in range(100, 600)}
"""Status -> its class label ("0xx" for anything outside 100-599), one lookup per request."""
_OUTCOME_LABELS = {outcome: outcome.value for outcome in AttemptOutcome}
"""``outcome.value`` is a Python-level property of enum members: a dict lookup is a fraction of it."""
_NOBODY = (NONE_LABEL, NONE_LABEL, NONE_LABEL)
"""key, tenant and end user of the token series created at 0 on a config load."""


class GatewayObserver:
    """Implements :class:`recording.Observer`; never raises into the hot path.

    ``log_stream`` replaces stdout as the request log sink when ``requestLog.path`` is unset.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        log_stream: IO[bytes] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.metrics = Metrics(registry)
        self._clock = clock
        self._wall_clock = wall_clock
        self._log_stream = log_stream
        self._view = ConfigView()
        self._end_users = EndUserLabels(100, self.metrics.end_user_labels, self.metrics.end_user_overflow)
        self._in_flight: dict[int, RequestRecord] = {}
        self._pending: list[RequestRecord] = []
        """Records waiting for the tokenizer to finish loading."""
        self._loading: asyncio.Future[object] | None = None
        self.metrics.in_flight.set_function(lambda: len(self._in_flight))  # read at scrape time
        self._error_types: dict[str, str] = {}
        self._log: RequestLogWriter | None = RequestLogWriter(
            None, dropped=self.metrics.request_log_dropped, stream=log_stream
        )
        self._include_content = False
        self._tracer: RequestTracer | None = None
        """Set while spec.observability.tracing is enabled (see observability/tracing.py)."""
        self.last_reload_error: str | None = None

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Load the tokenizer now (tests and benchmarks that want estimates without a wait).

        The gateway does not call this: the tokenizer costs ~45 MiB and most upstreams report
        usage, so it is loaded in a thread the first time an estimate is needed.
        """
        await asyncio.to_thread(estimating.encoding)

    async def close(self) -> None:
        """Flush the request log (call on shutdown, after in-flight requests finished)."""
        if self._loading is not None:  # records waiting for the tokenizer are accounted first
            await asyncio.wait([self._loading])
            await asyncio.sleep(0)  # let the done-callback run
        await asyncio.to_thread(self.close_log)
        tracer, self._tracer = self._tracer, None
        if tracer is not None:
            await asyncio.to_thread(tracer.shutdown)

    def close_log(self) -> None:
        """Blocking form of :meth:`close`; later lines are dropped and counted."""
        if self._log is not None:
            self._log.close()

    # --- recording.Observer -------------------------------------------------------------

    def request_started(self, record: RequestRecord) -> None:
        self._in_flight[id(record)] = record

    def request_finished(self, record: RequestRecord) -> None:
        # Holding the record in _in_flight keeps its id unique until it is popped here, so a
        # second call for the same record (or one never started) is detected, not double-counted.
        if self._in_flight.pop(id(record), None) is None:
            self.metrics.observer_errors.inc()
            logger.error("request_finished without request_started: %s", record.request_id)
            return
        # Reported usage (the common case) is tested first: is_loaded() is an lru cache_info() call.
        if record.usage is None and not estimating.is_loaded() and self._needs_estimate(record) and self._defer(record):
            return
        try:  # _account_safely written out: this runs for every request
            self._account(record)
        except Exception:
            self.metrics.observer_errors.inc()
            logger.exception("observer failed on request %s", record.request_id)

    def _account_safely(self, record: RequestRecord) -> None:
        try:
            self._account(record)
        except Exception:
            self.metrics.observer_errors.inc()
            logger.exception("observer failed on request %s", record.request_id)

    def _defer(self, record: RequestRecord) -> bool:
        """Account ``record`` once the tokenizer is loaded (in a thread, never on the loop)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False  # no loop (synchronous use): load inline
        self._pending.append(record)
        if self._loading is None:
            self._loading = loop.run_in_executor(None, estimating.encoding)
            self._loading.add_done_callback(self._tokenizer_loaded)
        return True

    def _tokenizer_loaded(self, future: asyncio.Future[object]) -> None:
        if future.exception() is not None:  # accounting below then loads inline, and logs if it fails
            logger.error("loading the tokenizer failed: %s", future.exception())
        self._loading = None
        pending, self._pending = self._pending, []
        for record in pending:
            self._account_safely(record)

    def _needs_estimate(self, record: RequestRecord) -> bool:
        if record.usage is not None or record.route not in BILLED_ROUTES:
            return False
        return billed_usage(record, estimate=False)[1]

    def deployment_health(self, deployment: str, cooling_down: bool) -> None:
        if deployment in self._view.deployments:
            self.metrics.cooling_down.set((deployment,), 1.0 if cooling_down else 0.0)

    # --- config -------------------------------------------------------------------------

    def config_loaded(self, config: GatewayConfig, checksum: str) -> None:
        """Swap prices and known names, drop vanished series, pre-create the known ones."""
        view = ConfigView.of(config)
        self._view = view
        m = self.metrics
        for family in m.families():
            family.prune(view.alive)
        for model in config.spec.models:
            m.retries.ensure((model.name,))
            m.affinity.ensure((model.name, "hit"))
            m.affinity.ensure((model.name, "moved"))
            for fallback in model.fallbacks:
                m.fallbacks.ensure((model.name, fallback))
            for target in model.targets:
                m.attempts.ensure((model.name, target.deployment, AttemptOutcome.SUCCESS.value))
                for token_type in TOKEN_TYPES:  # who: _none until a request says (keys x end users is open)
                    m.tokens.ensure(
                        (model.name, target.deployment, *_NOBODY, token_type, "false", "create", DEFAULT_TIER)
                    )
        for deployment in view.deployments:
            m.cooldowns.ensure((deployment,))
            m.stripped_items.ensure((deployment,))
            m.deferrals.ensure((deployment, "false"))
            m.deferrals.ensure((deployment, "true"))
            m.cooling_down.ensure((deployment,))  # new: 0; kept: keeps its state
        observability = config.spec.observability
        self._end_users.limit = observability.end_user_label_limit
        self._configure_log(observability.request_log.enabled, observability.request_log.path)
        self._include_content = observability.request_log.include_content
        self._tracer, retired = tracer_for(self._tracer, config)
        if retired is not None:  # flushing blocks on the network: never on the event loop
            threading.Thread(target=retired.shutdown, name="modelgate-tracing-shutdown", daemon=True).start()
        generation = config.metadata.generation
        m.config_info.info(
            {
                "api_version": config.api_version,
                "checksum": checksum,
                "generation": "" if generation is None else str(generation),
            }
        )
        m.config_reloads.labels("success").inc()
        m.config_last_reload_successful.set(1)
        m.config_last_success_timestamp.set(self._wall_clock())
        self.last_reload_error = None

    def config_failed(self, reason: str) -> None:
        """The reloader rejected a document; it logs ``reason``, the metrics record the failure."""
        self.metrics.config_reloads.labels("failure").inc()
        self.metrics.config_last_reload_successful.set(0)
        self.last_reload_error = reason

    def _configure_log(self, enabled: bool, path: str | None) -> None:
        current = self._log
        if current is not None and enabled and current.path == path:
            return
        if current is not None:
            current.close(timeout=0)  # the thread flushes and exits on its own
        dropped = self.metrics.request_log_dropped
        self._log = RequestLogWriter(path, dropped=dropped, stream=self._log_stream) if enabled else None

    # --- accounting ---------------------------------------------------------------------

    def _account(self, record: RequestRecord) -> None:
        # Runs for every request: the usual case of known_label and _outcome is written out (a call
        # fewer each), the rest goes through them.
        end_user = record.end_user
        if end_user is not None:  # the one client-chosen string that becomes a label and a log field
            record.end_user = end_user = safe_text(end_user)
        m = self.metrics
        view = self._view
        finished = record.finished_at
        if finished is None:
            finished = self._clock()
        started = record.started_at
        model = record.model or record.requested_model
        model = NONE_LABEL if model is None else model if model in view.models else OTHER_LABEL
        deployment = record.deployment
        deployment = NONE_LABEL if deployment is None else deployment if deployment in view.deployments else OTHER_LABEL
        key = record.key_name
        key = NONE_LABEL if key is None else key if key in view.keys else OTHER_LABEL
        streamed = record.stream
        stream = "true" if streamed else "false"
        if record.error_type is None and not record.client_disconnected:
            outcome = _STATUS_CLASS.get(record.status, "0xx")
        else:
            outcome = self._outcome(record)
        counts = m.requests.values  # CounterFamily.inc written out (here and below): a call fewer
        series = (model, deployment, key, stream, outcome)
        counts[series] = counts.get(series, 0.0) + 1.0
        if record.websocket:
            m.websocket_turns.inc((model, deployment, key, outcome))
        m.request_duration.observe((model, deployment, stream), finished - started)
        first = record.first_token_at
        if first is not None and streamed:
            m.time_to_first_token.observe((model, deployment), first - started)
        if record.attempts:
            self._account_attempts(record, model)

        usage, estimated, operation = billing(record)
        cost: float | None = None
        priced = False
        if usage is not None:
            cost, prices = charge(
                m,
                view,
                self._end_users,
                (model, deployment, key),
                end_user=end_user,
                operation=operation,
                usage=usage,
                estimated=estimated,
            )
            priced = prices.known
            if first is not None and streamed and usage.output_tokens > 1:
                per_token = (finished - first) / (usage.output_tokens - 1)
                m.time_per_output_token.observe((model, deployment), per_token)

        log = self._log
        if log is not None:
            source = None if usage is None else UsageSource.ESTIMATED if estimated else UsageSource.REPORTED
            content = self._content(record) if self._include_content else None
            log.write(
                log_line(record, usage, source=source, cost=cost, priced=priced, finished=finished, content=content)
            )
        tracer = self._tracer
        if tracer is not None:
            tracer.trace(record, usage, cost, finished)

    def usage_recorded(self, event: BilledEvent) -> None:
        """Account a billed event that ended outside a client request (a background response's end).

        Called once per event by :mod:`..state.background`, which makes sure of the "once".
        """
        try:
            self._account_event(event)
        except Exception:
            self.metrics.observer_errors.inc()
            logger.exception("observer failed on billed event %s", event.response_id)

    def _account_event(self, event: BilledEvent) -> None:
        event.end_user = safe_optional(event.end_user)
        view = self._view
        model = known_label(event.model, view.models)
        deployment = known_label(event.deployment, view.deployments)
        key = known_label(event.key_name, view.keys)
        self.metrics.background.inc((model, deployment, event.status, event.recorded_by))
        cost: float | None = None
        prices = UNKNOWN_PRICES
        if event.usage is not None:
            cost, prices = charge(
                self.metrics,
                view,
                self._end_users,
                (model, deployment, key),
                end_user=event.end_user,
                operation=event.operation,
                usage=event.usage,
                estimated=False,
            )
        log = self._log
        if log is not None:
            now, wall = self._clock(), self._wall_clock()
            record = event.as_record(now, wall)
            source = UsageSource.FOLLOWED_UP if event.usage is not None else UsageSource.UNKNOWN
            log.write(log_line(record, event.usage, source=source, cost=cost, priced=prices.known, finished=now))

    def _account_attempts(self, record: RequestRecord, model: str) -> None:
        view = self._view
        models, deployments = view.models, view.deployments
        counts = self.metrics.attempts.values
        attempts = record.attempts
        for attempt in attempts:  # known_label, ``outcome.value`` (a Python property), inc written out
            attempt_model, attempt_deployment = attempt.model, attempt.deployment
            series = (
                attempt_model if attempt_model in models else OTHER_LABEL,
                attempt_deployment if attempt_deployment in deployments else OTHER_LABEL,
                _OUTCOME_LABELS[attempt.outcome],
            )
            counts[series] = counts.get(series, 0.0) + 1.0
        if len(attempts) > 1 or record.fallbacks or record.cooldowns or record.deferrals or record.stripped_items:
            self._account_rerouting(record, model)
        if record.affinity is not None:
            self.metrics.affinity.inc((model, record.affinity))

    def _account_rerouting(self, record: RequestRecord, model: str) -> None:
        """Retries, fallbacks, cooldowns, Retry-After deferrals, stripped items: none in the usual request."""
        m = self.metrics
        view = self._view
        sent = sum(1 for attempt in record.attempts if attempt.outcome is not AttemptOutcome.SKIPPED)
        if sent > 1:
            requested = record.requested_model
            retried = known_label(requested, view.models) if requested else model
            m.retries.inc((retried,), sent - 1)
        for from_model, to_model in record.fallbacks:
            m.fallbacks.inc((known_label(from_model, view.models), known_label(to_model, view.models)))
        for deployment in record.cooldowns:
            m.cooldowns.inc((known_label(deployment, view.deployments),))
        for deployment, capped in record.deferrals:
            m.deferrals.inc((known_label(deployment, view.deployments), "true" if capped else "false"))
        for deployment, count in record.stripped_items:
            m.stripped_items.inc((known_label(deployment, view.deployments),), count)

    def _outcome(self, record: RequestRecord) -> str:
        if record.client_disconnected:
            return "client_disconnected"
        error_type = record.error_type
        status_class = _STATUS_CLASS.get(record.status, "0xx")
        if error_type is None or record.status < 400:
            return status_class
        found = self._error_types.get(error_type)
        if found is None:
            if len(self._error_types) >= ERROR_TYPE_LABEL_LIMIT:
                return status_class
            found = self._error_types[error_type] = error_type
        return found

    def _content(self, record: RequestRecord) -> tuple[str, str]:
        return (
            estimating.request_input_text(record.request_body),
            estimating.response_output_text(record.response_body, record.delta_payloads, record.stream_blocks),
        )
