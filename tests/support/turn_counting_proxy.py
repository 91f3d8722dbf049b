"""A TCP relay on loopback that counts round trips: how often a client spoke again after the server
had answered (a pipeline of commands sent together is one turn, however TCP splits it).

With ``marker``, only turns whose bytes contain it count (e.g. the governance keys' hash tag, so
the background ledger's sweeps on the same Redis are not counted)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from loopback_server import LoopbackServer


@dataclass
class TurnCountingProxy(LoopbackServer):
    target_port: int = 0
    marker: bytes = b""
    turns: int = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
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
        finally:
            up_writer.close()
