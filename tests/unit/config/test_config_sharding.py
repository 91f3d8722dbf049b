"""Sharded configs: split by the operator, assembled by the gateway, never mixed.

Figures (render, split, assemble, bytes per change) are printed with ``-s``; docs/operations.md
quotes them.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from many_routes import route_bodies, route_body, team_secrets
from modelgate_gateway.config import parse_config
from modelgate_gateway.config.sharding import (
    HEAD_KEY,
    ConfigIndex,
    Inconsistent,
    IndexUnreadable,
    Part,
    assemble,
    bucket_count,
    looks_like_index,
    sha256_hex,
    shard_key,
    split_document,
)
from modelgate_gateway.runtime import compile_runtime
from modelgate_operator.rendering.render import Rendered, render
from modelgate_operator.rendering.resources import parse_route

TARGET, LIMIT = 256 * 1024, 1_000_000


def _render(bodies: list[dict[str, Any]]) -> Rendered:
    routes = [parse_route(b, "modelgate") for b in bodies]
    return render(routes, team_secrets(), None, gateway="modelgate", generation=1)


def _index(rendered: Rendered, head: bytes, shards: tuple[bytes, ...]) -> ConfigIndex:
    return ConfigIndex(rendered.checksum, 1, Part("cm", HEAD_KEY, sha256_hex(head)),
                       tuple(Part(f"cm-{b}", shard_key(b), sha256_hex(s)) for b, s in enumerate(shards)))


def _parts(head: bytes, shards: tuple[bytes, ...]) -> dict[str, bytes | None]:
    return {HEAD_KEY: head, **{shard_key(b): s for b, s in enumerate(shards)}}


def _split(rendered: Rendered, max_shards: int = 32) -> tuple[bytes, tuple[bytes, ...]]:
    split = split_document(json.loads(rendered.document), first_routed=rendered.base_entries,
                           target=TARGET, limit=LIMIT, max_shards=max_shards)
    return split.head, split.shards


@pytest.mark.parametrize("total", [1000, 10_000])
def test_a_large_config_splits_and_assembles_to_the_same_bytes(total: int) -> None:
    bodies = route_bodies(total)
    started = time.perf_counter()
    rendered = _render(bodies)
    rendered_at = time.perf_counter()
    head, shards = _split(rendered)
    split_at = time.perf_counter()
    document = assemble(_index(rendered, head, shards), _parts(head, shards))
    assembled_at = time.perf_counter()
    assert document == rendered.document
    config = parse_config(document, "json")
    runtime = compile_runtime(config, rendered.secret_data, ".")
    compiled_at = time.perf_counter()
    assert len(runtime.models) == total
    assert len(rendered.document) > 300 * total
    assert all(len(s) <= TARGET for s in shards) and len(head) < 1000
    print(f"\n{total} routes: {len(rendered.document):,} bytes in {len(shards)} shards "
          f"(largest {max(map(len, shards)):,}); operator: render {rendered_at - started:.2f}s, "
          f"split {split_at - rendered_at:.2f}s; gateway: assemble {assembled_at - split_at:.2f}s, "
          f"validate and compile {compiled_at - assembled_at:.2f}s")

    # One route more: one shard changes (the head only through its checksum and generation).
    after = _render([*bodies, route_body(total, total + 1)])
    head2, shards2 = _split(after)
    changed = [b for b, (old, new) in enumerate(zip(shards, shards2, strict=True)) if old != new]
    assert len(shards2) == len(shards) and len(changed) == 1
    written = len(head2) + sum(len(shards2[b]) for b in changed)
    print(f"{total} routes: one route added rewrites {written:,} bytes "
          f"({written / len(after.document):.1%} of the config)")
    assert written < TARGET + 1000


def test_small_configs_are_one_object_the_whole_document() -> None:
    rendered = _render(route_bodies(50))
    head, shards = _split(rendered)
    assert shards == () and head == rendered.document
    assert assemble(_index(rendered, head, shards), _parts(head, shards)) == rendered.document


def test_a_set_mixing_generations_is_never_assembled() -> None:
    bodies = route_bodies(1500)
    old = _render(bodies)
    old_head, old_shards = _split(old)
    new = _render([*bodies[:701], *bodies[702:]])  # one route deleted (nobody falls back to it)
    new_head, new_shards = _split(new)
    changed = [b for b, (a, c) in enumerate(zip(old_shards, new_shards, strict=True)) if a != c]
    assert len(changed) == 1
    index = _index(new, new_head, new_shards)
    # The index arrived before the shard it changed: wait.
    stale = _parts(new_head, new_shards) | {shard_key(changed[0]): old_shards[changed[0]]}
    with pytest.raises(Inconsistent, match="does not match the index yet"):
        assemble(index, stale)
    # A shard is missing (not created or not mounted yet): wait.
    with pytest.raises(Inconsistent, match="is missing"):
        assemble(index, _parts(new_head, new_shards) | {shard_key(0): None})
    # The shard arrived before the index: the old index still describes the old set only.
    with pytest.raises(Inconsistent):
        assemble(_index(old, old_head, old_shards), _parts(old_head, new_shards))
    # Even parts that match their hashes must assemble to the index's checksum.
    forged = ConfigIndex(old.checksum, 1, index.head, index.shards)
    with pytest.raises(Inconsistent, match="checksum"):
        assemble(forged, _parts(new_head, new_shards))
    assert assemble(index, _parts(new_head, new_shards)) == new.document


def test_base_entries_stay_in_the_head() -> None:
    rendered = _render(route_bodies(1200))
    data = json.loads(rendered.document)
    base_dep = {"name": "house/mock", "provider": "mock", "model": "m"}
    base_model = {"name": "zzz-house", "targets": [{"deployment": "house/mock"}]}
    data["spec"]["deployments"].insert(0, base_dep)
    data["spec"]["models"].insert(0, base_model)
    split = split_document(data, first_routed=(1, 1), target=TARGET, limit=LIMIT, max_shards=32)
    head = json.loads(split.head)
    assert head["spec"]["deployments"] == [base_dep] and head["spec"]["models"] == [base_model]
    assert b"house/mock" not in b"".join(split.shards)


def test_doubling_the_buckets_moves_each_group_to_one_place() -> None:
    groups = {f"ns/r{i}": i * 2654435761 % 2**64 for i in range(1000)}
    for group, value in groups.items():
        for count in (1, 2, 4, 8, 16):
            assert value & (2 * count - 1) in (value & (count - 1), (value & (count - 1)) + count), group
    sizes = dict.fromkeys(groups, 1000)
    assert bucket_count(groups, sizes, 0, target=300_000, limit=LIMIT, max_buckets=32) == 4
    assert bucket_count(groups, sizes, 0, target=10_000, limit=LIMIT, max_buckets=32) == 32
    assert bucket_count(groups, sizes, 0, target=10_000, limit=20_000, max_buckets=8) is None
    assert bucket_count(groups, sizes, 0, target=10_000, limit=LIMIT, max_buckets=20) == 16


def test_index_round_trip_and_errors() -> None:
    index = ConfigIndex("sha256:ab", 7, Part("cm", HEAD_KEY, "00"), (Part("cm-0", shard_key(0), "11"),),
                        ("keys", "keys-1"))
    raw = index.to_bytes()
    assert looks_like_index(raw) and not looks_like_index(b'{"apiVersion": "x", "kind": "GatewayConfig"}')
    assert ConfigIndex.parse(raw) == index
    for bad in (b"not json", b'{"kind": "GatewayConfigIndex"}', b"[]",
                raw.replace(b'"head":{', b'"head":{"x":1,"y":'),
                raw.replace(b'"key":"config-0.json"', b'"key":"../../etc/passwd"'),
                raw.replace(b'"key":"config-0.json"', b'"key":"..data"')):
        with pytest.raises(IndexUnreadable):
            ConfigIndex.parse(bad)
