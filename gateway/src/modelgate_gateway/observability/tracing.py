"""OTLP traces of requests, built after the fact from the finished :class:`RequestRecord`.

Off by default. When ``spec.observability.tracing.enabled``, the observer hands each finished
record here: one SERVER span for the request and one CLIENT span per upstream attempt, with the
times the hot path already took (monotonic offsets from the record's wall-clock arrival), so
nothing on the hot path changes whether tracing is on or off. Attributes follow the OpenTelemetry
GenAI semantic conventions (``gen_ai.*``) plus ``modelgate.*`` for what they do not name; prompt
and completion text is never put on a span. The OpenTelemetry SDK exports in batches from its own
thread (``BatchSpanProcessor`` + OTLP/HTTP protobuf); it is imported only when tracing is enabled.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..config import GatewayConfig, Provider, Tracing
from .recording import AttemptOutcome, RequestRecord, Usage

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer

log = logging.getLogger("modelgate.gateway.tracing")

# gen_ai.provider.name values of the semantic conventions, per deployment provider.
_PROVIDER_NAMES = {Provider.OPENAI: "openai", Provider.AZURE_OPENAI: "azure.ai.openai"}
_ROUTES = {
    "create": "/v1/responses",
    "compact": "/v1/responses/compact",
    "retrieve": "/v1/responses/{id}",
    "delete": "/v1/responses/{id}",
    "cancel": "/v1/responses/{id}/cancel",
    "input_items": "/v1/responses/{id}/input_items",
    "models": "/v1/models",
}
_BILLED = frozenset({"create", "background", "compact"})


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


class RequestTracer:
    """Turns finished records into spans; one per config (replaced when the tracing settings change)."""

    def __init__(self, settings: Tracing, config: GatewayConfig) -> None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import TraceIdRatioBased

        self.settings = settings
        self._provider: TracerProvider = TracerProvider(
            resource=Resource.create({"service.name": settings.service_name}),
            sampler=TraceIdRatioBased(settings.sample_ratio),
        )
        exporter = OTLPSpanExporter(endpoint=settings.endpoint, timeout=settings.timeout_seconds)
        self._provider.add_span_processor(
            BatchSpanProcessor(
                exporter,
                schedule_delay_millis=settings.batch_delay_seconds * 1000,
                export_timeout_millis=settings.timeout_seconds * 1000,
            )
        )
        self._tracer: Tracer = self._provider.get_tracer("modelgate_gateway")
        self._servers: dict[str, dict[str, Any]] = {}
        self.configure(config)

    def configure(self, config: GatewayConfig) -> None:
        """Per deployment: the provider name and server address its attempt spans carry."""
        servers = {}
        for dep in config.spec.deployments:
            attributes: dict[str, Any] = {"gen_ai.provider.name": _PROVIDER_NAMES.get(dep.provider, dep.provider.value)}
            parts = urlsplit(dep.base_url)
            if parts.hostname:
                attributes["server.address"] = parts.hostname
                attributes["server.port"] = parts.port or (443 if parts.scheme == "https" else 80)
            servers[dep.name] = attributes
        self._servers = servers

    def shutdown(self) -> None:
        """Flush and stop the exporter thread. Blocks: call it from a worker thread."""
        self._provider.shutdown()

    def trace(self, record: RequestRecord, usage: Usage | None, cost: float | None, finished: float) -> None:
        """Export the spans of one finished request (a no-op for a request the sampler drops)."""
        from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

        start = record.wall_time
        operation = record.operation
        model = record.model or record.requested_model
        billed = operation in _BILLED and record.route in ("create", "compact")
        name = f"chat {model}" if billed and model else f"{record.method} {_ROUTES.get(record.route, record.route)}"
        span = self._tracer.start_span(
            name,
            kind=SpanKind.SERVER,
            start_time=_ns(start),
            attributes=self._request_attributes(record, usage, cost, billed),
        )
        if record.status >= 500 or (record.error_type is not None and record.status >= 400):
            span.set_status(Status(StatusCode.ERROR, record.error_type or str(record.status)))
        context = set_span_in_context(span)
        for attempt in record.attempts:
            if attempt.outcome is AttemptOutcome.SKIPPED:
                continue
            began = start + attempt.started_at - record.started_at
            child = self._tracer.start_span(
                f"chat {attempt.model}" if billed else name,
                context=context,
                kind=SpanKind.CLIENT,
                start_time=_ns(began),
                attributes=self._attempt_attributes(attempt.deployment, attempt.model, attempt.outcome, attempt.status),
            )
            if attempt.outcome not in (AttemptOutcome.SUCCESS, AttemptOutcome.CLIENT_ERROR):
                child.set_status(Status(StatusCode.ERROR, attempt.outcome.value))
            child.end(end_time=_ns(began + attempt.duration_seconds))
        span.end(end_time=_ns(start + finished - record.started_at))

    def _request_attributes(
        self, record: RequestRecord, usage: Usage | None, cost: float | None, billed: bool
    ) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            "http.request.method": record.method,
            "http.route": _ROUTES.get(record.route, record.route),
            "http.response.status_code": record.status,
            "modelgate.request_id": record.request_id,
            "modelgate.operation": record.operation,
            "modelgate.stream": record.stream,
            "modelgate.attempts": len(record.attempts),
        }
        if billed:
            attributes["gen_ai.operation.name"] = "chat"
        optional = {
            "gen_ai.request.model": record.requested_model,
            "gen_ai.response.id": record.response_id,
            "modelgate.model": record.model,
            "modelgate.deployment": record.deployment,
            "modelgate.key": record.key_name,
            "error.type": record.error_type if record.status >= 400 else None,
        }
        attributes.update({k: v for k, v in optional.items() if v is not None})
        if record.deployment in self._servers:
            attributes.update(self._servers[record.deployment])
        final = record.final
        if final is not None and isinstance(final.get("model"), str):
            attributes["gen_ai.response.model"] = final["model"]
        if usage is not None:
            attributes["gen_ai.usage.input_tokens"] = usage.input_tokens
            attributes["gen_ai.usage.output_tokens"] = usage.output_tokens
            attributes["gen_ai.usage.cache_read.input_tokens"] = usage.cached_input_tokens
            attributes["gen_ai.usage.cache_creation.input_tokens"] = usage.cache_write_tokens
            attributes["gen_ai.usage.reasoning.output_tokens"] = usage.reasoning_tokens
            if usage.service_tier is not None:
                attributes["openai.response.service_tier"] = usage.service_tier
            for tool, calls in usage.tool_calls:
                attributes[f"modelgate.hosted_tool_calls.{tool}"] = calls
        if cost is not None:
            attributes["modelgate.cost_usd"] = cost
        return attributes

    def _attempt_attributes(
        self, deployment: str, model: str, outcome: AttemptOutcome, status: int | None
    ) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            "modelgate.deployment": deployment,
            "modelgate.attempt.outcome": outcome.value,
            "gen_ai.request.model": model,
            **self._servers.get(deployment, {}),
        }
        if status is not None:
            attributes["http.response.status_code"] = status
        if outcome not in (AttemptOutcome.SUCCESS, AttemptOutcome.CLIENT_ERROR):
            attributes["error.type"] = outcome.value
        return attributes


def tracer_for(
    current: RequestTracer | None, config: GatewayConfig
) -> tuple[RequestTracer | None, RequestTracer | None]:
    """(the tracer for ``config``, an old one to shut down): kept while its settings are unchanged."""
    settings = config.spec.observability.tracing
    if current is not None and current.settings == settings:
        current.configure(config)
        return current, None
    if not settings.enabled:
        return None, current
    try:
        return RequestTracer(settings, config), current
    except ImportError as exc:
        log.error("tracing is enabled but the OpenTelemetry SDK is not installed (%s); not tracing", exc)
        return None, current
