"""Open an upstream call with load balancing, retries, fallbacks and cooldown.

The executor tries deployments until one starts answering: for a stream, until its first chunk
arrived; for a plain call, until its headers did. Nothing has reached the client at that point,
so failing over is invisible to it. After that the caller owns the reply (see
:mod:`modelgate_gateway.streaming.relay`) and reports the end through :meth:`Opened.finish`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from typing import Any

from ..config import UpstreamApi
from ..errors import GatewayError, UpstreamFailed
from ..observability.recording import AttemptOutcome, AttemptRecord, RequestRecord
from ..redaction import Redactor
from ..runtime import DeploymentRuntime, ModelRuntime, RuntimeConfig
from .affinity import strip_org_bound
from .balancing import DeploymentHealth
from .call import Call, ExecutorDeps
from .chat_transport import Untranslatable
from .deadlines import Deadline
from .fallback import Failure, exhausted_error, outcome_for_status, retry_after_seconds
from .ratelimits import Waits
from .targeting import chain, has_capacity, next_target, server_to_try, waits_for
from .transport import Transport, UpstreamReply, rewrite_body


@dataclass(slots=True)
class Opened:
    reply: UpstreamReply
    dep: DeploymentRuntime
    model: ModelRuntime | None
    attempt: AttemptRecord
    first_chunk: bytes
    deadline: float
    state: ExecutorDeps
    health: DeploymentHealth
    """The board's entry for ``dep.health_key`` (kept while the attempt counts in it)."""

    def finish(self, outcome: AttemptOutcome, record: RequestRecord | None = None) -> None:
        """The attempt ended (stream over, body read, or failed mid-way); update health."""
        now = time.monotonic()
        self.health.outstanding -= 1
        self.attempt.outcome = outcome
        self.attempt.duration_seconds = now - self.attempt.started_at
        if outcome is AttemptOutcome.STREAM_ERROR and self.model is not None:
            _note_failure(self.state, self.model, self.dep, now, record)


class PassThrough(GatewayError):
    """An upstream 4xx that is the client's fault: its status and body go back unchanged."""

    def __init__(self, status: int, body: bytes, content_type: str) -> None:
        super().__init__("upstream rejected the request", status=status)
        self.raw_body = body
        self.content_type = content_type

    def body(self) -> bytes:
        return self.raw_body

    def redact(self, redactor: Redactor | None) -> None:
        """Some upstreams quote the request's credentials in their errors: never pass those on."""
        if redactor is not None:
            self.raw_body = redactor.bytes(self.raw_body)
            self.content_type = redactor.text(self.content_type)


def _note_failure(
    state: ExecutorDeps, model: ModelRuntime, dep: DeploymentRuntime, now: float, record: RequestRecord | None
) -> None:
    """Count a failure of the deployment, or of one server of a pool (its own cooldown: the
    deployment's health gauge and cooldown list name deployments only, never servers)."""
    if state.board.record_failure(dep.health_key, now, model.cooldown_failures, model.cooldown_seconds):
        if dep.member:
            return
        if record is not None:
            record.cooldowns.append(dep.name)
        state.observer.deployment_health(dep.name, True)


async def _attempt(
    state: ExecutorDeps, dep: DeploymentRuntime, call: Call, record: RequestRecord, deadline: float
) -> tuple[UpstreamReply, bytes]:
    """One try; raises _Failed with a classified failure, or PassThrough for a client error."""
    raw, payload = call.raw, call.payload
    if payload is not None:
        updates = {**call.updates, "model": dep.model} if call.rewrite_model else call.updates
        if call.home_org is not None and dep.organization != call.home_org:
            updates = _strip_for(dep, payload, updates, record)
        if updates:
            rewritten = rewrite_body(payload, raw, updates) if raw is not None else None
            if rewritten is None or rewritten is not raw:
                raw, payload = rewritten, {**payload, **updates}
            # else every update holds already (the usual model name): body and payload go as they are
    timer = Deadline(min(dep.first_byte_seconds, deadline - time.monotonic()))
    try:
        return await _exchange(state.transport(dep), dep, call, payload, raw, record.request_id)
    except asyncio.CancelledError:
        if timer.disarm():
            raise _Failed(Failure(dep.health_key, AttemptOutcome.TIMEOUT, "timeout")) from None
        raise
    except TimeoutError:
        raise _Failed(Failure(dep.health_key, AttemptOutcome.TIMEOUT, "timeout")) from None
    except OSError as exc:  # refused, reset, TLS, protocol errors (http1's errors are OSErrors)
        raise _Failed(Failure(dep.health_key, AttemptOutcome.CONNECT_ERROR, type(exc).__name__)) from None
    finally:
        timer.disarm()


def _strip_for(
    dep: DeploymentRuntime, payload: dict[str, Any], updates: dict[str, Any], record: RequestRecord
) -> dict[str, Any]:
    """The session moved to another organisation: its encrypted items would fail there, so leave them out."""
    stripped = strip_org_bound(payload.get("input"), keep_bridge_items=dep.api is UpstreamApi.CHAT_COMPLETIONS)
    if stripped is None:
        return updates
    record.stripped_items += ((dep.name, stripped[1]),)
    return {**updates, "input": stripped[0]}


async def _exchange(
    transport: Transport,
    dep: DeploymentRuntime,
    call: Call,
    payload: dict[str, Any] | None,
    raw: bytes | None,
    request_id: str,
) -> tuple[UpstreamReply, bytes]:
    """Send, then wait for the status (and a stream's first chunk); inside the first-byte deadline."""
    reply = await transport.open(
        dep,
        call.method,
        call.path,
        payload=payload,
        raw=raw,
        query=call.query,
        request_id=request_id,
        headers=call.headers,
    )
    if reply.status >= 300:  # below that: success, without asking outcome_for_status
        outcome = outcome_for_status(reply.status)
        try:
            body = await reply.read()
        finally:
            reply.release()
        if outcome is AttemptOutcome.CLIENT_ERROR:
            ctype = reply.headers.get("Content-Type", "application/json")
            raise PassThrough(reply.status, body, ctype)
        raise _Failed(
            Failure(dep.health_key, outcome, f"HTTP {reply.status}", reply.status, retry_after_seconds(reply.headers))
        )
    if not call.stream:
        return reply, b""
    try:
        first = await anext(aiter(reply.chunks()), b"")
    except BaseException:
        reply.close()
        raise
    if not first:
        reply.close()
        raise _Failed(Failure(dep.health_key, AttemptOutcome.SERVER_ERROR, "empty stream"))
    return reply, first


class _Failed(Exception):
    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.detail)
        self.failure = failure


async def open_call(
    state: ExecutorDeps, runtime: RuntimeConfig, record: RequestRecord, model: ModelRuntime | None, call: Call
) -> Opened:
    """Try deployments until one answers; raise the right GatewayError when none does.

    Order: the model's deployments, then each fallback model's; a deployment deferred by a 429's
    Retry-After is skipped. Only when that chain is exhausted does the request wait for a
    rate-limited deployment (see :mod:`.ratelimits`), within ``maxRetryAfterSeconds`` and the
    deadline. A pinned call (the deployment holds the response's state) has a chain of one.
    """
    budget = model.total_timeout_seconds if model is not None else 600.0
    deadline = record.started_at + budget
    max_attempts = model.max_attempts if model is not None else 2
    failures: list[Failure] = []
    tried: set[str] = set()
    unservable: Untranslatable | None = None
    models = chain(runtime, model, call)
    index = 0
    waits: Waits | None = None  # made on the first failure: the success path needs none
    while len(record.attempts) < max_attempts:
        if index < len(models):
            current = models[index]
            name = next_target(state, runtime, call, current, tried)
            if name is None:
                index += 1
                following = models[index] if index < len(models) else None
                if current is not None and following is not None:
                    record.fallbacks.append((current.name, following.name))
                continue
        else:  # nothing else can serve: wait for a rate-limited deployment, if allowed
            waits = waits or waits_for(state, models, call, model, deadline)
            found = await waits.wait(failures, lambda n: has_capacity(state, runtime, n))
            if found is None:
                break
            current, name = found
        dep = runtime.deployments.get(name)
        if dep is None or dep.pool is not None:  # one server of a pool (pinned: ``name@server``)
            dep = server_to_try(state, runtime, call, name, tried, (waits, failures))
            if dep is None:
                continue
        tried.add(dep.health_key if call.pinned is None else name)
        try:
            return await _run_attempt(
                state, dep, call, record, current, deadline, retry_after_cap=runtime.retry_after_caps[dep.name]
            )
        except _Failed as exc:
            failures.append(exc.failure)
        except Untranslatable as exc:  # another deployment (another upstream API) may serve it
            unservable = exc
            waits = waits or waits_for(state, models, call, model, deadline)
            waits.give_up(name)
    if unservable is not None and not failures:
        try:
            raise unservable
        finally:  # its traceback holds this frame: holding it here too would make a cycle
            unservable = None
    waits = waits or waits_for(state, models, call, model, deadline)
    summary, retry_after = waits.outcome(failures, tried)
    raise exhausted_error(summary, len(record.attempts), retry_after)


def _defer(state: ExecutorDeps, record: RequestRecord, failure: Failure, cap: float, now: float) -> Failure:
    """Take a deployment out of rotation for its Retry-After, cut to the cap (an absurd value must
    not eject it for good), and show it: the health gauge at once, the deferral counter per request."""
    name, asked = failure.deployment, failure.retry_after or 0.0
    delay = min(asked, cap)
    state.board.release_probe(name)
    if delay > 0:
        state.board.defer(name, now + delay)
        record.deferrals += ((name, asked > cap),)
        state.observer.deployment_health(name, True)
    return failure if delay == asked else replace(failure, retry_after=delay)


def _attempt_failed(
    state: ExecutorDeps,
    dep: DeploymentRuntime,
    record: RequestRecord,
    model: ModelRuntime | None,
    attempt: AttemptRecord,
    exc: _Failed,
    *,
    retry_after_cap: float,
) -> None:
    """Note a classified failure: on the attempt, and as a deferral (a 429's Retry-After) or a failure."""
    failure = exc.failure
    attempt.outcome, attempt.status = failure.outcome, failure.status
    now = time.monotonic()
    attempt.duration_seconds = now - attempt.started_at
    deferred = False
    # A server of a pool is not deferred (the whole deployment would be): its 429 counts as a failure.
    if failure.outcome is AttemptOutcome.RATE_LIMITED and failure.retry_after is not None and not dep.member:
        exc.failure = failure = _defer(state, record, failure, retry_after_cap, now)
        deferred = failure.retry_after != 0  # "Retry-After: 0" is an ordinary failure
    if model is not None and not deferred:
        _note_failure(state, model, dep, now, record)


async def _run_attempt(
    state: ExecutorDeps,
    dep: DeploymentRuntime,
    call: Call,
    record: RequestRecord,
    model: ModelRuntime | None,
    deadline: float,
    *,
    retry_after_cap: float,
) -> Opened:
    started = time.monotonic()
    attempt = AttemptRecord(
        model=model.name if model else (record.model or ""),
        deployment=dep.name,
        outcome=AttemptOutcome.SUCCESS,
        started_at=started,
    )
    record.attempts.append(attempt)
    board = state.board
    health = board.get(dep.health_key)  # a pool server's count is its deployment's too (balancing.ServerHealth)
    health.outstanding += 1
    try:
        reply, first = await _attempt(state, dep, call, record, min(deadline, started + dep.total_seconds))
    except _Failed as exc:
        health.outstanding -= 1
        _attempt_failed(state, dep, record, model, attempt, exc, retry_after_cap=retry_after_cap)
        raise
    except Untranslatable:
        health.outstanding -= 1
        record.attempts.pop()  # nothing was sent: not an attempt
        board.release_probe(dep.health_key)
        raise
    except PassThrough as exc:
        health.outstanding -= 1
        exc.redact(dep.redactor)
        attempt.outcome, attempt.status = AttemptOutcome.CLIENT_ERROR, exc.status
        attempt.duration_seconds = time.monotonic() - started
        # The deployment answered properly; the request was at fault. That is a healthy probe.
        if health.succeeded(None) and not dep.member:
            state.observer.deployment_health(dep.name, False)
        raise
    except BaseException:
        health.outstanding -= 1
        board.release_probe(dep.health_key)
        attempt.outcome = AttemptOutcome.CANCELLED
        attempt.duration_seconds = time.monotonic() - started
        raise
    attempt.status = reply.status
    if dep.member:  # the deployment's latency too (adaptive weights, lowest-latency across deployments)
        health.succeeded(time.monotonic() - started)
        board.record_success(dep.name, time.monotonic() - started)
    elif health.succeeded(time.monotonic() - started):
        state.observer.deployment_health(dep.name, False)
    if model is not None:
        record.model = model.name
    record.deployment = dep.name
    if call.home is not None:
        record.affinity = "hit" if dep.name == call.home else "moved"
    return Opened(reply, dep, model, attempt, first, min(deadline, started + dep.total_seconds), state, health)


__all__ = ["Call", "ExecutorDeps", "Opened", "PassThrough", "UpstreamFailed", "open_call"]
