"""Sidecar mode on the envtest API server: the chart's webhook configuration pointed at an operator
process on 127.0.0.1, scoped to the test's namespaces so tests sharing the server never meet.

The operator runs as ``modelgate-operator`` does in a pod (settings from the environment), with
the sidecar template the chart renders; it generates the webhook CA and writes the caBundle.
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chart_helm import find, render
from gateway_process import free_port
from kube_cluster import ApiError, Cluster
from operator_process import OperatorProcess

WEBHOOKS_API = "admissionregistration.k8s.io/v1"


def chart_objects(namespaces: tuple[str, ...], *sets: str) -> tuple[dict[str, Any], ...]:
    watched = "{" + ",".join(namespaces) + "}"
    return render(sets=("sidecar.enabled=true", f"operator.watchNamespaces={watched}", *sets))


def webhook_configuration(objects: tuple[dict[str, Any], ...], name: str, port: int) -> dict[str, Any]:
    """The chart's configuration, renamed and calling ``https://127.0.0.1:port`` instead of the Service."""
    configuration = json.loads(json.dumps(find(objects, "MutatingWebhookConfiguration",
                                               "modelgate-sidecar-injector")))
    configuration["metadata"] = {"name": name}
    for webhook in configuration["webhooks"]:
        path = webhook["clientConfig"]["service"]["path"]
        webhook["clientConfig"] = {"url": f"https://127.0.0.1:{port}{path}"}
    return configuration


def sidecar_template(objects: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(find(objects, "ConfigMap", "modelgate-sidecar-template")["data"]["sidecar.json"])
    return data


class SidecarOperator:
    """The chart's webhook configuration in the cluster and an operator process serving it."""

    def __init__(self, cluster: Cluster, operator_namespace: str, namespaces: tuple[str, ...], folder: Path) -> None:
        self.cluster = cluster
        self.namespaces = namespaces
        self.operator_namespace = operator_namespace
        self.configuration = f"modelgate-sidecar-injector-{secrets.token_hex(3)}"
        self.webhook_port = free_port()
        self.liveness_port = free_port()
        objects = chart_objects(namespaces)
        self.template = sidecar_template(objects)
        template_path = folder / "sidecar.json"
        template_path.write_text(json.dumps(self.template))
        cluster.apply(webhook_configuration(objects, self.configuration, self.webhook_port))
        self.process = OperatorProcess(cluster.kubeconfig, {
            "MODELGATE_OPERATOR_NAMESPACES": ",".join(namespaces),
            "MODELGATE_OPERATOR_GATEWAY_NAMESPACE": operator_namespace,
            "MODELGATE_OPERATOR_PEERING": f"mg-{operator_namespace}",
            "MODELGATE_OPERATOR_DEBOUNCE_SECONDS": "0.1",
            "MODELGATE_OPERATOR_LIVENESS_HOST": "127.0.0.1",
            "MODELGATE_OPERATOR_LIVENESS_PORT": str(self.liveness_port),
            "MODELGATE_OPERATOR_SIDECAR_TEMPLATE": str(template_path),
            "MODELGATE_OPERATOR_WEBHOOK_CONFIGURATION": self.configuration,
            "MODELGATE_OPERATOR_WEBHOOK_HOST": "127.0.0.1",
            "MODELGATE_OPERATOR_WEBHOOK_PORT": str(self.webhook_port),
            "MODELGATE_OPERATOR_WEBHOOK_EXTRA_NAMES": "127.0.0.1",
        })
        self.log = ""
        self.stopped = False

    def start(self, timeout: float = 30) -> None:
        self.process.start()
        self.process.wait_healthz(f"http://127.0.0.1:{self.liveness_port}/healthz", timeout)
        wait_until(lambda: all(w["clientConfig"].get("caBundle") for w in self.read()["webhooks"]), timeout,
                   "the operator writes the caBundle into every webhook")
        # The API server applies a changed configuration a moment later: a dry-run pod that asks
        # (the webhook is called for dry runs too, sideEffects NoneOnDryRun) shows when it does.
        wait_until(self._injects, timeout, "the API server calls the webhook with the new caBundle")

    def _injects(self) -> bool:
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"generateName": "probe-", "annotations": {"modelgate.dev/inject": "true"}},
               "spec": {"containers": [{"name": "app", "image": "example.com/app:1"}]}}
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

    def ca_bundle(self) -> bytes:
        return base64.b64decode(self.read()["webhooks"][0]["clientConfig"]["caBundle"])

    def delete(self) -> None:
        with contextlib.suppress(ApiError):
            self.cluster.request("DELETE", self.cluster.path_of(WEBHOOKS_API, "MutatingWebhookConfiguration",
                                                                name=self.configuration))


@contextlib.contextmanager
def sidecar_operator(cluster: Cluster, operator_namespace: str, namespaces: tuple[str, ...],
                     folder: Path) -> Iterator[SidecarOperator]:
    injector = SidecarOperator(cluster, operator_namespace, namespaces, folder)
    try:
        injector.start()
        yield injector
    finally:
        injector.stop()
        injector.delete()


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
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": template_meta,
                                  "spec": {"containers": [{"name": "app", "image": "example.com/app:1"}]}}}}


def pods_of(cluster: Cluster, namespace: str, app: str, count: int, timeout: float = 20) -> list[dict[str, Any]]:
    """The ``count`` pods the ReplicaSet controller created for Deployment ``app`` (bounded wait)."""
    def found() -> list[dict[str, Any]] | None:
        items = cluster.request("GET", f"/api/v1/namespaces/{namespace}/pods?labelSelector=app%3D{app}")["items"]
        return items if len(items) >= count else None
    pods: list[dict[str, Any]] = wait_until(found, timeout, f"{count} pods of {namespace}/{app} exist")
    return pods
