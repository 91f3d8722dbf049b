"""What every endpoint does around its own work: ids, auth, body limits, errors, recording.

Implemented as a decorator rather than aiohttp middlewares: a middleware chain costs a
coroutine hop per request on the hot path, and only these endpoints need it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import hdrs, web

from ..appkeys import STATE
from ..appstate import GatewayState
from ..errors import (
    GatewayError,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    RequestTimeout,
    ShuttingDown,
    Unauthorized,
)
from ..observability.clienttext import safe_text
from ..observability.recording import RequestRecord
from ..runtime import KeyRuntime, RuntimeConfig
from ..server.clientconn import BodyTimeout
from . import ratelimit_headers
from .headernames import API_KEY, X_REQUEST_ID

log = logging.getLogger("modelgate.gateway")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
Handler = Callable[[web.Request, GatewayState, RequestRecord], Awaitable[web.StreamResponse]]


def request_id_of(request: web.Request) -> str:
    """The client's request id when it is a sane one, else a fresh one."""
    incoming = request.headers.get(X_REQUEST_ID)
    return incoming if incoming and _REQUEST_ID.match(incoming) else "req_" + os.urandom(12).hex()


def new_record(request: web.Request, route: str) -> RequestRecord:
    # Positional: a keyword call matches each name against the parameters (every request).
    return RequestRecord(request_id_of(request), time.monotonic(), time.time(), request.method, route)


def error_response(err: GatewayError, record: RequestRecord) -> web.Response:
    record.status = err.status
    record.error_type = record.error_type or err.type
    record.error_code = err.code
    headers = {X_REQUEST_ID: record.request_id, **err.headers}
    content_type = getattr(err, "content_type", "application/json").split(";")[0]
    return web.Response(body=err.body(), status=err.status, headers=headers, content_type=content_type)


def endpoint(route: str) -> Callable[[Handler], Callable[[web.Request], Awaitable[web.StreamResponse]]]:
    """Wrap a handler: record the request, map errors to the OpenAI envelope, report once.

    Every outcome is reported exactly once: answers, errors, client disconnects (also while
    the body is read) and requests cut by the shutdown (see :mod:`..server.draining`).
    """

    def wrap(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def run(request: web.Request) -> web.StreamResponse:
            state = request.app[STATE]
            record = new_record(request, route)
            state.observer.request_started(record)
            task = state.inflight.enter(record)
            try:
                response = await handler(request, state, record)
                if state.governor.policy.rated and ratelimit_headers.wanted(state, record, response):
                    response.headers.update(await ratelimit_headers.current(state, record))
                return response
            except GatewayError as err:
                if state.governor.policy.rated and ratelimit_headers.wanted(state, record, None, err.headers):
                    # a new dict: never mutate one the error may share
                    err.headers = {**err.headers, **await ratelimit_headers.current(state, record)}
                return error_response(err, record)
            except _ClientGone:
                record.client_disconnected = True
                record.status = 499  # nginx's "client closed request"; nobody reads this answer
                return web.Response(status=499)
            except asyncio.CancelledError:
                if not record.cut_by_shutdown:
                    record.client_disconnected = True
                    record.status = record.status or 499
                    raise
                return _cut_by_shutdown(record, task)
            except Exception:
                log.exception("unexpected error in %s (request %s)", route, record.request_id)
                return error_response(
                    GatewayError(f"The gateway failed unexpectedly; request id {record.request_id}."), record
                )
            finally:
                state.inflight.leave(task)
                record.finished_at = time.monotonic()
                # Metrics, cost and the log line (~10 µs) after aiohttp has written the answer,
                # not before: the callback runs on the loop's next turn, off the client's wait.
                asyncio.get_running_loop().call_soon(state.observer.request_finished, record)

        run.__name__ = handler.__name__
        return run

    return wrap


def _cut_by_shutdown(record: RequestRecord, task: asyncio.Task[Any] | None) -> web.Response:
    """The drain period ended before this request did and nothing was sent yet: a 503 to retry."""
    if task is not None:
        task.uncancel()
    record.client_disconnected = False  # the relay may have taken the cancellation for one
    record.error_type = "gateway_shutdown"
    resp = error_response(
        ShuttingDown(
            "The gateway is shutting down and could not finish this request within its drain period; retry it."
        ),
        record,
    )
    resp.force_close()
    return resp


class _ClientGone(Exception):
    """The client's connection broke while its request was being read."""


def authenticate(request: web.Request, runtime: RuntimeConfig, record: RequestRecord) -> KeyRuntime | None:
    """The caller's key (Bearer token or ``api-key`` header, as Azure clients send)."""
    header = request.headers.get(hdrs.AUTHORIZATION)
    token = None
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            token = value.strip()
    if token is None:
        token = request.headers.get(API_KEY)
    if not token:
        if runtime.allow_unauthenticated:
            return None
        raise Unauthorized("Missing API key: send it as 'Authorization: Bearer <key>'.")
    # Header bytes that are not UTF-8 arrive as surrogates (aiohttp decodes with surrogateescape):
    # encoding them back gives the bytes the client sent, which match no key.
    key = runtime.keys_by_digest.get(hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest())
    if key is None:
        if runtime.allow_unauthenticated:
            return None
        raise Unauthorized("Incorrect API key provided.")
    record.key_name = key.name
    if key.expires_at is not None and time.time() >= key.expires_at:
        raise Unauthorized(f"Your API key ({key.name}) has expired.", code="expired_api_key")
    return key


async def read_body(request: web.Request, limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes without reading them all.

    The connection's body timeout (:mod:`..server.clientconn`) bounds the time it may take.
    ``readany`` hands over all that is buffered; once the stream is at its end (the usual case
    after the first read: a small body arrives with its headers) the loop stops there rather than
    reading once more for the empty chunk that says so (~80 bytecodes, three Python calls).
    """
    length = request.content_length
    if length is not None and length > limit:
        raise PayloadTooLarge(f"Request body of {length} bytes exceeds the limit of {limit} bytes.")
    content = request.content
    chunks: list[bytes] = []
    size = 0
    try:
        while True:  # bounded: stops at EOF, once the limit is crossed, or at the body timeout
            chunk = await content.readany()
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"Request body exceeds the limit of {limit} bytes.")
            chunks.append(chunk)
            if content.at_eof():
                break
    except (BodyTimeout, web.RequestPayloadError, ConnectionError) as exc:
        # The request's stream keeps the error and raises that same object: with its traceback
        # (this frame, which holds the request) it would make a reference cycle. Forget it.
        exc.__traceback__ = None
        if isinstance(exc, BodyTimeout):
            raise RequestTimeout(f"The request body was not received in time ({exc}).") from None
        if isinstance(exc, web.RequestPayloadError):
            raise InvalidRequest(
                "The request body is malformed (its length or chunked encoding is invalid).", code="invalid_body"
            ) from None
        raise _ClientGone from None
    return b"".join(chunks)


def parse_object(body: bytes) -> dict[str, Any]:
    if not body:
        raise InvalidRequest("The request body is empty; expected a JSON object.")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"We could not parse the JSON body of your request: {exc}.") from None
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return data


async def _not_found(request: web.Request, state: GatewayState, record: RequestRecord) -> web.StreamResponse:
    raise NotFound(f"Invalid URL ({request.method} {safe_text(request.path[:256])}).", code="unknown_url")


not_found = endpoint("unknown_url")(_not_found)
