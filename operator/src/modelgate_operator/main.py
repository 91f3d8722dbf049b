"""``modelgate-operator``: parse settings once, then hand the process to kopf.

Scope (all namespaces or a list), peering, logging and the liveness endpoint
(``MODELGATE_OPERATOR_LIVENESS_HOST`` / ``_PORT``) are decided here; the handlers live in
:mod:`.handlers`.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import uuid
from collections.abc import Mapping
from typing import Any, cast

import kopf

from .settings import OperatorSettings, SettingsError


def kopf_namespaces(settings: OperatorSettings) -> list[str]:
    """Namespaces kopf watches (empty: all). Gateway pods are listed, never watched."""
    if settings.clusterwide:
        return []
    return sorted(settings.namespaces)


def peering_identity(env: Mapping[str, str]) -> str:
    """kopf's peering identity: the pod name (``POD_ID``, as kopf itself reads it), else a
    unique host/process id. Passed to kopf and to the reconciler, so both mean the same peer."""
    pod = env.get("POD_ID", "").strip()
    return pod or f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # urllib3 retries a failed API call three times and warns about each retry; when the call
    # fails anyway, the reconcile loop says so in one line (and retries with backoff).
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)


def main() -> int:
    configure_logging()
    from .injection.settings import InjectionSettings
    from .injection.template import TemplateError, load_template

    try:
        settings = OperatorSettings.from_env(os.environ)
        injection = InjectionSettings.from_env(os.environ, settings.gateway_name, settings.gateway_namespace)
        # A broken template stops the start, loudly.
        template = load_template(injection.template_path) if injection is not None else None
    except (SettingsError, TemplateError) as exc:
        print(f"modelgate-operator: {exc}", file=sys.stderr)
        return 2
    from . import handlers  # registers the kopf handlers

    if template is not None:
        handlers.watch_sidecar_pods(template.gateway)

    identity = peering_identity(os.environ)
    kopf.run(
        clusterwide=settings.clusterwide,
        namespaces=kopf_namespaces(settings),
        peering_name=settings.peering,
        priority=settings.priority,
        standalone=False,
        identity=cast(Any, identity),  # kopf's Identity is a NewType of str
        liveness_endpoint=settings.liveness_endpoint,
        memo=kopf.Memo(operator_settings=settings, peering_identity=identity, injection_settings=injection),
    )
    return 0


def entrypoint() -> None:
    sys.exit(main())
