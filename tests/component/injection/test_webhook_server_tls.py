"""The webhook server answering real AdmissionReviews over TLS, trusted through the caBundle the
operator's certificate keeper wrote into the webhook configuration (kmock's emulator stands in
for the API server; the HTTPS client is aiohttp's, verifying the certificate and its IP SAN)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
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
from webhook_kmock import CONFIGURATION, WEBHOOKS, Clock, api_client, declare, served_certificate, webhook_configuration

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


async def _configuration(kmock: Any) -> None:
    """The webhook configuration as the chart installs it (no caBundle)."""
    async with kmock.request(
        "POST",
        "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
        json=webhook_configuration("https://127.0.0.1:9443"),
    ) as response:
        assert response.status == 200, await response.text()


@contextlib.asynccontextmanager
async def _running(kmock: Any, tmp_path: Path, issued_days_ago: int) -> AsyncIterator[Running]:
    """An injector whose certificates were first issued ``issued_days_ago`` (its clock starts there)."""
    declare(kmock)
    await _configuration(kmock)
    api = InjectionClient(KubeClient(OperatorSettings(), api_client(kmock, tmp_path)))
    clock = Clock()
    clock.now -= datetime.timedelta(days=issued_days_ago)
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


@pytest.fixture()
async def injector(kmock: Any, tmp_path: Path) -> AsyncIterator[Running]:
    async with _running(kmock, tmp_path, issued_days_ago=70) as running:  # still valid today
        yield running


async def _post(url: str, context: ssl.SSLContext, body: Any) -> tuple[int, Any]:
    """One POST on a fresh connection."""
    connector = aiohttp.TCPConnector(ssl=context, force_close=True)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.post(url, json=body, timeout=aiohttp.ClientTimeout(total=10)) as response,
    ):
        return response.status, await response.json()


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
    before = await served_certificate(port, injector.trusting(injector.bundle()))
    clock = injector.keeper.now
    assert isinstance(clock, Clock)
    clock.now = datetime.datetime.now(datetime.UTC)  # past two thirds of the 90-day serving certificate
    await injector.injector.check()
    context = injector.trusting(injector.bundle())
    after = await served_certificate(port, context)
    _, answer = await _post(f"{injector.url}/mutate/pods", context, _review(POD))
    assert after != before and answer["response"]["allowed"] is True


async def test_a_ca_rotation_keeps_the_ca_bundle_in_sync_and_every_step_trusted(kmock: Any, tmp_path: Path) -> None:
    """The live path of a CA rotation (one check per step, as the injector's periodic check does):
    the successor CA reaches every webhook's caBundle before it signs anything, so the API server
    trusts the serving certificate at every step even with the bundle it read one step before;
    a caBundle reset by someone else (a re-applied manifest) is written back by the next check."""
    # The CA (365 days) was made 250 days ago: its successor is due at half its life (day 182),
    # the switch at two thirds (day 243). Certificates issued at each step are valid today.
    async with _running(kmock, tmp_path, issued_days_ago=250) as running:
        clock = running.keeper.now
        assert isinstance(clock, Clock)
        today = datetime.datetime.now(datetime.UTC)
        first = running.bundle()
        assert first.count(b"BEGIN CERTIFICATE") == 1

        clock.now = today - datetime.timedelta(days=60)  # day 190: the successor is announced
        await running.injector.check()
        announced = running.bundle()
        assert announced == running.bundle(1) and announced.count(b"BEGIN CERTIFICATE") == 2
        assert announced.startswith(first.strip())
        for trusted in (first, announced):  # the old CA still signs: trusted with either bundle
            _, answer = await _post(f"{running.url}/mutate/pods", running.trusting(trusted), _review(POD))
            assert answer["response"]["allowed"] is True

        clock.now = today  # day 250: the successor signs, the old CA stays in the bundle
        await running.injector.check()
        rotated = running.bundle()
        assert rotated == running.bundle(1) and rotated.count(b"BEGIN CERTIFICATE") == 2 and rotated != announced
        with pytest.raises(ssl.SSLCertVerificationError):  # served by the new CA, not the first one
            await served_certificate(running.injector.server.port, running.trusting(first))
        for trusted in (announced, rotated):
            _, answer = await _post(f"{running.url}/mutate/pods", running.trusting(trusted), _review(POD))
            assert answer["response"]["allowed"] is True

        # The chart's manifest forced in again (`kubectl replace --force`): no caBundle.
        async with kmock.request(
            "DELETE", f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{CONFIGURATION}"
        ) as response:
            assert response.status == 200, await response.text()
        await _configuration(kmock)
        with pytest.raises(KeyError):
            running.bundle()
        await running.injector.check()
        assert running.bundle() == running.bundle(1) == rotated
