"""The webhook server answering real AdmissionReviews over TLS, trusted through the caBundle the
operator's certificate keeper wrote into the webhook configuration (kmock's emulator stands in
for the API server; the HTTPS client is aiohttp's, verifying the certificate and its IP SAN)."""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import jsonpatch
import pytest

from kube_emulator import obj
from modelgate_operator.injection.certstore import ManagedCertificates
from modelgate_operator.injection.client import InjectionClient
from modelgate_operator.injection.runner import Injector
from modelgate_operator.injection.server import WebhookServer
from modelgate_operator.injection.template import SidecarTemplate
from modelgate_operator.kube.client import KubeClient
from modelgate_operator.settings import OperatorSettings
from webhook_kmock import CONFIGURATION, WEBHOOKS, Clock, api_client, declare, webhook_configuration

NAMES = ("modelgate-webhook.modelgate.svc", "127.0.0.1")
TEMPLATE = SidecarTemplate(
    image="ghcr.io/modelgate/gateway:0.1.0", excluded_namespaces=frozenset({"kube-system", "modelgate"})
)
POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"generateName": "app-", "annotations": {"modelgate.dev/inject": "true"}},
    "spec": {"containers": [{"name": "app", "image": "example.com/app:1"}]},
}


def _review(pod: dict[str, Any], uid: str = "b2a1e7c4-0000-4000-8000-000000000001") -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "team-a",
            "operation": "CREATE",
            "object": pod,
        },
    }


class Running:
    def __init__(self, injector: Injector, keeper: ManagedCertificates, emulator: Any, woken: list[str]) -> None:
        self.injector = injector
        self.keeper = keeper
        self.emulator = emulator
        self.woken = woken

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.injector.server.port}"

    def bundle(self, index: int = 0) -> bytes:
        configuration = obj(self.emulator, WEBHOOKS, None, CONFIGURATION)
        assert configuration is not None
        return base64.b64decode(configuration["webhooks"][index]["clientConfig"]["caBundle"])

    def trusting(self, bundle: bytes) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=bundle.decode())


@pytest.fixture()
async def injector(kmock: Any, tmp_path: Path) -> AsyncIterator[Running]:
    declare(kmock)
    async with kmock.request(
        "POST",
        "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
        json=webhook_configuration("https://127.0.0.1:9443"),
    ) as response:
        assert response.status == 200, await response.text()
    api = InjectionClient(KubeClient(OperatorSettings(), api_client(kmock, tmp_path)))
    clock = Clock()
    clock.now -= datetime.timedelta(days=70)  # certificates issued 70 days ago, still valid today
    keeper = ManagedCertificates(api, "modelgate", "modelgate-webhook-tls", CONFIGURATION, NAMES, now=clock)
    woken: list[str] = []
    server = WebhookServer(TEMPLATE, "127.0.0.1", 0, on_injected=woken.append)
    running = Injector(server, keeper, check_seconds=3600)
    running.start()
    await asyncio.wait_for(running.serving.wait(), 10)
    try:
        yield Running(running, keeper, kmock, woken)
    finally:
        await running.stop()


async def _post(url: str, context: ssl.SSLContext, body: Any) -> tuple[int, Any]:
    """One POST on a fresh connection."""
    connector = aiohttp.TCPConnector(ssl=context, force_close=True)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.post(url, json=body, timeout=aiohttp.ClientTimeout(total=10)) as response,
    ):
        return response.status, await response.json()


async def _served_certificate(port: int, context: ssl.SSLContext) -> bytes:
    """The certificate a new TLS connection is served (verified against ``context``)."""
    _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, ssl=context), 10)
    try:
        cert: bytes = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        return cert
    finally:
        writer.close()
        await writer.wait_closed()


async def test_a_pod_review_over_tls_is_answered_with_the_sidecar_patch(injector: Running) -> None:
    status, answer = await _post(
        f"{injector.url}/mutate/pods?timeout=5s", injector.trusting(injector.bundle()), _review(POD)
    )
    assert status == 200
    response = answer["response"]
    assert (response["uid"], response["allowed"], response["patchType"]) == (
        "b2a1e7c4-0000-4000-8000-000000000001",
        True,
        "JSONPatch",
    )
    pod = jsonpatch.apply_patch(POD, json.loads(base64.b64decode(response["patch"])))
    sidecar = pod["spec"]["initContainers"][0]
    assert (sidecar["name"], sidecar["restartPolicy"]) == ("modelgate", "Always")
    assert injector.woken == ["team-a"]


async def test_the_namespace_path_injects_pods_without_the_annotation(injector: Running) -> None:
    pod = {**POD, "metadata": {"name": "plain"}}
    context = injector.trusting(injector.bundle(1))
    _, skipped = await _post(f"{injector.url}/mutate/pods", context, _review(pod))
    _, injected = await _post(f"{injector.url}/mutate/namespace-pods", context, _review(pod))
    assert "patch" not in skipped["response"] and injected["response"]["patchType"] == "JSONPatch"


async def test_every_webhook_of_the_configuration_carries_the_bundle_and_one_ca_is_shared(
    injector: Running, kmock: Any, tmp_path: Path
) -> None:
    assert injector.bundle(0) == injector.bundle(1)
    # A second replica finds the Secret and serves a certificate of the same CA.
    other = ManagedCertificates(
        InjectionClient(KubeClient(OperatorSettings(), api_client(kmock, tmp_path))),
        "modelgate",
        "modelgate-webhook-tls",
        CONFIGURATION,
        NAMES,
        now=injector.keeper.now,
    )
    assert (await asyncio.to_thread(other.current)).certificate == injector.injector.server._certificate


async def test_a_client_that_does_not_trust_the_bundle_is_refused(injector: Running) -> None:
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        await _post(f"{injector.url}/mutate/pods", ssl.create_default_context(), _review(POD))


async def test_a_malformed_review_gets_an_openai_shaped_400(injector: Running) -> None:
    status, answer = await _post(
        f"{injector.url}/mutate/pods", injector.trusting(injector.bundle()), {"kind": "AdmissionReview"}
    )
    assert status == 400
    assert answer["error"]["code"] == "invalid_admission_review"
    assert set(answer["error"]) == {"message", "type", "param", "code"}


async def test_a_renewed_certificate_is_served_to_new_connections_and_still_trusted(injector: Running) -> None:
    port = injector.injector.server.port
    before = await _served_certificate(port, injector.trusting(injector.bundle()))
    clock = injector.keeper.now
    assert isinstance(clock, Clock)
    clock.now = datetime.datetime.now(datetime.UTC)  # past two thirds of the 90-day serving certificate
    await injector.injector.check()
    context = injector.trusting(injector.bundle())
    after = await _served_certificate(port, context)
    _, answer = await _post(f"{injector.url}/mutate/pods", context, _review(POD))
    assert after != before and answer["response"]["allowed"] is True
