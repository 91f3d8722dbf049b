"""The client headers passed on upstream: the configured allowlist (``spec.forwardHeaders``), values checked.

Only headers the OpenAI API defines for behaviour (``OpenAI-Beta`` opts into beta features,
``Idempotency-Key`` makes a retried create safe) are worth passing on; credentials never are (the
config refuses them). A value goes into an upstream request's header block, so it must be plain:
printable ASCII, at most 1024 characters; anything else is left out rather than refused, as a
header the gateway does not understand would be.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

_MAX_VALUE_CHARS = 1024
NONE: tuple[tuple[str, str], ...] = ()


def forwarded(headers: Mapping[str, str], names: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """(name, value) of the allowlisted headers the client sent (none: the shared empty tuple)."""
    found: list[tuple[str, str]] | None = None
    for name in names:
        value = headers.get(name)
        if value and len(value) <= _MAX_VALUE_CHARS and value.isascii() and value.isprintable():
            if found is None:
                found = []
            found.append((name, value))
    return tuple(found) if found else NONE
