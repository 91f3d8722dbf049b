"""A TCP relay on loopback that counts round trips: how often a client spoke again after the server
had answered (a pipeline of commands sent together is one turn, however TCP splits it).

With ``marker``, only turns whose bytes contain it count (e.g. the governance keys' hash tag, so
the background ledger's sweeps on the same Redis are not counted)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field


@dataclass
class TurnCountingProxy:
    target_port: int
    marker: bytes = b""
    turns: int = 0
    port: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def __aenter__(self) -> TurnCountingProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), timeout=5)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.target_port), timeout=5)
        answered = [True]  # a connection's first bytes start a turn
        counted = [False]

        async def client_to_server() -> None:
            while data := await reader.read(65536):
                if answered[0]:
                    answered[0] = counted[0] = False
                if not counted[0] and self.marker in data:
                    self.turns += 1
                    counted[0] = True
                up_writer.write(data)
                await up_writer.drain()

        async def server_to_client() -> None:
            while data := await up_reader.read(65536):
                answered[0] = True
                writer.write(data)
                await writer.drain()

        try:
            await asyncio.gather(client_to_server(), server_to_client())
        except ConnectionError:
            pass
        finally:
            writer.close()
            up_writer.close()
            self._tasks.discard(task)
