"""Whether kopf peering pauses this replica, decided from the peering objects' status.

kopf pauses only its watch streams when a peer with a higher (or the same) priority is alive;
the reconcile loop also runs on its own (the first pass at startup, the periodic resync,
rollout polling), so each pass asks this module first and a standby replica writes nothing.
The rule is kopf's own (``kopf/_core/engines/peering.py``): every entry of the peering object's
``status`` is ``identity -> {priority, lifetime, lastseen}``; an entry is alive until
``lastseen + lifetime``; any other live entry with a priority >= ours pauses us. A missing
peering object pauses nobody (kopf then keeps running too). Pure: no I/O.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from typing import Any

_DEFAULT_LIFETIME = 60  # kopf's default, also used when an entry has none


def _lastseen(raw: Any, now: datetime.datetime) -> datetime.datetime:
    if not isinstance(raw, str):
        return now
    try:
        seen = datetime.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return now
    return seen if seen.tzinfo else seen.replace(tzinfo=datetime.UTC)


def blocking_peers(statuses: Iterable[Mapping[str, Any]], identity: str, priority: int,
                   now: datetime.datetime) -> list[str]:
    """Identities of live peers (not us) whose priority is >= ours, sorted; empty = act."""
    found = set()
    for status in statuses:
        for peer, info in status.items():
            if peer == identity or not isinstance(info, Mapping):
                continue
            try:
                peer_priority = int(info.get("priority", 0))
                lifetime = int(info.get("lifetime", _DEFAULT_LIFETIME))
            except (TypeError, ValueError):
                continue
            deadline = _lastseen(info.get("lastseen"), now) + datetime.timedelta(seconds=lifetime)
            if deadline > now and peer_priority >= priority:
                found.add(peer)
    return sorted(found)
