"""FileSource with a sharded config mounted as one directory (a projected volume of ConfigMaps).

The kubelet refreshes each ConfigMap of a projected volume from its own cache, so the index and
the shards on disk can come from different moments: the source delivers only a set matching
its index and keeps quiet otherwise. A kubelet-mounted secrets directory is re-read only when
its ``..data`` link moves.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest

from many_routes import route_bodies, team_secrets
from modelgate_gateway.config.sharding import INDEX_KEY
from modelgate_gateway.sources.base import ConfigSnapshot
from modelgate_gateway.sources.files import FileSource, SecretsDir
from modelgate_operator.rendering.layout import Layout, plan
from modelgate_operator.rendering.render import render
from modelgate_operator.rendering.resources import parse_route
from modelgate_operator.settings import OperatorSettings


def _layout(total: int, skip: int | None = None) -> tuple[Layout, bytes]:
    bodies = [b for i, b in enumerate(route_bodies(total)) if i != skip]
    rendered = render([parse_route(b, "modelgate") for b in bodies], team_secrets(), None,
                      gateway="modelgate", generation=1)
    return plan(rendered, OperatorSettings()), rendered.document


def _files(layout: Layout) -> dict[str, str]:
    """What a projected volume of every ConfigMap of the layout holds (key -> content)."""
    return {key: value for data in layout.configmaps.values() for key, value in data.items()}


def _write(directory: Path, files: Mapping[str, str]) -> None:
    for name, text in files.items():
        (directory / name).write_text(text)


@pytest.fixture
async def stream(tmp_path: Path) -> AsyncIterator[AsyncIterator[ConfigSnapshot]]:
    source = FileSource(tmp_path / INDEX_KEY, tmp_path / "secrets", interval_seconds=0.01)
    iterator = source.snapshots()
    yield iterator
    await iterator.aclose()  # type: ignore[attr-defined]


async def _nothing(stream: AsyncIterator[ConfigSnapshot], task: asyncio.Future[ConfigSnapshot]) -> None:
    await asyncio.sleep(0.05)  # five poll periods: long enough to see that nothing is yielded
    assert not task.done()


async def test_only_a_complete_set_is_delivered(tmp_path: Path, stream: AsyncIterator[ConfigSnapshot]) -> None:
    (tmp_path / "secrets").mkdir()
    first, first_doc = _layout(1500)
    files = _files(first)
    assert len(files) >= 4  # index, head and two or more shards
    pending = asyncio.ensure_future(anext(stream))
    _write(tmp_path, {INDEX_KEY: files[INDEX_KEY]})  # the index before its parts
    await _nothing(stream, pending)
    _write(tmp_path, {k: v for k, v in files.items() if k != INDEX_KEY})
    snapshot = await asyncio.wait_for(pending, 2)
    assert snapshot.document == first_doc and snapshot.keys_grace_seconds > 0

    second, second_doc = _layout(1500, skip=701)
    changed = {k: v for k, v in _files(second).items() if files.get(k) != v}
    assert set(changed) >= {INDEX_KEY, "config.json"} and len(changed) == 3
    shard = next(k for k in changed if k not in (INDEX_KEY, "config.json"))
    pending = asyncio.ensure_future(anext(stream))
    _write(tmp_path, {shard: changed[shard]})  # a shard newer than the index: keep the last set
    await _nothing(stream, pending)
    _write(tmp_path, {INDEX_KEY: changed[INDEX_KEY]})  # the index, but the head is still old
    await _nothing(stream, pending)
    _write(tmp_path, {"config.json": changed["config.json"]})
    assert (await asyncio.wait_for(pending, 2)).document == second_doc


async def test_a_plain_document_still_works_next_to_no_index(tmp_path: Path) -> None:
    layout, document = _layout(20)
    (tmp_path / "config.json").write_text(layout.configmaps["modelgate-gateway-config"]["config.json"])
    iterator = FileSource(tmp_path / "config.json", None, interval_seconds=0.01).snapshots()
    snapshot = await asyncio.wait_for(anext(iterator), 2)
    assert snapshot.document == document and snapshot.keys_grace_seconds == 0
    await iterator.aclose()  # type: ignore[attr-defined]


def test_a_kubelet_secrets_volume_is_read_again_only_after_its_swap(tmp_path: Path) -> None:
    def version(n: int, keys: dict[str, str]) -> None:
        target = tmp_path / f"..v{n}"
        target.mkdir()
        for key, value in keys.items():
            (target / key).write_text(value)
            if not (tmp_path / key).is_symlink():
                (tmp_path / key).symlink_to(f"..data/{key}")
        (tmp_path / "..tmp").symlink_to(target.name)
        os.replace(tmp_path / "..tmp", tmp_path / "..data")

    version(1, {"a": "1"})
    secrets = SecretsDir(tmp_path)
    assert secrets.read() == {"a": b"1"}
    (tmp_path / "..v1" / "a").write_text("changed behind the kubelet's back")
    assert secrets.read() == {"a": b"1"}  # same ..data target: the last read stands
    version(2, {"a": "2", "b": "3"})
    assert secrets.read() == {"a": b"2", "b": b"3"}
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "k").write_text("x")
    direct = SecretsDir(plain)
    assert direct.read() == {"k": b"x"}
    (plain / "k").write_text("y")
    assert direct.read() == {"k": b"y"}
