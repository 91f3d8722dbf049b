"""kmock's emulator holding what the sidecar injector manages: its TLS Secret and the webhook
configuration whose caBundle it keeps in sync; plus a ``kubernetes`` client pointed at it."""

from __future__ import annotations

import asyncio
import datetime
import ssl
from pathlib import Path
from typing import Any

import kmock
from kubernetes import client, config

from kube_emulator import write_kubeconfig

WEBHOOKS = "admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
CONFIGURATION = "modelgate-sidecar-injector"


def declare(emulator: Any) -> None:
    verbs = {"get", "list", "watch", "create", "patch", "delete"}
    emulator.resources["v1/secrets"] = kmock.ResourceInfo(kind="Secret", namespaced=True, verbs=verbs)
    emulator.resources[WEBHOOKS] = kmock.ResourceInfo(
        kind="MutatingWebhookConfiguration", namespaced=False, verbs=verbs
    )


def api_client(emulator: Any, folder: Path) -> client.ApiClient:
    path = folder / "kubeconfig"
    write_kubeconfig(path, str(emulator.url).rstrip("/"))
    return config.new_client_from_config(config_file=str(path))


def webhook_configuration(url: str) -> dict[str, Any]:
    """Two webhooks, as the chart renders them, without a caBundle (the operator fills it in)."""

    def webhook(name: str, path: str) -> dict[str, Any]:
        return {
            "name": name,
            "clientConfig": {"url": f"{url}{path}"},
            "sideEffects": "NoneOnDryRun",
            "admissionReviewVersions": ["v1"],
            "failurePolicy": "Ignore",
            "timeoutSeconds": 5,
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}],
        }

    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": CONFIGURATION},
        "webhooks": [
            webhook("pods.sidecar.modelgate.dev", "/mutate/pods"),
            webhook("namespace-pods.sidecar.modelgate.dev", "/mutate/namespace-pods"),
        ],
    }


class Clock:
    """A settable clock for certificate lifetimes."""

    def __init__(self) -> None:
        self.now = datetime.datetime.now(datetime.UTC)

    def __call__(self) -> datetime.datetime:
        return self.now


async def served_certificate(port: int, context: ssl.SSLContext) -> bytes:
    """The certificate (DER) a new TLS connection to 127.0.0.1:port is served, verified against ``context``."""
    _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, ssl=context), 10)
    try:
        cert: bytes = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        return cert
    finally:
        writer.close()
        await writer.wait_closed()
