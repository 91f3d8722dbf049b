"""``modelgate-operator``: parse settings once, then hand the process to kopf.

Scope (all namespaces or a list), peering and the
liveness endpoint are decided here; the handlers live in :mod:`.handlers`.
"""

from __future__ import annotations

import logging
import os
import sys

import kopf

from .settings import OperatorSettings, SettingsError

# kopf serves /healthz here; the chart's liveness probe points at it.
LIVENESS_ENDPOINT = "http://0.0.0.0:8080/healthz"


def kopf_namespaces(settings: OperatorSettings) -> list[str]:
    """Namespaces kopf watches (empty: all). Gateway pods are listed, never watched."""
    if settings.clusterwide:
        return []
    return sorted(settings.namespaces)


def main() -> int:
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = OperatorSettings.from_env(os.environ)
    except SettingsError as exc:
        print(f"modelgate-operator: {exc}", file=sys.stderr)
        return 2
    from . import handlers  # noqa: F401  (registers the kopf handlers)

    kopf.run(
        clusterwide=settings.clusterwide,
        namespaces=kopf_namespaces(settings),
        peering_name=settings.peering,
        priority=settings.priority,
        standalone=False,
        liveness_endpoint=LIVENESS_ENDPOINT,
        memo=kopf.Memo(operator_settings=settings),
    )
    return 0


def entrypoint() -> None:
    sys.exit(main())
