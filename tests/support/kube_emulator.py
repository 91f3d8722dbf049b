"""kmock's Kubernetes emulator set up for ModelGate: resources, kubeconfig, the operator in-process.

The operator runs as an asyncio task in the test's loop (kopf.operator; standalone unless a test
asks for peering);
the blocking ``kubernetes`` client talks to the emulator from kopf's worker threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import kmock
import kopf
import yaml

ROUTES = "modelgate.dev/v1alpha1/modelroutes"
KEYS = "modelgate.dev/v1alpha1/modelgatekeys"
GATEWAY_NS = "modelgate"
CONFIGMAP = "modelgate-gateway-config"
SECRET = "modelgate-gateway-upstream-keys"
CLUSTER_PEERINGS = "kopf.dev/v1/clusterkopfpeerings"
PEERINGS = "kopf.dev/v1/kopfpeerings"


def declare_resources(emulator: Any) -> None:
    info = kmock.ResourceInfo
    res = emulator.resources
    res[ROUTES] = info(
        kind="ModelRoute",
        namespaced=True,
        subresources={"status"},
        verbs={"get", "list", "watch", "create", "patch", "delete"},
    )
    res[KEYS] = info(
        kind="ModelGateKey",
        namespaced=True,
        subresources={"status"},
        verbs={"get", "list", "watch", "create", "patch", "delete"},
    )
    for plural, kind in [("secrets", "Secret"), ("configmaps", "ConfigMap"), ("pods", "Pod"), ("events", "Event")]:
        res[f"v1/{plural}"] = info(
            kind=kind, namespaced=True, verbs={"get", "list", "watch", "create", "patch", "delete"}
        )
    res["apps/v1/deployments"] = info(
        kind="Deployment", namespaced=True, verbs={"get", "list", "watch", "create", "patch"}
    )
    res["v1/namespaces"] = info(kind="Namespace", namespaced=False, verbs={"get", "list", "watch", "create"})
    # kopf's peering resources (the chart ships their CRDs); no status subresource, as there.
    res[CLUSTER_PEERINGS] = info(
        kind="ClusterKopfPeering", namespaced=False, verbs={"get", "list", "watch", "create", "patch"}
    )
    res[PEERINGS] = info(kind="KopfPeering", namespaced=True, verbs={"get", "list", "watch", "create", "patch"})


def _parse_path_with_namespace_list(original: Callable[[str], Any]) -> Callable[[str], Any]:
    from kmock._internal import parsing

    def parse_path(path: str) -> Any:
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "v1"] and parts[2:3] == ["namespaces"] and len(parts) <= 4:
            return parsing.ParsedPath(
                group="", version="v1", plural="namespaces", name=parts[3] if len(parts) == 4 else None
            )
        return original(path)

    return parse_path


def serve_namespace_objects(monkeypatch: Any) -> None:
    """kmock 0.8 parses ``/api/v1/namespaces`` (the Namespace list) as the start of a namespaced
    path and answers 500; kopf in namespaced mode lists and watches Namespaces. Parse those two
    paths as the cluster-scoped ``v1/namespaces`` resource (for the test's duration)."""
    from kmock._internal import parsing

    monkeypatch.setattr(parsing, "parse_path", _parse_path_with_namespace_list(parsing.parse_path))


def write_kubeconfig(path: Path, server: str) -> None:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "kmock",
                "clusters": [{"name": "kmock", "cluster": {"server": server}}],
                "users": [{"name": "kmock", "user": {"token": "kmock-token"}}],
                "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "kmock"}}],
            }
        )
    )


async def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    """Poll an in-memory predicate until it is truthy; fail after ``timeout`` seconds (10: the operator
    debounces and retries, and a loaded two-core machine can take several seconds over it)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        await asyncio.sleep(0.02)


def obj(emulator: Any, resource: str, namespace: str | None, name: str) -> dict[str, Any] | None:
    key = (kmock.resource(resource), namespace, name)
    if key not in emulator.objects or emulator.objects[key].deleted:
        return None
    raw: dict[str, Any] = emulator.objects[key].raw
    return raw


def published_document(emulator: Any, namespace: str = GATEWAY_NS, name: str = CONFIGMAP) -> bytes | None:
    """The config the operator published, assembled from its ConfigMaps as a gateway would
    (None: nothing published, or the set is not complete)."""
    from modelgate_gateway.config.sharding import HEAD_KEY, INDEX_KEY, ConfigIndex, Inconsistent, assemble

    head = obj(emulator, "v1/configmaps", namespace, name)
    if head is None:
        return None
    data = head.get("data") or {}
    if INDEX_KEY not in data:
        return str(data["config.json"]).encode()
    index = ConfigIndex.parse(data[INDEX_KEY])
    parts: dict[str, bytes | None] = {HEAD_KEY: str(data.get(HEAD_KEY, "")).encode()}
    for part in index.shards:
        found = ((obj(emulator, "v1/configmaps", namespace, part.object) or {}).get("data") or {}).get(part.key)
        parts[part.key] = str(found).encode() if found is not None else None
    try:
        return assemble(index, parts)
    except Inconsistent:
        return None


async def api(emulator: Any, method: str, path: str, body: Any = None) -> Any:
    headers = {"Content-Type": "application/merge-patch+json"} if method == "PATCH" else {}
    async with emulator.request(method, path, json=body, headers=headers) as response:
        assert response.status < 300, (method, path, response.status, await response.text())
        return await response.json()


async def create_route(emulator: Any, body: dict[str, Any]) -> None:
    ns = body["metadata"]["namespace"]
    await api(emulator, "POST", f"/apis/modelgate.dev/v1alpha1/namespaces/{ns}/modelroutes", body)


async def create_core(emulator: Any, plural: str, body: dict[str, Any]) -> None:
    ns = body["metadata"]["namespace"]
    await api(emulator, "POST", f"/api/v1/namespaces/{ns}/{plural}", body)


async def create_namespace(emulator: Any, name: str) -> None:
    await api(
        emulator, "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )


class _PassesInFlight:
    """Reconcile passes running in worker threads, so teardown can end them before the emulator.

    A closing event loop waits for its worker threads, and a pass whose request the stopped
    emulator never answers holds the teardown for the client's 10 s request timeout (a pass
    posting 150 Events, as after a burst of 50 routes, takes seconds even when answered).
    Teardown therefore stops the loop, cuts the pass's cluster access (every later call fails
    at once, as an API outage would), and waits for the pass to return.
    """

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def wrap(self, reconciler: Any) -> None:
        original = reconciler.reconcile

        def reconcile() -> Any:
            with self._lock:
                self.count += 1
            try:
                return original()
            finally:
                with self._lock:
                    self.count -= 1

        reconciler.reconcile = reconcile

    async def track(self, memo: kopf.Memo) -> None:
        """Wrap the reconciler once the startup handler has put it into the memo."""
        while memo.get("modelgate_runtime") is None:
            await asyncio.sleep(0.01)
        self.wrap(memo["modelgate_runtime"].reconciler)

    async def stop(self, memo: kopf.Memo, timeout: float = 15.0) -> None:
        runtime = memo.get("modelgate_runtime")
        if runtime is None or runtime.task is None:
            return
        runtime.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runtime.task
        runtime.reconciler.kube = _ClusterGone()
        deadline = time.monotonic() + timeout
        while self.count and time.monotonic() < deadline:
            await asyncio.sleep(0.01)


class _ClusterGone:
    """Stands in for the operator's KubeClient after teardown: every call fails at once."""

    def __getattr__(self, name: str) -> Callable[..., Any]:
        from modelgate_operator.errors import KubeApiError

        def fail(*_: Any, **__: Any) -> Any:
            raise KubeApiError(f"{name}: the test's cluster is gone")

        return fail


@contextlib.asynccontextmanager
async def running_operator(
    settings: Any,
    *,
    kopf_namespaces: tuple[str, ...] = (),
    peering_identity: str | None = None,
    memo: kopf.Memo | None = None,
) -> AsyncIterator[kopf.Memo]:
    """kopf in-process: cluster-wide unless ``kopf_namespaces``; standalone unless
    ``peering_identity`` is given (then it peers through ``settings.peering`` with
    ``settings.priority``, as ``modelgate-operator`` does). Yields the operator's memo."""
    from modelgate_operator import handlers  # noqa: F401  (registers the handlers)

    memo = memo if memo is not None else kopf.Memo()
    memo["operator_settings"] = settings
    peering: dict[str, Any] = {"standalone": True}
    if peering_identity is not None:
        memo["peering_identity"] = peering_identity
        peering = {
            "standalone": False,
            "peering_name": settings.peering,
            "priority": settings.priority,
            "identity": peering_identity,
        }
    scope: dict[str, Any] = {"namespaces": list(kopf_namespaces)} if kopf_namespaces else {"clusterwide": True}
    ready = asyncio.Event()
    passes = _PassesInFlight()
    tracker = asyncio.create_task(passes.track(memo))
    task = asyncio.create_task(kopf.operator(ready_flag=ready, memo=memo, **scope, **peering))
    try:
        await asyncio.wait_for(ready.wait(), 10)
        yield memo
    finally:
        tracker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await tracker
        await passes.stop(memo)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)


@contextlib.asynccontextmanager
async def operator_in_thread(
    settings: Any, *, peering_identity: str, timeout: float = 15.0
) -> AsyncIterator[kopf.Memo]:
    """A peering replica in its own thread and event loop, stopped like a pod (stop flag).

    Why not :func:`running_operator`: when kopf's ``operator()`` ends it cancels every task of
    its event loop created after it started ("hung tasks", ``kopf/_core/reactor/running.py``),
    so stopping one of two replicas sharing the test's loop also kills the other's watchers and
    reconcile loop. A replica that must leave while another carries on runs here instead; the
    emulator stays in the test's loop, so entering and leaving never block that loop.
    """
    from modelgate_operator import handlers  # noqa: F401  (registers the handlers)

    memo = kopf.Memo(operator_settings=settings, peering_identity=peering_identity)
    ready, stop = threading.Event(), threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(
                kopf.operator(
                    ready_flag=ready,
                    stop_flag=stop,
                    memo=memo,
                    clusterwide=True,
                    standalone=False,
                    peering_name=settings.peering,
                    priority=settings.priority,
                    identity=peering_identity,
                )
            )
        except BaseException as exc:  # reported by the test, not lost in the thread
            failure.append(exc)
            ready.set()

    thread = threading.Thread(target=run, name=f"kopf-{peering_identity}", daemon=True)
    thread.start()
    try:
        assert await asyncio.to_thread(ready.wait, timeout), f"{peering_identity} not ready"
        assert not failure, failure
        yield memo
    finally:
        stop.set()
        await asyncio.to_thread(thread.join, timeout)
        assert not thread.is_alive(), f"{peering_identity} did not stop within {timeout}s"
