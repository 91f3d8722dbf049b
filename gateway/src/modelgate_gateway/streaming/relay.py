"""Send an opened upstream stream to the client: SSE relayed event by event (JSON: answer.py).

Streams are written per upstream chunk, cut at event boundaries, so the client sees each event
as soon as the upstream produced it. An upstream failure after the first byte ends the stream
with a ``response.failed`` event; a client that goes away cancels the upstream read at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Protocol

import aiohttp

from ..observability.recording import AttemptOutcome, RequestRecord
from ..observability.usage import usage_of
from ..upstream.deadlines import Deadline
from ..upstream.executor import Opened
from .sse import SseOverflow, SseRelayState, iter_events

log = logging.getLogger("modelgate.gateway.relay")
CLIENT_GONE = (ConnectionResetError, aiohttp.ClientConnectionResetError, BrokenPipeError)
"""What a write raises when the client went away."""


class ClientGone(Exception):
    """A write to the client failed: it went away (told apart from the upstream's read errors)."""


class Sink(Protocol):
    """Where a relayed stream goes: an HTTP response, or a WebSocket turn (handlers/websocket_turns)."""

    @property
    def prepared(self) -> bool:
        """Whether the client has been told anything yet (headers sent, socket open)."""

    async def write(self, data: bytes) -> None:
        """Send complete SSE events; raises one of ``CLIENT_GONE`` when the client went away."""


async def relay_into(
    resp: Sink, opened: Opened, record: RequestRecord, sse: SseRelayState, prepare: Awaitable[object] | None = None
) -> None:
    """Relay an opened stream into ``resp`` (``prepare``: what starts the answer, awaited first).

    ``sse`` rewrites the upstream's ids into the caller's (see :mod:`.sse`). An HTTP answer is a
    prepared ``text/event-stream`` response (handlers/caller.py), a WebSocket turn a sink of frames.
    """
    outcome = AttemptOutcome.SUCCESS
    try:
        if prepare is not None:
            await prepare
        timer = Deadline(opened.deadline - time.monotonic())
        try:
            await _pump(resp, sse, record, opened)
        except asyncio.CancelledError:
            if timer.disarm():
                raise TimeoutError from None
            raise
        finally:
            timer.disarm()
        if sse.terminal is None:
            raise _UpstreamBroke("upstream ended the stream without a final event")
    except (_UpstreamBroke, TimeoutError) as exc:
        outcome = AttemptOutcome.STREAM_ERROR
        record.error_type = "upstream_stream_error"
        message = str(exc) if isinstance(exc, _UpstreamBroke) else "upstream stream timed out"
        try:
            await resp.write(sse.failure_event(f"{message} (deployment {opened.dep.name})"))
        except CLIENT_GONE:
            record.client_disconnected = True
    except (ClientGone, *CLIENT_GONE):
        outcome = AttemptOutcome.CANCELLED
        record.client_disconnected = True
    except asyncio.CancelledError:
        outcome = AttemptOutcome.CANCELLED
        if not (record.cut_by_shutdown and resp.prepared):
            record.client_disconnected = not record.cut_by_shutdown  # else the handler answers 503
            raise
        await _end_for_shutdown(resp, sse, record)
    finally:
        end_attempt(opened, outcome, record)
        _record_result(record, sse, outcome)


def end_attempt(opened: Opened, outcome: AttemptOutcome, record: RequestRecord) -> None:
    """The answer was relayed (or broke): pool the upstream connection only after a success."""
    if outcome is AttemptOutcome.SUCCESS:
        opened.reply.release()
    else:
        opened.reply.close()
    opened.finish(outcome, record)


async def _pump(resp: Sink, sse: SseRelayState, record: RequestRecord, opened: Opened) -> None:
    """Relay the first chunk (already read by the executor), then every chunk as it arrives.

    One loop for both, written out: per chunk (~60 in a paced stream) no helper frame for the
    feed and the first-token note, no ``_send`` coroutine for the write.
    """
    try:
        chunk = opened.first_chunk
        chunks = opened.reply.chunks()
        while True:
            out = sse.feed(chunk)
            if out:
                if record.first_token_at is None and sse.first_delta_seen:
                    record.first_token_at = time.monotonic()
                try:  # only a failed write means the client left; read errors are upstream's
                    await resp.write(out)
                except CLIENT_GONE as exc:
                    raise ClientGone from exc
            try:
                chunk = await anext(chunks)
            except StopAsyncIteration:
                break
    except (ClientGone, TimeoutError):
        raise
    except Exception as exc:  # any upstream read/translate failure ends the stream cleanly
        if not isinstance(exc, OSError | SseOverflow):
            log.exception("unexpected error while relaying a stream from %s", opened.dep.name)
        raise _UpstreamBroke(f"upstream connection failed mid-stream ({type(exc).__name__})") from exc


async def _end_for_shutdown(resp: Sink, sse: SseRelayState, record: RequestRecord) -> None:
    """The gateway's drain period is over: end the stream with a ``response.failed`` it can act on."""
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()  # the cancellation is handled here: the stream ends normally
    record.error_type, record.error_code = "gateway_shutdown", "gateway_shutting_down"
    try:
        await resp.write(
            sse.failure_event(
                "The gateway is shutting down and its drain period is over; the stream was cut. Retry the request.",
                code="gateway_shutting_down",
            )
        )
    except CLIENT_GONE:
        record.client_disconnected = True


class _UpstreamBroke(Exception):
    pass


def _record_result(record: RequestRecord, sse: SseRelayState, outcome: AttemptOutcome) -> None:
    record.final = sse.terminal
    record.usage = usage_of(record.final)
    record.stream_blocks = sse.blocks
    if record.usage is None:  # only then are the deltas needed, to estimate tokens
        record.delta_payloads = [
            payload
            for block in sse.blocks
            for kind, payload in iter_events(block)
            if kind == "response.output_text.delta"
        ]
    if sse.gateway_id is not None:
        record.response_id = sse.gateway_id.decode()
    if outcome is AttemptOutcome.SUCCESS and sse.terminal is not None:
        record.status = 200
        if sse.terminal.get("status") == "failed":
            record.error_type = "upstream_response_failed"
    elif outcome is AttemptOutcome.CANCELLED and record.cut_by_shutdown and not record.client_disconnected:
        record.status = 503  # the drain period ended; the stream got a response.failed event
    elif outcome is AttemptOutcome.CANCELLED:
        record.status = 499  # nginx's "client closed request"; the client never saw a status
    else:
        record.status = 502
