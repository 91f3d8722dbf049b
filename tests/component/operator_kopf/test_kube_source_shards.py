"""KubeSource with a sharded config (issue 19, item 6): a complete set or nothing.

The objects are written one at a time into kmock's emulator in every order a gateway may see
them (index before or after the shards it names); the source yields a snapshot only for a set
that matches its index, follows the shards and Secrets the index names, and drops the others.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from kube_emulator import CONFIGMAP, GATEWAY_NS, SECRET, api
from kube_gateway import FAST_WATCH
from many_routes import route_bodies, team_secrets
from modelgate_gateway.config.sharding import INDEX_KEY
from modelgate_gateway.sources.base import ConfigSnapshot
from modelgate_gateway.sources.kube import KubeSource
from modelgate_operator.rendering.layout import Layout, plan
from modelgate_operator.rendering.render import render
from modelgate_operator.rendering.resources import parse_route
from modelgate_operator.settings import OperatorSettings

SETTINGS = OperatorSettings(gateway_namespace=GATEWAY_NS)


def _layout(total: int, skip: int | None = None) -> tuple[Layout, bytes]:
    bodies = [b for i, b in enumerate(route_bodies(total)) if i != skip]
    rendered = render([parse_route(b, "modelgate") for b in bodies], team_secrets(), None,
                      gateway="modelgate", generation=1 if skip is None else 2)
    return plan(rendered, SETTINGS), rendered.document


async def _put(emulator: Any, kind: str, name: str, data: Mapping[str, Any]) -> None:
    plural = "secrets" if kind == "Secret" else "configmaps"
    if kind == "Secret":
        data = {k: base64.b64encode(v).decode() for k, v in data.items()}
    path = f"/api/v1/namespaces/{GATEWAY_NS}/{plural}"
    async with emulator.request("GET", f"{path}/{name}") as response:
        exists = response.status == 200
    if exists:
        await api(emulator, "PATCH", f"{path}/{name}", {"data": dict(data)})
    else:
        await api(emulator, "POST", path, {"apiVersion": "v1", "kind": kind,
                                           "metadata": {"name": name, "namespace": GATEWAY_NS},
                                           "data": dict(data)})


class Reader:
    def __init__(self, source: KubeSource) -> None:
        self.source = source
        self.queue: asyncio.Queue[ConfigSnapshot] = asyncio.Queue()
        self.iterator = source.snapshots()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for snapshot in self.iterator:
            self.queue.put_nowait(snapshot)

    async def next(self, timeout: float = 5.0) -> ConfigSnapshot:
        return await asyncio.wait_for(self.queue.get(), timeout)

    async def nothing_within(self, seconds: float) -> None:
        with pytest.raises(TimeoutError):
            await self.next(timeout=seconds)

    async def following(self, count: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.source._watches) != count:
            assert time.monotonic() < deadline, sorted(self.source._watches)
            await asyncio.sleep(0.01)


@pytest.fixture()
async def reader(emulator: Any) -> AsyncIterator[Reader]:
    reader = Reader(KubeSource(str(emulator.url), "gateway-token", f"{GATEWAY_NS}/{CONFIGMAP}",
                               secret=f"{GATEWAY_NS}/{SECRET}", timing=FAST_WATCH))
    yield reader
    reader.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader.task
    await reader.iterator.aclose()


async def _publish(emulator: Any, layout: Layout, *, index_first: bool = False,
                   between: Any = None) -> None:
    """Write a layout: keys, then shards, then the index (or the index first when asked)."""
    for name, keys in layout.secrets.items():
        await _put(emulator, "Secret", name, keys)
    head, *shards = layout.configmaps.items()
    if index_first:
        await _put(emulator, "ConfigMap", *head)
        if between is not None:
            await between()
    for name, data in shards:
        await _put(emulator, "ConfigMap", name, data)
    if not index_first:
        if between is not None:
            await between()
        await _put(emulator, "ConfigMap", *head)


async def test_a_sharded_set_is_assembled_only_when_complete(emulator: Any, reader: Reader) -> None:
    first, first_doc = _layout(1500)
    assert len(first.index.shards) >= 2
    # A fresh gateway sees the index before the shards it names: nothing until all are there.
    await _publish(emulator, first, index_first=True, between=lambda: reader.nothing_within(0.3))
    snapshot = await reader.next()
    assert snapshot.document == first_doc and snapshot.fmt == "json"
    assert snapshot.keys_grace_seconds > 0
    assert set(snapshot.secrets) == {k for keys in first.secrets.values() for k in keys}
    await reader.following(1 + len(first.index.shards) + 1)

    # One route deleted: one shard changes. Shard first, index last (as the operator writes):
    # the changed shard alone does not match the old index, and the old set is kept.
    second, second_doc = _layout(1500, skip=701)
    changed = [n for n, d in second.configmaps.items() if first.configmaps.get(n) != d]
    assert len(changed) == 2  # the head (index) and one shard
    await _publish(emulator, second, between=lambda: reader.nothing_within(0.3))
    assert (await reader.next()).document == second_doc

    # Back to the first set, index first this time: nothing until the shard matches it.
    await _publish(emulator, first, index_first=True, between=lambda: reader.nothing_within(0.3))
    assert (await reader.next()).document == first_doc


async def test_shards_and_secrets_no_longer_named_are_no_longer_followed(
        emulator: Any, reader: Reader) -> None:
    large, _ = _layout(1500)
    await _publish(emulator, large)
    await reader.next()
    await reader.following(1 + len(large.index.shards) + len(large.secrets))
    small, small_doc = _layout(20)
    assert not small.index.shards and INDEX_KEY in small.configmaps[CONFIGMAP]
    await _publish(emulator, small)
    assert (await reader.next()).document == small_doc
    await reader.following(2)  # the ConfigMap and the Secret


async def test_secrets_named_by_the_index_form_one_store(emulator: Any, reader: Reader) -> None:
    layout, _ = _layout(200)
    keys = dict(layout.secrets[SECRET])
    split = {SECRET: dict(list(keys.items())[:100]), f"{SECRET}-1": dict(list(keys.items())[100:])}
    index = layout.index.__class__(layout.index.checksum, layout.index.generation, layout.index.head,
                                   layout.index.shards, (SECRET, f"{SECRET}-1"))
    head = {**layout.configmaps[CONFIGMAP], INDEX_KEY: index.to_bytes().decode()}
    await _put(emulator, "Secret", SECRET, split[SECRET])
    await _put(emulator, "ConfigMap", CONFIGMAP, head)
    await reader.following(3)
    first = await reader.next()  # the second Secret does not exist yet: half the keys
    assert dict(first.secrets) == split[SECRET]
    await _put(emulator, "Secret", f"{SECRET}-1", split[f"{SECRET}-1"])
    assert dict((await reader.next()).secrets) == keys
