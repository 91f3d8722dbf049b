"""Session affinity: requests of one session stick to one deployment of their model.

Some state lives with one provider organisation or one server, not in the request: prompt
caches, and the encrypted reasoning and compaction items that clients such as Codex replay in
``input`` (only the organisation that produced them can decrypt them; another answers
``invalid_encrypted_content``). A request that names its session (``prompt_cache_key`` or a
configured client header; a ``conversation`` is pinned to the deployment holding it, like
``previous_response_id``) is therefore sent to the same deployment every time, chosen by
rendezvous (highest-random-weight) hashing over the model's healthy targets:

* every replica computes the same choice from the session and the deployment names alone, with no
  shared store;
* adding or removing a deployment moves only the sessions that rank it first (each session's
  ranking of the other deployments is unchanged);
* weights are respected: a deployment of weight ``w`` is the first choice of a share ``w / sum``
  of the sessions (the logarithmic method: score = w / -ln(u)).

When a session's first choice cannot serve (cooling down, deferred, full, failed in this
request), the next one in its ranking does; if that deployment belongs to another organisation
(``organization`` of the deployments), the organisation-bound items are stripped from ``input``
so the request succeeds there (:func:`strip_org_bound`). Pure: no aiohttp, no I/O.
"""

from __future__ import annotations

import functools
import hashlib
import math
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..runtime import TargetRuntime
from .balancing import HealthBoard, available, claim
from .translation.responses_chatcompletions_input import BRIDGE_COMPACTION_PREFIX

_MAX_SESSION_CHARS = 512
ORG_BOUND_ITEM_TYPES = frozenset({"reasoning", "compaction"})
"""Input items only the producing organisation can use (encrypted reasoning, compaction summaries)."""


def session_of(payload: Mapping[str, Any], headers: Mapping[str, str], header_names: Sequence[str]) -> str | None:
    """The session a create request names, or None: ``prompt_cache_key``, then the first configured
    header present. Kinds are spelled apart so equal strings of two kinds are different sessions."""
    key = payload.get("prompt_cache_key")
    if isinstance(key, str) and key:
        return "k:" + key[:_MAX_SESSION_CHARS]
    for name in header_names:
        value = headers.get(name)
        if value:
            return "h:" + value[:_MAX_SESSION_CHARS]
    return None


_MASK = (1 << 64) - 1
_SPAN = 2.0**64


@functools.lru_cache(maxsize=4096)
def _name_hash(name: str) -> int:
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big")


def _mix(value: int) -> int:
    """MurmurHash3's 64-bit finaliser: every input bit flips about half of the output bits."""
    value ^= value >> 33
    value = (value * 0xFF51AFD7ED558CCD) & _MASK
    value ^= value >> 33
    value = (value * 0xC4CEB9FE1A85EC53) & _MASK
    return value ^ (value >> 33)


@functools.lru_cache(maxsize=4096)
def ranked(session: str, targets: tuple[TargetRuntime, ...]) -> tuple[str, ...]:
    """The session's order of preference over ``targets`` (weighted ones first, then standbys).

    One hash of the session, then per deployment a mix with the (cached) hash of its name: a few
    microseconds for a few deployments, the same on every replica. Cached, as a session sends many
    requests: a repeat costs a lookup (bounded: 4096 sessions, at most 512 characters each).
    """
    if len(targets) == 1:
        return (targets[0].deployment,)
    # CRC-32 of the session (a tenth of BLAKE2b's cost) spread over 64 bits by the mix below: two
    # sessions share a ranking only when their CRCs collide, one pair in four billion.
    key = zlib.crc32(session.encode()) * 0x9E3779B97F4A7C15 & _MASK
    first = targets[0].weight
    equal = all(t.weight == first for t in targets)
    scored: list[tuple[float, str]] = []
    for target in targets:
        unit = (_mix(key ^ _name_hash(target.deployment)) + 0.5) / _SPAN  # uniform in (0, 1)
        if target.weight <= 0:
            score = unit - 2.0  # standbys: below every weighted score, in their own hashed order
        elif equal:
            score = unit  # equal weights: the order of the units is the order of the scores
        else:
            score = target.weight / -math.log(unit)
        scored.append((score, target.deployment))
    scored.sort(reverse=True)
    return tuple(name for _, name in scored)


def pick_for_session(
    order: Sequence[str],
    board: HealthBoard,
    *,
    now: float,
    exclude: frozenset[str] | set[str] = frozenset(),
    capacity: Callable[[str], bool] = lambda _name: True,
) -> str | None:
    """The first deployment of a session's ranking (:func:`ranked`) that can serve now; None when none can.

    Availability is the balancer's (cooldown, Retry-After deferral, capacity, one probe after a
    cooldown). When every candidate is cooling down they are used anyway, in ranking order (the
    balancer's panic mode); deferred or full ones never.
    """
    for name in order:
        if name not in exclude and available(board, name, now, capacity):
            return claim(board, name, now)
    for name in order:
        if name not in exclude and capacity(name) and board.get(name).deferred_until <= now:
            return claim(board, name, now)
    return None


def _org_bound(item: Any, keep_bridge_items: bool) -> bool:
    if not isinstance(item, dict) or item.get("type") not in ORG_BOUND_ITEM_TYPES:
        return False
    content = item.get("encrypted_content")
    # The chat bridge's own compaction items (a summary, not encrypted) are readable by every
    # chat-completions deployment, and by nothing else.
    return not (keep_bridge_items and isinstance(content, str) and content.startswith(BRIDGE_COMPACTION_PREFIX))


def strip_org_bound(raw_input: Any, *, keep_bridge_items: bool = False) -> tuple[list[Any], int] | None:
    """``input`` without the organisation-bound items, and how many were removed; None when it
    has none (the request then goes as it is). ``keep_bridge_items``: the target is a
    chat-completions deployment, which reads the compaction items the gateway made itself."""
    if not isinstance(raw_input, list):
        return None
    kept = [item for item in raw_input if not _org_bound(item, keep_bridge_items)]
    removed = len(raw_input) - len(kept)
    return (kept, removed) if removed else None
