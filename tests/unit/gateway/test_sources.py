"""Config sources: the file poller, and preferring the API watch over the mounted file."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

from modelgate_gateway.sources.base import ConfigSnapshot
from modelgate_gateway.sources.files import FileSource
from modelgate_gateway.sources.preferring import PreferringSource


class QueueSource:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[ConfigSnapshot] = asyncio.Queue()
        self.applied: list[str] = []

    async def snapshots(self) -> AsyncIterator[ConfigSnapshot]:
        while True:
            yield await self.queue.get()

    async def report_applied(self, checksum: str) -> None:
        self.applied.append(checksum)


def _snap(text: str) -> ConfigSnapshot:
    return ConfigSnapshot(document=text.encode(), fmt="json", origin=text)


async def test_fallback_serves_until_the_primary_delivers_then_is_ignored() -> None:
    primary, fallback = QueueSource(), QueueSource()
    source = PreferringSource(primary, fallback)
    stream = aiter(source.snapshots())
    fallback.queue.put_nowait(_snap("file-v1"))
    assert (await asyncio.wait_for(anext(stream), 2)).origin == "file-v1"
    primary.queue.put_nowait(_snap("api-v2"))
    assert (await asyncio.wait_for(anext(stream), 2)).origin == "api-v2"
    fallback.queue.put_nowait(_snap("file-v1-late"))  # a kubelet-delayed file must not roll back
    primary.queue.put_nowait(_snap("api-v3"))
    assert (await asyncio.wait_for(anext(stream), 2)).origin == "api-v3"
    await source.report_applied("sha256:x")
    assert primary.applied == ["sha256:x"]
    await stream.aclose()


async def test_file_source_waits_for_the_file_and_notices_secret_changes(tmp_path: Path) -> None:
    config, secrets = tmp_path / "config.yaml", tmp_path / "secrets"
    secrets.mkdir()
    stream = aiter(FileSource(config, secrets, interval_seconds=0.01).snapshots())
    pending = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.05)  # five poll periods: long enough to see that nothing is yielded
    assert not pending.done()  # no file yet: no snapshot, no error
    config.write_text("a: 1\n")
    first = await asyncio.wait_for(pending, 2)
    assert first.document == b"a: 1\n" and first.fmt == "yaml" and first.secrets == {}
    (secrets / "key").write_text("sk-1")
    (secrets / ".hidden").write_text("ignored")
    second = await asyncio.wait_for(anext(stream), 2)
    assert second.secrets == {"key": b"sk-1"} and second.base_dir == str(tmp_path)
    await stream.aclose()
