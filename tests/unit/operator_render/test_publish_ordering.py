"""The order the operator writes a config and its keys in (issue 19, items 3 and 6).

Against an in-memory cluster that checks, after every single write or delete, what a gateway
could see at that moment: the last complete set the objects form, and whether the secret store
holds every key that set needs. A gateway never sees a set it would have to reject.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from kube_fake import SECRET, FakeKube
from kube_routes import deployment, mock_deployment, route
from many_routes import route_bodies, team_secrets
from modelgate_gateway.config import parse_config
from modelgate_gateway.config.sharding import Inconsistent
from modelgate_gateway.reloading import referenced_secret_keys
from modelgate_operator.errors import KubeApiError
from modelgate_operator.reconciling.reconciler import Reconciler
from modelgate_operator.settings import OperatorSettings


class Gateway:
    """What a gateway following every object would hold after each change, and what went wrong."""

    def __init__(self, kube: FakeKube) -> None:
        self.kube = kube
        self.document: bytes | None = None
        self.documents: list[bytes] = []
        self.problems: list[str] = []
        kube.after_change.append(self.look)

    def look(self) -> None:
        try:
            document = self.kube.document()
        except (Inconsistent, KeyError):
            document = None  # an incomplete set: the gateway keeps its last good one
        if document is not None and document != self.document:
            self.document = document
            self.documents.append(document)
        if self.document is None:
            return
        config = parse_config(self.document, "json")
        missing = [key for _, key in referenced_secret_keys(config) if key not in self.kube.keys()]
        if missing:
            self.problems.append(f"after {self.kube.log[-1]}: keys {missing} missing")

    def models(self) -> list[str]:
        return [m.name for m in parse_config(self.document or b"", "json").spec.models]


def _reconciler(kube: FakeKube, **settings: Any) -> Reconciler:
    return Reconciler(OperatorSettings(**settings), kube, None, now=lambda: "t",  # type: ignore[arg-type]
                      probe=lambda pods, timeout: list(kube.pod_checksums))


def _keyed(name: str, secret: str) -> dict[str, Any]:
    return route(name, name, deployments=[deployment(secret=secret)])


def test_keys_come_before_the_config_and_go_only_after_it_is_served() -> None:
    kube = FakeKube()
    gateway = Gateway(kube)
    kube.route_secrets = {("default", f"s{i}"): {"api-key": f"sk-{i}".encode()} for i in range(3)}
    reconciler = _reconciler(kube)
    kube.routes = [_keyed("a", "s0")]
    reconciler.reconcile()

    # Add: the key is written before the ConfigMap that needs it.
    kube.log.clear()
    kube.routes = [_keyed("a", "s0"), _keyed("b", "s1")]
    reconciler.reconcile()
    assert kube.log == [("write", "Secret", SECRET), ("write", "ConfigMap", "modelgate-gateway-config")]
    assert gateway.models() == ["a", "b"]
    old = parse_config(gateway.document or b"", "json").metadata.checksum
    kube.pod_checksums = [old, old]

    # Rotate: only the Secret changes.
    kube.log.clear()
    kube.route_secrets[("default", "s1")] = {"api-key": b"sk-1-rotated"}
    assert not reconciler.reconcile().published
    assert kube.log == [("write", "Secret", SECRET)] and kube.keys()["default.b.main"] == b"sk-1-rotated"

    # Delete: the config goes first; the key stays while a pod still serves the old config.
    kube.log.clear()
    kube.routes = [_keyed("a", "s0")]
    result = reconciler.reconcile()
    assert result.published and result.cleaning_up and result.rolling_out
    assert kube.log == [("write", "ConfigMap", "modelgate-gateway-config")]
    assert "default.b.main" in kube.keys() and gateway.models() == ["a"]
    new = parse_config(gateway.document or b"", "json").metadata.checksum
    kube.pod_checksums = [new, old]
    assert reconciler.reconcile().cleaning_up and "default.b.main" in kube.keys()
    kube.pod_checksums = [new, new]
    result = reconciler.reconcile()
    assert not result.cleaning_up and not result.rolling_out
    assert set(kube.keys()) == {"default.a.main"}
    assert not gateway.problems, gateway.problems


def test_a_stuck_pod_keeps_old_keys_only_until_the_rollout_deadline() -> None:
    kube = FakeKube()
    reconciler = _reconciler(kube, rollout_deadline_seconds=0.0)
    kube.routes = [_keyed("a", "openai"), _keyed("b", "openai")]
    reconciler.reconcile()
    kube.pod_checksums = ["sha256:stuck"]
    kube.routes = kube.routes[:1]
    reconciler.reconcile()
    assert set(kube.keys()) == {"default.a.main"}


def test_growing_and_shrinking_shards_never_shows_a_gateway_a_broken_set() -> None:
    kube = FakeKube()
    gateway = Gateway(kube)
    kube.route_secrets = dict(team_secrets())
    reconciler = _reconciler(kube, max_shards=32)
    bodies = route_bodies(3000)
    kube.routes = bodies[:100]
    reconciler.reconcile()
    assert [k for k in kube.objects if k[0] == "ConfigMap"] == [("ConfigMap", "modelgate-gateway-config")]

    kube.routes = bodies  # grows to shards
    reconciler.reconcile()
    shards = sorted(name for kind, name in kube.objects if kind == "ConfigMap")
    assert len(shards) > 2 and gateway.models() == sorted(b["spec"]["model"] for b in bodies)
    checksum = parse_config(gateway.document or b"", "json").metadata.checksum
    kube.pod_checksums = [checksum]
    reconciler.reconcile()

    kube.routes = [*bodies[:100], route("m", "m", deployments=[mock_deployment()])]  # shrinks
    kube.log.clear()
    reconciler.reconcile()
    assert all(verb == "write" for verb, _, _ in kube.log)  # nothing deleted before it is served
    assert gateway.models() == sorted([*(b["spec"]["model"] for b in bodies[:100]), "m"])
    kube.pod_checksums = [parse_config(gateway.document or b"", "json").metadata.checksum]
    reconciler.reconcile()
    assert [k for k in kube.objects if k[0] == "ConfigMap"] == [("ConfigMap", "modelgate-gateway-config")]
    assert kube.objects[("ConfigMap", "modelgate-gateway-config")].annotations["modelgate.dev/objects"] == \
        f"ConfigMap/modelgate-gateway-config,Secret/{SECRET}"
    assert not gateway.problems, gateway.problems
    assert len(gateway.documents) == 3  # small, large, small: nothing in between was complete


@pytest.mark.parametrize("key_bytes", [40, 400])
def test_upstream_keys_spread_over_secrets_when_they_outgrow_one(key_bytes: int) -> None:
    """3,000 keyed routes: 40-byte keys fit one Secret, 400-byte keys (1.3 MB) do not."""
    kube = FakeKube()
    gateway = Gateway(kube)
    kube.route_secrets = {("default", f"s{i}"): {"api-key": f"{i:04d}".encode() * (key_bytes // 4)}
                          for i in range(3000)}
    kube.routes = [_keyed(f"r{i}", f"s{i}") for i in range(3000)]
    reconciler = _reconciler(kube)
    reconciler.reconcile()
    names = sorted(name for kind, name in kube.objects if kind == "Secret")
    assert len(kube.keys()) == 3000
    assert (len(names) > 1) == (key_bytes == 400), names
    assert all(sum(len(v) for v in kube.objects[("Secret", n)].data.values()) <= 256 * 1024 for n in names)
    index = kube.objects[("ConfigMap", "modelgate-gateway-config")].data["index.json"]
    assert all(f'"{name}"' in str(index) for name in names)
    assert not gateway.problems, gateway.problems


def _sharded() -> tuple[FakeKube, Reconciler]:
    """1,500 routes published in shards."""
    kube = FakeKube()
    kube.route_secrets = dict(team_secrets())
    kube.routes = route_bodies(1500)
    reconciler = _reconciler(kube)
    reconciler.reconcile()
    return kube, reconciler


def test_an_unchanged_layout_is_not_read_again_until_someone_else_publishes() -> None:
    kube, reconciler = _sharded()
    shards = sorted(name for kind, name in kube.objects if kind == "ConfigMap")[1:]
    assert len(shards) >= 2
    kube.reads.clear()
    assert not reconciler.reconcile().published
    assert kube.reads == [("ConfigMap", "modelgate-gateway-config")]  # the index, nothing else

    # Another replica publishes (a new generation): everything is read again and repaired.
    head = kube.objects[("ConfigMap", "modelgate-gateway-config")]
    kube.objects[("ConfigMap", "modelgate-gateway-config")] = dataclasses.replace(
        head, annotations={**head.annotations, "modelgate.dev/config-generation": "99"})
    tampered = kube.objects[("ConfigMap", shards[0])]
    kube.objects[("ConfigMap", shards[0])] = dataclasses.replace(
        tampered, data={k: "{}" for k in tampered.data}, annotations={"modelgate.dev/content-hash": "x"})
    kube.reads.clear()
    kube.log.clear()
    assert not reconciler.reconcile().published  # the same set: only the damaged shard is rewritten
    assert ("ConfigMap", shards[0]) in kube.reads
    assert kube.log == [("write", "ConfigMap", shards[0])]
    assert kube.objects[("ConfigMap", shards[0])].data == tampered.data


def test_a_shard_it_may_no_longer_delete_is_left_in_place() -> None:
    """operator.maxConfigShards lowered: RBAC no longer names the old shards; routes still flow."""
    kube, reconciler = _sharded()
    kube.routes = kube.routes[:10]

    def forbidden(kind: str, name: str) -> None:
        raise KubeApiError(f"delete {kind} {name}: HTTP 403 Forbidden")
    kube.delete_object = forbidden  # type: ignore[method-assign]
    result = reconciler.reconcile()
    assert result.published and not result.cleaning_up
    config = kube.config()
    assert config is not None and len(config["spec"]["models"]) == 10
    notes = kube.objects[("ConfigMap", "modelgate-gateway-config")].annotations
    assert notes["modelgate.dev/objects"] == f"ConfigMap/modelgate-gateway-config,Secret/{SECRET}"
