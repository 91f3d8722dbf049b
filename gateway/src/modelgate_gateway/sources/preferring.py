"""Combine a fast primary source (the Kubernetes API) with a fallback (the mounted file).

The fallback serves until the primary has delivered once; after that only the primary counts,
so a kubelet-delayed file can never roll the gateway back to an older document.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from .base import ConfigSnapshot, ConfigSource


class PreferringSource:
    def __init__(self, primary: ConfigSource, fallback: ConfigSource) -> None:
        self.primary = primary
        self.fallback = fallback

    async def snapshots(self) -> AsyncIterator[ConfigSnapshot]:
        queue: asyncio.Queue[tuple[bool, ConfigSnapshot]] = asyncio.Queue(maxsize=16)

        async def pump(source: ConfigSource, primary: bool) -> None:
            async for snapshot in source.snapshots():
                await queue.put((primary, snapshot))

        tasks = [asyncio.create_task(pump(self.primary, True)), asyncio.create_task(pump(self.fallback, False))]
        primary_seen = False
        try:
            while True:  # ends when the consumer stops iterating
                primary, snapshot = await queue.get()
                if primary:
                    primary_seen = True
                    if not tasks[1].done():
                        tasks[1].cancel()
                elif primary_seen:
                    continue
                yield snapshot
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def report_applied(self, checksum: str) -> None:
        await self.primary.report_applied(checksum)

    def wake(self) -> None:
        self.primary.wake()
        self.fallback.wake()
