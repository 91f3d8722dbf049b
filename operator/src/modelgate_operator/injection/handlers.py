"""kopf start-up and clean-up of the sidecar injector (registered when :mod:`..main` imports it).

Does nothing unless sidecar mode is on (``MODELGATE_OPERATOR_SIDECAR_TEMPLATE``).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import kopf

from ..publishing import load_client_config
from ..settings import OperatorSettings
from .certstore import ManagedCertificates, MountedCertificates
from .kubeapi import InjectionApi
from .runner import CertificateSource, Injector, waker
from .server import WebhookServer
from .settings import InjectionSettings
from .template import load_template

_INJECTOR = "modelgate_injector"


def build_injector(settings: InjectionSettings, memo: Any) -> Injector:
    template = load_template(settings.template_path, frozenset({settings.namespace}))
    server = WebhookServer(template, settings.host, settings.port, on_injected=waker(memo, "modelgate_runtime"))
    certificates: CertificateSource
    if settings.cert_dir is not None:
        certificates = MountedCertificates(settings.cert_dir)
    else:
        certificates = ManagedCertificates(InjectionApi(), settings.namespace, settings.tls_secret,
                                           settings.configuration, settings.names)
    return Injector(server, certificates, settings.check_seconds)


@kopf.on.startup()
async def start_injector(memo: kopf.Memo, **_: Any) -> None:
    settings = memo.get("injection_settings")
    if not isinstance(settings, InjectionSettings):
        ours = memo.get("operator_settings")
        if not isinstance(ours, OperatorSettings):
            ours = OperatorSettings.from_env(os.environ)
        settings = InjectionSettings.from_env(os.environ, ours.gateway_name, ours.gateway_namespace)
    if settings is None:
        return
    await asyncio.to_thread(load_client_config)  # idempotent; the client is built right below
    injector = build_injector(settings, memo)
    memo[_INJECTOR] = injector
    injector.start()


@kopf.on.cleanup()
async def stop_injector(memo: kopf.Memo, **_: Any) -> None:
    injector = memo.get(_INJECTOR)
    if isinstance(injector, Injector):
        await injector.stop()
