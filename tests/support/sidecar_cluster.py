"""Sidecar mode on the envtest API server: the chart's webhook configuration pointed at an operator
process on 127.0.0.1, scoped to the test's namespaces so tests sharing the server never meet.

The operator runs as ``modelgate-operator`` does in a pod (the chart's environment, its
ServiceAccount and RBAC), with the sidecar template the chart renders; it generates the webhook CA
and writes the caBundle.
"""

from __future__ import annotations

import contextlib
import copy
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chart_helm import render
from gateway_process import free_port
from kube_cluster import ApiError, Cluster
from operator_process import OperatorProcess
from sidecar_process import SidecarProcess

WEBHOOKS_API = "admissionregistration.k8s.io/v1"
RBAC_KINDS = {"ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}


def chart_objects(
    release: str, operator_namespace: str, namespaces: tuple[str, ...], *sets: str
) -> tuple[dict[str, Any], ...]:
    watched = "{" + ",".join(namespaces) + "}"
    return render(
        sets=("sidecar.enabled=true", f"operator.watchNamespaces={watched}", *sets),
        release=release,
        namespace=operator_namespace,
    )


def webhook_configuration(objects: tuple[dict[str, Any], ...], port: int) -> dict[str, Any]:
    """The chart's configuration calling ``https://127.0.0.1:port`` instead of its Service."""
    (found,) = [o for o in objects if o["kind"] == "MutatingWebhookConfiguration"]
    configuration: dict[str, Any] = copy.deepcopy(found)
    for webhook in configuration["webhooks"]:
        path = webhook["clientConfig"]["service"]["path"]
        webhook["clientConfig"] = {"url": f"https://127.0.0.1:{port}{path}"}
    return configuration


def _named(objects: tuple[dict[str, Any], ...], kind: str, suffix: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"].endswith(suffix)]
    return found


class SidecarOperator:
    """The chart rendered for a release of its own (cluster-scoped names stay unique per test):
    its operator RBAC, the sidecar ClusterRole and the webhook configuration applied, and
    ``modelgate-operator`` running with the chart's environment and its ServiceAccount's token, so
    every call it makes goes through the chart's RBAC."""

    def __init__(
        self,
        cluster: Cluster,
        operator_namespace: str,
        namespaces: tuple[str, ...],
        folder: Path,
        *sets: str,
        env: dict[str, str] | None = None,
    ) -> None:
        self.cluster = cluster
        self.namespaces = namespaces
        self.operator_namespace = operator_namespace
        self.release = f"r{operator_namespace[-6:]}"
        self.webhook_port = free_port()
        self.liveness_port = free_port()
        objects = chart_objects(self.release, operator_namespace, namespaces, *sets)
        self.template = json.loads(_named(objects, "ConfigMap", "-sidecar-template")["data"]["sidecar.json"])
        template_path, base_path = folder / "sidecar.json", folder / "base.yaml"
        template_path.write_text(json.dumps(self.template))
        base_path.write_text(_named(objects, "ConfigMap", "-operator-base-config")["data"]["base.yaml"])
        rbac = [
            copy.deepcopy(o)
            for o in objects
            if o["kind"] in RBAC_KINDS
            and ("operator" in o["metadata"]["name"] or o["kind"] == "ClusterRole")
            and not o["metadata"]["name"].endswith("-gateway")
        ]
        cluster.apply_all(
            [*rbac, *(copy.deepcopy(o) for o in objects if o["kind"] == "KopfPeering")], operator_namespace
        )
        configuration = webhook_configuration(objects, self.webhook_port)
        self.configuration = configuration["metadata"]["name"]
        cluster.apply(configuration)
        account = _named(objects, "ServiceAccount", "-operator")["metadata"]["name"]
        token = cluster.service_account_token(operator_namespace, account, create=False)
        kubeconfig = cluster.write_kubeconfig(folder / "operator.kubeconfig", token=token)
        container = _named(objects, "Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0]
        chart_env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
        chart_env.update(
            {
                "POD_NAMESPACE": operator_namespace,
                "POD_ID": f"operator-{self.release}",
                # The chart's debounce (0.5 s) and resync (30 s) stay: "within 2 s of kubectl apply"
                # is measured with them, and pods are followed by their watch events, not a resync.
                "MODELGATE_OPERATOR_BASE_CONFIG": str(base_path),
                "MODELGATE_OPERATOR_LIVENESS_HOST": "127.0.0.1",
                "MODELGATE_OPERATOR_LIVENESS_PORT": str(self.liveness_port),
                "MODELGATE_OPERATOR_SIDECAR_TEMPLATE": str(template_path),
                "MODELGATE_OPERATOR_WEBHOOK_HOST": "127.0.0.1",
                "MODELGATE_OPERATOR_WEBHOOK_PORT": str(self.webhook_port),
                "MODELGATE_OPERATOR_WEBHOOK_EXTRA_NAMES": "127.0.0.1",
                **(env or {}),
            }
        )
        self.process = OperatorProcess(kubeconfig, chart_env)
        self.log = ""
        self.stopped = False

    @property
    def gateway(self) -> str:
        return str(self.template["gateway"])

    def start(self, timeout: float = 30) -> None:
        self.process.start()
        self.process.wait_healthz(f"http://127.0.0.1:{self.liveness_port}/healthz", timeout)
        wait_until(
            lambda: all(w["clientConfig"].get("caBundle") for w in self.read()["webhooks"]),
            timeout,
            "the operator writes the caBundle into every webhook",
        )
        # The API server applies a changed configuration a moment later: a dry-run pod that asks
        # (the webhook is called for dry runs too, sideEffects NoneOnDryRun) shows when it does.
        wait_until(self._injects, timeout, "the API server calls the webhook with the new caBundle")

    def _injects(self) -> bool:
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"generateName": "probe-", "annotations": {"modelgate.dev/inject": "true"}},
            "spec": {"containers": [{"name": "app", "image": "example.com/app:1"}]},
        }
        namespace = next(n for n in self.namespaces if n != self.operator_namespace)
        created = self.cluster.request("POST", f"/api/v1/namespaces/{namespace}/pods?dryRun=All", pod)
        return any(c["name"] == "modelgate" for c in created["spec"].get("initContainers", []))

    def stop(self) -> str:
        """Stop the operator (once); its log."""
        if not self.stopped:
            self.stopped = True
            self.log = self.process.stop()
        return self.log

    def read(self) -> dict[str, Any]:
        return self.cluster.get(WEBHOOKS_API, "MutatingWebhookConfiguration", self.configuration)

    def delete(self) -> None:
        with contextlib.suppress(ApiError):
            self.cluster.request(
                "DELETE", self.cluster.path_of(WEBHOOKS_API, "MutatingWebhookConfiguration", name=self.configuration)
            )


@contextlib.contextmanager
def sidecar_operator(
    cluster: Cluster,
    operator_namespace: str,
    namespaces: tuple[str, ...],
    folder: Path,
    *sets: str,
    env: dict[str, str] | None = None,
) -> Iterator[SidecarOperator]:
    """The operator of :class:`SidecarOperator`, started; ``env`` overrides the chart's environment."""
    injector = SidecarOperator(cluster, operator_namespace, namespaces, folder, *sets, env=env)
    try:
        injector.start()
        yield injector
    finally:
        injector.stop()
        injector.delete()


@contextlib.contextmanager
def fresh_namespaces(
    cluster: Cluster, *hints: str, labels: dict[str, dict[str, str]] | None = None
) -> Iterator[tuple[str, ...]]:
    """One fresh namespace per hint (the first is the operator's), with the controller-manager's
    ``default`` ServiceAccount waited for in the others (pods need it); deleted afterwards."""
    names = tuple(cluster.create_namespace(hint, labels=(labels or {}).get(hint)) for hint in hints)
    try:
        for name in names[1:]:
            cluster.wait_for_service_account(name)
        yield names
    finally:
        for name in names:
            cluster.delete_namespace(name)


def read_or_none(
    cluster: Cluster, api_version: str, kind: str, name: str, namespace: str | None = None
) -> dict[str, Any] | None:
    """The object, or None when the API server says 404."""
    try:
        return cluster.get(api_version, kind, name, namespace)
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise


def wait_until(probe: Any, timeout: float, what: str) -> Any:
    """Poll ``probe`` (bounded) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting until {what}")
        time.sleep(0.05)


def app_deployment(name: str, annotations: dict[str, str] | None = None, replicas: int = 2) -> dict[str, Any]:
    labels = {"app": name}
    template_meta: dict[str, Any] = {"labels": labels}
    if annotations:
        template_meta["annotations"] = annotations
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": template_meta,
                "spec": {"containers": [{"name": "app", "image": "example.com/app:1"}]},
            },
        },
    }


def pods_of(cluster: Cluster, namespace: str, app: str, count: int, timeout: float = 20) -> list[dict[str, Any]]:
    """The ``count`` pods the ReplicaSet controller created for Deployment ``app`` (bounded wait)."""

    def found() -> list[dict[str, Any]] | None:
        items = cluster.request("GET", f"/api/v1/namespaces/{namespace}/pods?labelSelector=app%3D{app}")["items"]
        return items if len(items) >= count else None

    pods: list[dict[str, Any]] = wait_until(found, timeout, f"{count} pods of {namespace}/{app} exist")
    return pods


@contextlib.contextmanager
def injected_sidecar(
    cluster: Cluster, namespace: str, folder: Path, account: str = "chat"
) -> Iterator[tuple[SidecarProcess, dict[str, Any]]]:
    """A one-replica Deployment asking for the sidecar (free loopback ports), its pod as the webhook
    injected it, and a gateway process started as that pod's sidecar with the ServiceAccount's
    token; stopped afterwards. Not waited for: ``process.wait_ready()``."""
    cluster.service_account_token(namespace, account)  # creates the ServiceAccount
    annotations = {
        "modelgate.dev/inject": "true",
        "modelgate.dev/port": str(free_port()),
        "modelgate.dev/admin-port": str(free_port()),
    }
    deployment = app_deployment(account, annotations, replicas=1)
    deployment["spec"]["template"]["spec"]["serviceAccountName"] = account
    cluster.apply(deployment, namespace)
    (pod,) = pods_of(cluster, namespace, account, 1)
    token = cluster.service_account_token(namespace, account, create=False)
    process = SidecarProcess(pod, cluster.write_kubeconfig(folder / f"{account}.kubeconfig", token=token))
    process.start()
    try:
        yield process, pod
    finally:
        process.stop()
