"""The client WebSockets open on this process: counted per key, and closed by the drain.

A socket is long-lived and mostly idle, so it is not a request in :class:`.draining.InFlight`
(the drain would wait its whole grace period for every idle socket). Its turns are. On SIGTERM
:meth:`OpenSockets.drain` tells every socket to take no new turn: an idle one closes at once with
1001 (going away), a busy one after its turns end, which the drain waits for (and cuts at the end
of the grace period, like any request). Clients reconnect to another replica.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol


class Session(Protocol):
    """What the registry needs of one socket's session."""

    key_name: str

    def drain(self) -> None:
        """Take no new turn; close with 1001 once the turns in flight ended."""


class OpenSockets:
    __slots__ = ("_by_key", "_closed", "_sessions", "draining")

    def __init__(self) -> None:
        self._sessions: set[Session] = set()
        self._by_key: dict[str, int] = {}
        self._closed: asyncio.Event | None = None
        self.draining = False

    def __len__(self) -> int:
        return len(self._sessions)

    def admit(self, session: Session, cap: int | None) -> bool:
        """Count a new socket of its key; False (and not counted) when the key has ``cap`` open."""
        count = self._by_key.get(session.key_name, 0)
        if cap is not None and count >= cap:
            return False
        self._by_key[session.key_name] = count + 1
        self._sessions.add(session)
        return True

    def remove(self, session: Session) -> None:
        if session not in self._sessions:
            return
        self._sessions.discard(session)
        left = self._by_key[session.key_name] - 1
        if left:
            self._by_key[session.key_name] = left
        else:
            del self._by_key[session.key_name]
        if not self._sessions and self._closed is not None:
            self._closed.set()

    def drain(self) -> None:
        """SIGTERM: every socket closes (1001) once its turns ended; new ones are refused (503)."""
        self.draining = True
        for session in list(self._sessions):
            session.drain()

    async def wait_closed(self, seconds: float) -> bool:
        """True once no socket is open; False when ``seconds`` passed first."""
        if not self._sessions:
            return True
        closed = self._closed = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(seconds, 0.0)):
                await closed.wait()
        return not self._sessions
