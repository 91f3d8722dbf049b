"""cert-manager mode: the operator serves the certificate the kubelet mounted, and a renewed one
(the files replaced, as the kubelet updates a Secret volume) from the next check on, without a
restart; both chain to the CA the caBundle holds."""

from __future__ import annotations

import asyncio
import datetime
import ssl
from pathlib import Path

from modelgate_operator.injection.certs import CA_CERT, TLS_CERT, TLS_KEY, Lifetimes, plan
from modelgate_operator.injection.certstore import MountedCertificates
from modelgate_operator.injection.runner import Injector
from modelgate_operator.injection.server import WebhookServer
from modelgate_operator.injection.template import SidecarTemplate
from webhook_kmock import served_certificate

NAMES = ("127.0.0.1",)


def _mount(folder: Path, data: dict[str, bytes]) -> None:
    """Write the Secret's files the way the kubelet swaps a volume: new files, then a rename."""
    for key in (TLS_CERT, TLS_KEY):
        staged = folder / f".{key}.new"
        staged.write_bytes(data[key])
        staged.replace(folder / key)


async def test_a_renewed_mounted_certificate_is_served_from_the_next_check(tmp_path: Path) -> None:
    now = datetime.datetime.now(datetime.UTC)
    first = plan({}, NAMES, now - datetime.timedelta(days=61), Lifetimes())  # still valid, renewal due
    renewed = plan(first, NAMES, now, Lifetimes())  # same CA, new serving certificate
    assert renewed[CA_CERT] == first[CA_CERT] and renewed[TLS_CERT] != first[TLS_CERT]
    _mount(tmp_path, first)
    injector = Injector(
        WebhookServer(SidecarTemplate(image="x"), "127.0.0.1", 0), MountedCertificates(str(tmp_path)), 3600
    )
    injector.start()
    try:
        await asyncio.wait_for(injector.serving.wait(), 10)
        trusting = ssl.create_default_context(cadata=first[CA_CERT].decode())
        before = await served_certificate(injector.server.port, trusting)
        _mount(tmp_path, renewed)
        await injector.check()
        after = await served_certificate(injector.server.port, trusting)
    finally:
        await injector.stop()
    assert before != after
    assert ssl.DER_cert_to_PEM_cert(after).strip() == renewed[TLS_CERT].decode().strip()
