"""Signed response ids: route follow-up calls back to the deployment that holds the state.

The Responses API keeps a response at the deployment that created it. The gateway hands out ids
that carry the deployment's stable name and the upstream id, signed with an HMAC key shared by
all replicas, so retrieve / delete / cancel / input_items and ``previous_response_id`` reach the
right deployment with no shared store, across restarts, and cannot be forged to steer a request
elsewhere. Layout: ``resp_`` + base64url(deployment NUL upstream_id) + base64url(hmac[:12]).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
from dataclasses import dataclass

PREFIX = "resp_"
_SIG_BYTES = 12
_SIG_CHARS = 16  # base64 of 12 bytes, no padding
_MAX_ID_CHARS = 1024


@dataclass(frozen=True, slots=True)
class ResponseRef:
    deployment: str
    upstream_id: str


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@functools.lru_cache(maxsize=8)
def _keyed(key: bytes) -> hmac.HMAC:
    # The key schedule (padding, inner and outer hash state) is computed once per key; each id
    # then costs one copy and one update, on the hot path of every response.
    return hmac.new(key, digestmod=hashlib.sha256)


def _sig(key: bytes, payload: bytes) -> str:
    mac = _keyed(key).copy()
    mac.update(payload)
    return _b64(mac.digest()[:_SIG_BYTES])


def encode(key: bytes, deployment: str, upstream_id: str) -> str:
    payload = deployment.encode() + b"\0" + upstream_id.encode()
    return PREFIX + _b64(payload) + _sig(key, payload)


def decode(key: bytes, response_id: str) -> ResponseRef | None:
    """The reference inside a gateway id, or None when it is malformed or not signed by ``key``."""
    if not response_id.startswith(PREFIX) or len(response_id) > _MAX_ID_CHARS:
        return None
    body = response_id[len(PREFIX):]
    if len(body) <= _SIG_CHARS:
        return None
    encoded, sig = body[:-_SIG_CHARS], body[-_SIG_CHARS:]
    try:
        payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except (binascii.Error, ValueError):
        return None
    if not hmac.compare_digest(sig, _sig(key, payload)):
        return None
    deployment, sep, upstream = payload.partition(b"\0")
    if not sep or not deployment or not upstream:
        return None
    try:
        return ResponseRef(deployment.decode(), upstream.decode())
    except UnicodeDecodeError:
        return None
