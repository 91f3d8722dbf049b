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
from aiohttp import web

from ..appstate import GatewayState
from ..errors import GatewayError, InvalidRequest, PayloadTooLarge, Unauthorized, error_body
from ..keys import STATE
from ..recording import RequestRecord
from ..runtime import KeyRuntime, RuntimeConfig

log = logging.getLogger("modelgate.gateway")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
Handler = Callable[[web.Request, GatewayState, RequestRecord], Awaitable[web.StreamResponse]]


def request_id_of(request: web.Request) -> str:
    """The client's request id when it is a sane one, else a fresh one."""
    incoming = request.headers.get("X-Request-Id")
    return incoming if incoming and _REQUEST_ID.match(incoming) else "req_" + os.urandom(12).hex()


def new_record(request: web.Request, route: str) -> RequestRecord:
    request_id = request_id_of(request)
    return RequestRecord(request_id=request_id, started_at=time.monotonic(), wall_time=time.time(),
                         method=request.method, route=route)


def error_response(err: GatewayError, record: RequestRecord) -> web.Response:
    record.status = err.status
    record.error_type = record.error_type or err.type
    record.error_code = err.code
    headers = {"X-Request-Id": record.request_id, **err.headers}
    content_type = getattr(err, "content_type", "application/json").split(";")[0]
    return web.Response(body=err.body(), status=err.status, headers=headers, content_type=content_type)


def endpoint(route: str) -> Callable[[Handler], Callable[[web.Request], Awaitable[web.StreamResponse]]]:
    """Wrap a handler: record the request, map errors to the OpenAI envelope, report once."""

    def wrap(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def run(request: web.Request) -> web.StreamResponse:
            state = request.app[STATE]
            record = new_record(request, route)
            state.observer.request_started(record)
            try:
                return await handler(request, state, record)
            except GatewayError as err:
                return error_response(err, record)
            except Exception:
                log.exception("unexpected error in %s (request %s)", route, record.request_id)
                return error_response(
                    GatewayError(f"The gateway failed unexpectedly; request id {record.request_id}."),
                    record)
            finally:
                record.finished_at = time.monotonic()
                # Metrics, cost and the log line (~10 µs) after aiohttp has written the answer,
                # not before: the callback runs on the loop's next turn, off the client's wait.
                asyncio.get_running_loop().call_soon(state.observer.request_finished, record)

        run.__name__ = handler.__name__
        return run

    return wrap


def authenticate(request: web.Request, runtime: RuntimeConfig, record: RequestRecord) -> KeyRuntime | None:
    """The caller's key (Bearer token or ``api-key`` header, as Azure clients send)."""
    header = request.headers.get("Authorization")
    token = None
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            token = value.strip()
    if token is None:
        token = request.headers.get("api-key")
    if not token:
        if runtime.allow_unauthenticated:
            return None
        raise Unauthorized("Missing API key: send it as 'Authorization: Bearer <key>'.")
    key = runtime.keys_by_digest.get(hashlib.sha256(token.encode()).digest())
    if key is None:
        if runtime.allow_unauthenticated:
            return None
        raise Unauthorized("Incorrect API key provided.")
    record.key_name = key.name
    return key


async def read_body(request: web.Request, limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes without reading them all."""
    length = request.content_length
    if length is not None and length > limit:
        raise PayloadTooLarge(f"Request body of {length} bytes exceeds the limit of {limit} bytes.")
    chunks: list[bytes] = []
    size = 0
    while True:  # bounded: stops at EOF or once the limit is crossed
        chunk = await request.content.readany()
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"Request body exceeds the limit of {limit} bytes.")
        chunks.append(chunk)
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


async def not_found(request: web.Request) -> web.Response:
    body = error_body(f"Invalid URL ({request.method} {request.path}).", "invalid_request_error",
                      None, "unknown_url")
    return web.Response(body=body, status=404, content_type="application/json",
                        headers={"X-Request-Id": request_id_of(request)})
