"""Gateway errors and the OpenAI error envelope they turn into.

Every failure a client can see is a :class:`GatewayError`: status, OpenAI ``type``, ``code`` and
``param``. Messages are written for the person reading them and never contain secret material.
"""

from __future__ import annotations

from typing import Any

import orjson


class GatewayError(Exception):
    status = 500
    type = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None,
                 status: int | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.headers = headers or {}

    def body(self) -> bytes:
        return error_body(self.message, self.type, self.param, self.code)


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"


class Unauthorized(GatewayError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class PermissionDenied(GatewayError):
    status = 403
    type = "invalid_request_error"
    code = "model_not_allowed"


class NotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class PayloadTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class RequestTimeout(GatewayError):
    """The client did not send its whole body within the body-read timeout."""

    status = 408
    type = "invalid_request_error"
    code = "request_timeout"


class ShuttingDown(GatewayError):
    """The drain period ended before the request did; another replica can serve a retry."""

    status = 503
    type = "server_error"
    code = "gateway_shutting_down"


class UpstreamFailed(GatewayError):
    """Every attempt failed before the first byte reached the client."""

    status = 502
    type = "upstream_error"
    code = "upstream_unavailable"


class NotReady(GatewayError):
    status = 503
    type = "server_error"
    code = "gateway_not_ready"


def error_body(message: str, type_: str, param: str | None = None, code: str | None = None) -> bytes:
    payload: dict[str, Any] = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return orjson.dumps(payload)
