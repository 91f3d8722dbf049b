"""The per-request JSON log line and the writer that keeps it off the event loop.

A write to stdout or a file can block (a full pipe, a slow disk), and the event loop must never
wait on it: the hot path only appends an encoded line to a bounded in-memory buffer, and one
daemon thread drains batches to the sink. When the sink cannot keep up, lines are dropped and
counted (``modelgate_request_log_dropped_total``) rather than growing memory without bound.
The line never holds secrets (only the API key's configured name); prompt and completion text
only with ``requestLog.includeContent``. Built by :mod:`modelgate_gateway.observability.observer`.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import IO, Any

import orjson
from prometheus_client import Counter

from .accounting import UsageSource
from .clienttext import safe_text
from .recording import RequestRecord, Usage

logger = logging.getLogger(__name__)

# ~10k lines of ~600 bytes = ~6 MiB at most held while the sink stalls.
DEFAULT_MAX_PENDING_LINES = 10_000
# Waking the thread per line would cost a GIL hand-off per request: it wakes when this many lines
# are buffered, or after FLUSH_INTERVAL_SECONDS, whichever comes first (lines lag by <= 0.2 s).
FLUSH_LINES = 256
FLUSH_INTERVAL_SECONDS = 0.2


class _NoUsage:
    """Stands in for the usage of a request nobody is charged for: every log field reads ``null``.

    Lets :func:`log_line` read the usual (billed) case's fields without a test per field.
    """

    __slots__ = ()
    input_tokens = cached_input_tokens = output_tokens = reasoning_tokens = cache_write_tokens = None
    service_tier = None
    tool_calls: tuple[tuple[str, int], ...] = ()


_NO_USAGE = _NoUsage()
_LINE_TEMPLATE: dict[str, Any] = dict.fromkeys(
    (
        "ts",
        "request_id",
        "route",
        "operation",
        "key",
        "end_user",
        "model",
        "requested_model",
        "deployment",
        "stream",
        "status",
        "error_type",
        "error_code",
        "attempts",
        "fallbacks",
        "client_disconnected",
        "response_id",
        "input_tokens",
        "cached_input_tokens",
        "output_tokens",
        "reasoning_tokens",
        "cache_write_tokens",
        "service_tier",
        "hosted_tool_calls",
        "usage_estimated",
        "usage_source",
        "cost_usd",
        "priced",
        "duration_seconds",
        "ttft_seconds",
    )
)
"""The fields of every line, in their order. :func:`log_line` fills a copy: a dict literal of more
than 15 entries compiles to one insert per entry from an empty dict (growing it four times), a
copy of this one is made at full size and only has its values replaced (~20% fewer instructions
for the line's dict)."""
_APPEND_NEWLINE = orjson.OPT_APPEND_NEWLINE


def log_line(
    record: RequestRecord,
    usage: Usage | None,
    *,
    source: str | None,
    cost: float | None,
    priced: bool,
    finished: float,
    content: tuple[str, str] | None = None,
) -> bytes:
    """One JSON line (newline included) for ``record``, charged ``usage`` at ``cost``.

    ``source`` says how the usage was obtained (:class:`.accounting.UsageSource`: reported,
    estimated, followed_up, unknown; None: not billed), ``priced`` whether prices were configured,
    ``finished`` is the monotonic end time, ``content`` (input text, output text) when enabled.
    Plain arguments rather than an object: this runs once per request.
    """
    billed: Usage | _NoUsage = _NO_USAGE if usage is None else usage
    first = record.first_token_at
    started = record.started_at
    attempts = record.attempts
    tried = len(attempts)
    line = _LINE_TEMPLATE.copy()  # every key already there, in order (see _LINE_TEMPLATE)
    line["ts"] = record.wall_time
    line["request_id"] = record.request_id
    line["route"] = record.route
    line["operation"] = record.operation
    line["key"] = record.key_name
    line["end_user"] = record.end_user
    line["model"] = record.model
    line["requested_model"] = record.requested_model
    line["deployment"] = record.deployment
    line["stream"] = record.stream
    line["status"] = record.status
    line["error_type"] = record.error_type
    line["error_code"] = record.error_code
    line["attempts"] = tried
    line["fallbacks"] = record.fallbacks
    line["client_disconnected"] = record.client_disconnected
    line["response_id"] = record.response_id
    line["input_tokens"] = billed.input_tokens
    line["cached_input_tokens"] = billed.cached_input_tokens
    line["output_tokens"] = billed.output_tokens
    line["reasoning_tokens"] = billed.reasoning_tokens
    line["cache_write_tokens"] = billed.cache_write_tokens
    line["service_tier"] = billed.service_tier
    line["hosted_tool_calls"] = dict(billed.tool_calls) if billed.tool_calls else None
    line["usage_estimated"] = source == UsageSource.ESTIMATED
    line["usage_source"] = source
    line["cost_usd"] = cost
    line["priced"] = priced
    line["duration_seconds"] = finished - started
    line["ttft_seconds"] = None if first is None else first - started
    if tried > 1:  # the failover path, for whoever debugs it
        line["attempt_path"] = [
            {"model": a.model, "deployment": a.deployment, "outcome": a.outcome.value, "status": a.status}
            for a in attempts
        ]
    if record.websocket:  # a turn of a client WebSocket
        line["transport"] = "websocket"
    if record.affinity is not None:  # only requests that name a session
        line["affinity"] = record.affinity
        if record.stripped_items:
            line["stripped_items"] = sum(count for _, count in record.stripped_items)
    if content is not None:
        line["input"], line["output"] = content
    try:
        return orjson.dumps(line, option=_APPEND_NEWLINE)
    except orjson.JSONEncodeError:  # a string orjson cannot write: the line is written anyway
        return orjson.dumps(_safe(line), option=_APPEND_NEWLINE)


def _safe(value: Any) -> Any:
    """``value`` with every string made encodable (see :mod:`.clienttext`)."""
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, dict):
        return {k: _safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_safe(v) for v in value]
    return value


class RequestLogWriter:
    """Bounded buffer drained by a daemon thread into stdout (``path=None``) or an appended file.

    ``stream`` replaces stdout (tests). The thread starts on the first line, so an idle or
    disabled log costs nothing; ``close`` flushes what is buffered and joins the thread.
    """

    def __init__(
        self,
        path: str | None = None,
        *,
        dropped: Counter,
        stream: IO[bytes] | None = None,
        max_pending_lines: int = DEFAULT_MAX_PENDING_LINES,
        flush_lines: int = FLUSH_LINES,
    ) -> None:
        self.path = path
        self._stream = stream
        self._dropped = dropped
        self._max_pending = max_pending_lines
        self._flush_lines = flush_lines
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._buffer: list[bytes] = []
        self._pending = 0
        self._signalled = False
        self._closing = False
        self._thread: threading.Thread | None = None

    def write(self, line: bytes) -> None:
        """Hot path: append under an uncontended lock; wake the thread once per batch."""
        wake = False
        with self._lock:
            pending = self._pending
            if self._closing or pending >= self._max_pending:
                self._dropped.inc()
                return
            buffer = self._buffer
            buffer.append(line)
            self._pending = pending + 1
            if len(buffer) >= self._flush_lines and not self._signalled:
                self._signalled = wake = True
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="modelgate-request-log", daemon=True)
                self._thread.start()
        if wake:
            self._wake.set()

    def close(self, timeout: float = 5.0) -> None:
        """Flush buffered lines and stop the thread. Blocks: use ``asyncio.to_thread``."""
        with self._lock:
            self._closing = True
            thread = self._thread
        self._wake.set()
        if thread is not None:
            thread.join(timeout)

    def _open(self) -> tuple[IO[bytes] | None, bool]:
        if self._stream is not None:
            return self._stream, False
        if self.path is None:
            return sys.stdout.buffer, False
        try:
            return open(self.path, "ab"), True  # owned by the thread, closed in _run
        except OSError as exc:
            logger.error("request log: cannot open %s: %s; dropping lines", self.path, exc)
            return None, False

    def _run(self) -> None:
        sink, owned = self._open()
        try:
            while True:
                self._wake.wait(FLUSH_INTERVAL_SECONDS)
                with self._lock:
                    batch, self._buffer = self._buffer, []
                    self._wake.clear()
                    self._signalled = False
                    closing = self._closing
                if batch:
                    self._flush(sink, batch)
                    with self._lock:
                        self._pending -= len(batch)
                if closing:
                    return
        finally:
            if owned and sink is not None:
                sink.close()

    def _flush(self, sink: IO[bytes] | None, batch: list[bytes]) -> None:
        if sink is None:
            self._dropped.inc(len(batch))
            return
        try:
            sink.write(b"".join(batch))
            sink.flush()
        except (OSError, ValueError) as exc:  # ValueError: sink closed under us
            self._dropped.inc(len(batch))
            logger.warning("request log: write failed (%s); %d lines dropped", exc, len(batch))
