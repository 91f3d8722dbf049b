"""What one request did, recorded along the hot path and handed to observers once at the end.

The handler and the upstream executor fill a :class:`RequestRecord`; metrics, cost and the
request log (:mod:`modelgate_gateway.observability.observer`) read it in ``request_finished``. Nothing here
parses or re-encodes bodies: raw bytes are kept so usage can be estimated lazily, only when the
upstream reported none.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Protocol


class AttemptOutcome(enum.StrEnum):
    SUCCESS = "success"
    CONNECT_ERROR = "connect_error"
    TIMEOUT = "timeout"
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    CLIENT_ERROR = "client_error"
    AUTH_ERROR = "auth_error"  # upstream rejected the deployment's credentials (401/403)
    STREAM_ERROR = "stream_error"  # upstream failed after the first byte reached the client
    CANCELLED = "cancelled"  # client went away, or the shutdown cut the request
    SKIPPED = "skipped"  # cooling down or at max concurrency; no request was sent


@dataclass(slots=True)
class Usage:
    """What one response consumed, as billed: tokens, the tier that served it, hosted tool calls.

    ``cached_input_tokens`` (cache reads) and ``cache_write_tokens`` are parts of
    ``input_tokens``; ``reasoning_tokens`` is part of ``output_tokens``.
    """

    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_tokens: int = 0
    service_tier: str | None = None
    """The tier that served the response (its ``service_tier``), not the requested one."""
    tool_calls: tuple[tuple[str, int], ...] = ()
    """(hosted tool, calls) from the response's output items, e.g. ("web_search", 2)."""
    compacted: bool = False
    """The output holds a ``compaction`` item: the server compacted the context (billed in this usage)."""


@dataclass(slots=True)
class AttemptRecord:
    model: str
    """Public model this attempt served (differs from the requested one after a fallback)."""
    deployment: str
    outcome: AttemptOutcome
    status: int | None = None
    started_at: float = 0.0
    """``time.monotonic()`` when the attempt started."""
    duration_seconds: float = 0.0


@dataclass(slots=True, init=False)
class RequestRecord:
    """One per request: the ``__init__`` is written out (not generated) because it runs on every
    request, and the generated one calls ``list()`` through a sentinel test for each list field and
    takes every field as a keyword. The fields' declared defaults below stay the documentation (and
    ``repr``/``eq``); a unit test checks the two agree, so a field added here but not in ``__init__``
    fails it. Other fields are set by whoever learns them, after construction."""

    request_id: str
    started_at: float
    """``time.monotonic()`` at arrival."""
    wall_time: float
    """``time.time()`` at arrival, for logs."""
    method: str = "POST"
    route: str = "create"
    """Endpoint family: create, retrieve, delete, cancel, input_items, models."""
    operation: str = "create"
    """What is billed (the ``operation`` label): create, background, compact, ... A handler of a
    billed endpoint sets it; only records whose route is a billed one are charged (see
    :mod:`.observability.accounting`)."""
    key_name: str | None = None
    end_user: str | None = None
    requested_model: str | None = None
    """The client's model string when it names a configured model, else ``_other``."""
    model: str | None = None
    """Public model that finally served (or failed) the request."""
    deployment: str | None = None
    stream: bool = False
    status: int = 0
    error_type: str | None = None
    error_code: str | None = None
    attempts: list[AttemptRecord] = field(default_factory=list)
    fallbacks: list[tuple[str, str]] = field(default_factory=list)
    """(from_model, to_model) for every fallback taken."""
    cooldowns: list[str] = field(default_factory=list)
    """Deployments that entered cooldown because of this request."""
    deferrals: tuple[tuple[str, bool], ...] = ()
    """(deployment, capped) for every 429 whose Retry-After took a deployment out of rotation;
    capped when the upstream asked for longer than the cap. A tuple: rare, so no list per request."""
    affinity: str | None = None
    """For requests that name a session: ``hit`` (served by the session's own deployment) or
    ``moved`` (another one, its own could not serve); None otherwise."""
    stripped_items: tuple[tuple[str, int], ...] = ()
    """(deployment, count) of organisation-bound input items removed before sending to another
    organisation's deployment; a tuple: rare, so no list per request."""
    first_token_at: float | None = None
    """Monotonic time the first output delta (or the whole body) reached the client."""
    finished_at: float | None = None
    response_id: str | None = None
    usage: Usage | None = None
    """Usage the upstream reported; ``None`` when it reported none."""
    final: dict[str, Any] | None = None
    """The Responses object relayed last (a plain body, or a stream's terminal event), as already
    parsed for the usage; background accounting reads its status."""
    client_disconnected: bool = False
    websocket: bool = False
    """A turn of a client WebSocket (WebSocket mode), not an HTTP request."""
    cut_by_shutdown: bool = False
    """The gateway's drain period ended before this request did (see :mod:`modelgate_gateway.server.draining`)."""
    request_body: bytes = b""
    """Raw client body (for token estimation and optional content logging)."""
    response_body: bytes | None = None
    """Raw non-streaming upstream body, when there was one."""
    delta_payloads: list[bytes] = field(default_factory=list)
    """Raw ``data:`` payloads of ``response.output_text.delta`` events (stream estimation)."""
    stream_blocks: list[bytes] = field(default_factory=list)
    """Raw SSE blocks relayed to the client (capped); parsed only if usage must be estimated."""

    def __init__(
        self, request_id: str, started_at: float, wall_time: float, method: str = "POST", route: str = "create"
    ) -> None:
        self.request_id = request_id
        self.started_at = started_at
        self.wall_time = wall_time
        self.method = method
        self.route = route
        self.operation = "create"
        self.key_name = None
        self.end_user = None
        self.requested_model = None
        self.model = None
        self.deployment = None
        self.stream = False
        self.status = 0
        self.error_type = None
        self.error_code = None
        self.attempts = []
        self.fallbacks = []
        self.cooldowns = []
        self.deferrals = ()
        self.affinity = None
        self.stripped_items = ()
        self.first_token_at = None
        self.finished_at = None
        self.response_id = None
        self.usage = None
        self.final = None
        self.client_disconnected = False
        self.websocket = False
        self.cut_by_shutdown = False
        self.request_body = b""
        self.response_body = None
        self.delta_payloads = []
        self.stream_blocks = []


@dataclass(slots=True)
class BilledEvent:
    """A billed event that ends outside any client request: a background response reaching its end."""

    request_id: str
    """The request that created the response (its log line carries the same id)."""
    response_id: str
    """The gateway's id of the response, as the client knows it."""
    operation: str
    model: str | None
    deployment: str | None
    key_name: str | None
    end_user: str | None
    usage: Usage | None
    """What the upstream reported at the end; None when the follow-up gave up (deadline)."""
    status: str
    """Terminal status: completed, failed, cancelled, incomplete; or expired (deadline)."""
    recorded_by: str
    """Who saw the end first: create (the create's own answer), poll (a client's retrieve or cancel),
    follow_up (this gateway's follow-up)."""
    created_wall_time: float = 0.0

    def as_record(self, now: float, wall_time: float) -> RequestRecord:
        """A record for the request log line of this event (no request of its own, so no duration)."""
        record = RequestRecord(self.request_id, now, wall_time, method="-", route="background")
        record.operation = self.operation
        record.key_name = self.key_name
        record.end_user = self.end_user
        record.requested_model = record.model = self.model
        record.deployment = self.deployment
        record.status = 200
        record.response_id = self.response_id
        record.error_type = None if self.status == "completed" else f"background_{self.status}"
        return record


class Observer(Protocol):
    """Receives request lifecycle events; implementations must never raise into the hot path."""

    def request_started(self, record: RequestRecord) -> None: ...

    def request_finished(self, record: RequestRecord) -> None: ...

    def deployment_health(self, deployment: str, cooling_down: bool) -> None: ...

    def usage_recorded(self, event: BilledEvent) -> None:
        """A billed event that ended outside any request (a background response): charge it once."""
        ...
