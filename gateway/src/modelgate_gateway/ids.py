"""Signed, owner-bound response ids: route follow-up calls back to the deployment holding the state.

The Responses API keeps a response at the deployment that created it. The gateway hands out ids
that carry the deployment's stable name and the upstream id, signed with an HMAC key shared by
all replicas, so retrieve / delete / cancel / input_items and ``previous_response_id`` reach the
right deployment with no shared store, across restarts, and cannot be forged to steer a request
elsewhere.

Every id is also bound to its *owner*: the tenant of the key that created it (a key without a
tenant is its own tenant; callers without a key are the anonymous owner). The id carries a short
keyed hash of the owner (the :func:`owner_tag`), covered by the signature, so it never reveals the
tenant's name and cannot be moved to another owner. An id presented by another owner does not
decode: the caller sees exactly what a forged id gets.

Layout (version 1)::

    <prefix> base64url(0x01 | owner tag (8) | fields) base64url(HMAC(kind key, that payload)[:12])

``fields`` is ``deployment NUL upstream_id`` for response ids. For one server of a pool deployment
(``serviceRef``, ``baseUrls``: see :mod:`.upstream.pools`) ``deployment`` is ``name@server``: the
server holds the response. Deployment names never contain ``@``, so every earlier id reads as before.
The payload is not encrypted: the routing fields stay readable (:func:`peek`) for operators and
tools without the key. Each kind of id (its prefix) signs with its own key derived from the
signing key, so an id of one kind never verifies as another: :func:`seal` and :func:`unseal` are
the generic layer other owner-bound ids (conversation ids) reuse with their own prefix.

Version 0 ids (issued before ids had owners: ``resp_`` base64url(deployment NUL upstream_id)
base64url(HMAC(signing key, that)[:12])) are accepted only for the anonymous owner, that is when
the caller has no key; see docs/operations.md.
"""

from __future__ import annotations

import binascii
import functools
import hashlib
import hmac
from dataclasses import dataclass

PREFIX = "resp_"
ANONYMOUS = "anonymous"
"""The owner of callers without a key (``spec.auth.allowUnauthenticated``)."""

_VERSION = b"\x01"
_TAG_BYTES = 8
_SIG_BYTES = 12
_SIG_CHARS = 16  # base64 of 12 bytes, no padding
_MAX_ID_CHARS = 1024


@dataclass(frozen=True, slots=True)
class ResponseRef:
    deployment: str
    upstream_id: str


def key_owner(key_name: str, tenant: str | None) -> str:
    """The owner of ids a key creates: its tenant, or the key itself when it has none.

    The kinds are spelled apart (``tenant:``, ``key:``, ``anonymous``) so a key named like a tenant
    never shares that tenant's ids.
    """
    return f"tenant:{tenant}" if tenant else f"key:{key_name}"


_URLSAFE = bytes.maketrans(b"+/", b"-_")
_URLSAFE_DECODE = bytes.maketrans(b"-_", b"+/")
_IPAD = bytes(x ^ 0x36 for x in range(256))  # RFC 2104's pads, as translation tables over the key
_OPAD = bytes(x ^ 0x5C for x in range(256))


def _b64(raw: bytes) -> str:
    """base64url without padding, in C calls only (``base64.urlsafe_b64encode`` is two Python frames)."""
    return binascii.b2a_base64(raw, newline=False).translate(_URLSAFE).rstrip(b"=").decode()


class _Mac:
    """HMAC-SHA256 with the key schedule done once: the inner and outer hashes, keyed.

    Signing an id then costs six calls into OpenSSL and no Python frame (``hmac.HMAC.copy`` and
    ``update`` and ``digest`` are Python methods); this runs for every response the gateway hands out.
    The construction is RFC 2104's, checked against :func:`hmac.digest` by the unit tests.
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > 64:  # the SHA-256 block size
            key = hashlib.sha256(key).digest()
        key = key.ljust(64, b"\0")
        self._inner = hashlib.sha256(key.translate(_IPAD))
        self._outer = hashlib.sha256(key.translate(_OPAD))

    def digest(self, payload: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(payload)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


@functools.lru_cache(maxsize=16)
def _kind_mac(key: bytes, kind: str) -> _Mac:
    # A key per kind of id, derived once, so an id of one kind never verifies as another.
    return _Mac(hmac.digest(key, b"modelgate/id/v1/" + kind.encode(), "sha256"))


@functools.lru_cache(maxsize=16)
def _legacy_mac(key: bytes) -> _Mac:
    return _Mac(key)


@functools.lru_cache(maxsize=16)
def _owner_mac(key: bytes) -> _Mac:
    return _Mac(hmac.digest(key, b"modelgate/owner/v1", "sha256"))


@functools.lru_cache(maxsize=4096)
def owner_tag(key: bytes, owner: str) -> bytes:
    """A short keyed hash of an owner: equal for the same owner and signing key, opaque otherwise.

    Cached: a request looks its caller's tag up once (about 0.1 µs), computing it only on a miss.
    """
    return _owner_mac(key).digest(owner.encode())[:_TAG_BYTES]


def _sig(mac: _Mac, payload: bytes) -> str:
    return _b64(mac.digest(payload)[:_SIG_BYTES])


def seal(key: bytes, prefix: str, owner: bytes, fields: bytes) -> str:
    """An id of kind ``prefix`` carrying ``fields``, signed and bound to the owner tag ``owner``."""
    payload = _VERSION + owner + fields
    return prefix + _b64(payload) + _b64(_kind_mac(key, prefix).digest(payload)[:_SIG_BYTES])  # _sig, inlined


def _split(prefix: str, token: str) -> tuple[bytes, str] | None:
    """The payload and signature of a well-formed id of kind ``prefix`` (signature not checked)."""
    if not token.startswith(prefix) or len(token) > _MAX_ID_CHARS or not token.isascii():
        return None  # (compare_digest refuses non-ASCII strings: that must be a 404, not a 500)
    body = token[len(prefix) :]
    if len(body) <= _SIG_CHARS:
        return None
    encoded, sig = body[:-_SIG_CHARS], body[-_SIG_CHARS:]
    try:
        raw = (encoded + "=" * (-len(encoded) % 4)).encode().translate(_URLSAFE_DECODE)
        return binascii.a2b_base64(raw), sig
    except (binascii.Error, ValueError):
        return None


def unseal(key: bytes, prefix: str, owner: bytes, token: str, *, accept_unowned: bool = False) -> bytes | None:
    """The fields of an id sealed by :func:`seal` with this key, kind and owner; else None.

    Signature and owner are compared in constant time and together, so a genuine id of another
    owner costs and looks the same as a forged one. ``accept_unowned`` also accepts version 0
    ids (no owner, signed with the bare key).
    """
    parts = _split(prefix, token)
    if parts is None:
        return None
    payload, sig = parts
    if payload[:1] == _VERSION:
        signed = hmac.compare_digest(sig, _sig(_kind_mac(key, prefix), payload))
        owned = hmac.compare_digest(payload[1 : 1 + _TAG_BYTES], owner)
        return payload[1 + _TAG_BYTES :] if signed & owned and len(payload) > 1 + _TAG_BYTES else None
    if accept_unowned and hmac.compare_digest(sig, _sig(_legacy_mac(key), payload)):
        return payload
    return None


def _ref(fields: bytes) -> ResponseRef | None:
    deployment, sep, upstream = fields.partition(b"\0")
    if not sep or not deployment or not upstream:
        return None
    try:
        return ResponseRef(deployment.decode(), upstream.decode())
    except UnicodeDecodeError:
        return None


def encode(key: bytes, owner: bytes, deployment: str, upstream_id: str) -> str:
    """The gateway's id for an upstream response, owned by the owner tag ``owner``."""
    return seal(key, PREFIX, owner, deployment.encode() + b"\0" + upstream_id.encode())


def decode(key: bytes, owner: bytes, response_id: str, *, accept_unowned: bool = False) -> ResponseRef | None:
    """The reference inside a gateway id, or None when it is malformed, not signed by ``key``, or
    owned by anyone but ``owner`` (``accept_unowned``: version 0 ids too)."""
    fields = unseal(key, PREFIX, owner, response_id, accept_unowned=accept_unowned)
    return None if fields is None else _ref(fields)


def peek(response_id: str) -> ResponseRef | None:
    """The routing fields of an id, *unverified*: for tools and logs, never for access decisions."""
    parts = _split(PREFIX, response_id)
    if parts is None:
        return None
    payload = parts[0]
    return _ref(payload[1 + _TAG_BYTES :] if payload[:1] == _VERSION else payload)


CONVERSATION_PREFIX = "conv_"


def encode_conversation(key: bytes, owner: bytes, deployment: str, upstream_id: str) -> str:
    """The gateway's id for a conversation held by ``deployment``, owned like response ids."""
    return seal(key, CONVERSATION_PREFIX, owner, deployment.encode() + b"\0" + upstream_id.encode())


def decode_conversation(key: bytes, owner: bytes, conversation_id: str) -> ResponseRef | None:
    """The deployment and upstream id inside a gateway conversation id of this owner, else None.

    Conversation ids were born owner-bound: there are no unowned (version 0) ones to accept.
    """
    fields = unseal(key, CONVERSATION_PREFIX, owner, conversation_id)
    return None if fields is None else _ref(fields)
