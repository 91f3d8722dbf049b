"""What one request did, recorded along the hot path and handed to observers once at the end.

The handler and the upstream executor fill a :class:`RequestRecord`; metrics, cost and the
request log (:mod:`modelgate_gateway.observability.observer`) read it in ``request_finished``. Nothing here
parses or re-encodes bodies: raw bytes are kept so usage can be estimated lazily, only when the
upstream reported none.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol


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
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0


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


@dataclass(slots=True)
class RequestRecord:
    request_id: str
    started_at: float
    """``time.monotonic()`` at arrival."""
    wall_time: float
    """``time.time()`` at arrival, for logs."""
    method: str = "POST"
    route: str = "create"
    """Endpoint family: create, retrieve, delete, cancel, input_items, models."""
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
    client_disconnected: bool = False
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


class Observer(Protocol):
    """Receives request lifecycle events; implementations must never raise into the hot path."""

    def request_started(self, record: RequestRecord) -> None: ...

    def request_finished(self, record: RequestRecord) -> None: ...

    def deployment_health(self, deployment: str, cooling_down: bool) -> None: ...
