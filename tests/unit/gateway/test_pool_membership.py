"""A Service's EndpointSlices become a pool's servers: ready ones only, the configured port, live."""

from __future__ import annotations

from typing import Any

from modelgate_gateway import ids
from modelgate_gateway.config import validate_data
from modelgate_gateway.runtime import RuntimeConfig, compile_runtime
from modelgate_gateway.sources.endpointslices import ready_endpoints
from modelgate_gateway.upstream.pools import PoolBoard


def _runtime(port: int | str, path: str = "/v1") -> RuntimeConfig:
    doc = {
        "apiVersion": "config.modelgate.dev/v1alpha1",
        "kind": "GatewayConfig",
        "spec": {
            "deployments": [
                {
                    "name": "vllm",
                    "serviceRef": {"namespace": "models", "name": "llama", "port": port, "path": path},
                    "model": "llama",
                    "loadMetrics": {},
                }
            ],
            "models": [{"name": "llama", "targets": [{"deployment": "vllm"}]}],
        },
    }
    return compile_runtime(validate_data(doc), {}, ".")


def _slice(name: str, endpoints: list[tuple[str, bool | None]], ports: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "addressType": "IPv4",
        "ports": ports,
        "endpoints": [
            {"addresses": [address], **({} if ready is None else {"conditions": {"ready": ready}})}
            for address, ready in endpoints
        ],
    }


HTTP = [{"name": "http", "port": 8000, "protocol": "TCP"}, {"name": "metrics", "port": 9000, "protocol": "TCP"}]


def test_ready_endpoints_skip_not_ready_ones_and_fqdn_slices() -> None:
    slices = [
        _slice("a", [("10.0.0.1", True), ("10.0.0.2", False), ("10.0.0.3", None)], HTTP),
        {**_slice("b", [("llama.example", True)], HTTP), "addressType": "FQDN"},
    ]
    found = ready_endpoints(slices)
    assert [address for address, _ in found] == ["10.0.0.1", "10.0.0.3"]
    assert found[0][1] == (("http", 8000), ("metrics", 9000))


def test_servers_follow_the_service_by_port_name_or_number() -> None:
    for port in ("http", 8000):
        board = PoolBoard()
        board.sync(_runtime(port))
        board.discovered(("models", "llama"), ready_endpoints([_slice("a", [("10.0.0.1", True)], HTTP)]))
        pool = board.get("vllm")
        assert pool is not None
        assert [m.dep.member for m in pool.members] == ["10.0.0.1:8000"]
        assert pool.members[0].dep.endpoint is not None
        assert pool.members[0].dep.endpoint.origin == "http://10.0.0.1:8000"
        assert pool.members[0].dep.endpoint.prefix == "/v1"


def test_a_port_the_slices_do_not_have_gives_no_server() -> None:
    board = PoolBoard()
    board.sync(_runtime("grpc"))
    board.discovered(("models", "llama"), ready_endpoints([_slice("a", [("10.0.0.1", True)], HTTP)]))
    pool = board.get("vllm")
    assert pool is not None and pool.members == ()


def test_a_server_that_stays_keeps_its_load_reading_and_one_that_leaves_is_gone() -> None:
    board = PoolBoard()
    changes: list[int] = []
    board.on_change = lambda: changes.append(1)
    board.sync(_runtime("http"))
    service = ("models", "llama")
    board.discovered(service, ready_endpoints([_slice("a", [("10.0.0.1", True), ("10.0.0.2", True)], HTTP)]))
    pool = board.get("vllm")
    assert pool is not None
    kept = pool.by_member["10.0.0.1:8000"]
    kept.load.waiting = 7.0
    board.discovered(service, ready_endpoints([_slice("a", [("10.0.0.1", True), ("10.0.0.2", False)], HTTP)]))
    pool = board.get("vllm")
    assert pool is not None and list(pool.by_member) == ["10.0.0.1:8000"]
    assert pool.by_member["10.0.0.1:8000"] is kept and kept.load.waiting == 7.0
    assert board.health_keys() == {"vllm@10.0.0.1:8000"}
    assert len(changes) == 2
    board.discovered(service, ready_endpoints([_slice("a", [("10.0.0.1", True), ("10.0.0.2", False)], HTTP)]))
    assert len(changes) == 2  # nothing changed: no change reported


def test_a_reload_keeps_the_discovered_servers_and_names_the_services_to_follow() -> None:
    board = PoolBoard()
    followed: list[set[tuple[str, str]]] = []
    board.on_services = followed.append
    board.sync(_runtime("http"))
    board.discovered(("models", "llama"), ready_endpoints([_slice("a", [("10.0.0.1", True)], HTTP)]))
    board.sync(_runtime("http", path="/openai/v1"))
    pool = board.get("vllm")
    assert pool is not None and pool.members[0].dep.endpoint is not None
    assert pool.members[0].dep.endpoint.prefix == "/openai/v1"
    assert followed == [{("models", "llama")}, {("models", "llama")}]


def test_ids_pin_a_server_and_older_ids_still_decode() -> None:
    key, owner = b"k" * 32, ids.owner_tag(b"k" * 32, "anonymous")
    pinned = ids.encode(key, owner, "vllm@10.0.0.1:8000", "resp_1")
    ref = ids.decode(key, owner, pinned)
    assert ref is not None and ref.deployment == "vllm@10.0.0.1:8000" and ref.upstream_id == "resp_1"
    plain = ids.decode(key, owner, ids.encode(key, owner, "vllm", "resp_2"))
    assert plain is not None and plain.deployment == "vllm"


def test_malformed_slices_are_skipped_not_fatal() -> None:
    junk: list[Any] = [
        "not a slice",
        {"addressType": "IPv4", "ports": "http", "endpoints": {"addresses": ["10.0.0.9"]}},
        {"addressType": "IPv4", "ports": [{"name": "http", "port": "8000"}], "endpoints": [{"addresses": "10.0.0.8"}]},
        {"addressType": "IPv4", "ports": [None], "endpoints": [None, {"conditions": "ready"}]},
        _slice("ok", [("10.0.0.1", True)], HTTP),
    ]
    assert ready_endpoints(junk) == (("10.0.0.1", (("http", 8000), ("metrics", 9000))),)
