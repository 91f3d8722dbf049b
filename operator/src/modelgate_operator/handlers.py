"""kopf decorators only: wire cluster events to the level-triggered reconcile loop.

Event handlers never render or write; they decide whether something relevant changed and wake
the loop (:mod:`.reconciler`), which re-renders the whole set. While kopf peering pauses this
replica, no events arrive; the loop's own passes (startup, resync) check the peering objects and
write nothing (:mod:`.peering`). Statuses and Events come from the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf

from .errors import BaseConfigError
from .injection.client import InjectionClient
from .injection.mutation import SIDECAR_LABEL
from .injection.pods import pod_fingerprint
from .injection.runner import Injector, build_injector
from .injection.settings import InjectionSettings
from .injection.template import load_template
from .keys.client import KeyClient
from .keys.reconciling import Keys
from .keys.resources import PLURAL as KEY_PLURAL
from .kube.client import KubeClient, load_client_config
from .kube.probing import probe_all
from .reconciling.reconciler import Reconciler, base_config_reporter, load_base, run_loop
from .reconciling.sidecars import SidecarReconciler
from .rendering.resources import GROUP, PLURAL, VERSION
from .settings import OperatorSettings

_SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"  # noqa: S105
_SEEN_MAX = 100_000
"""Most fingerprints :class:`Runtime` keeps (routes, keys, referenced Secrets, injected pods)."""


@dataclass(slots=True)
class Runtime:
    """Per-process state, kept in kopf's memo (never at module level)."""

    settings: OperatorSettings
    reconciler: Reconciler
    wakeup: asyncio.Event
    task: asyncio.Task[None] | None = None
    injector: Injector | None = None
    """Sidecar mode: the admission webhook (every replica serves it; peering does not apply)."""
    seen: dict[tuple[str, str, str], str] = field(default_factory=dict)

    @staticmethod
    def _entry(kind: str, body: Mapping[str, Any], fingerprint: Any) -> tuple[tuple[str, str, str], str]:
        meta = body.get("metadata") or {}
        key = (kind, str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        return key, hashlib.sha256(json.dumps(fingerprint, sort_keys=True, default=str).encode()).hexdigest()

    def is_news(self, kind: str, body: Mapping[str, Any], fingerprint: Any) -> bool:
        """The object's fingerprint differs from the one remembered (nothing is remembered here).

        After standing by for a peer, kopf's re-listing on resume must wake the loop even for
        objects seen before: the peer may have published meanwhile.
        """
        key, value = self._entry(kind, body, fingerprint)
        return self.seen.get(key) != value or self.reconciler.paused

    def changed(self, kind: str, body: Mapping[str, Any], fingerprint: Any) -> bool:
        """Remember the object's fingerprint; True (and wake the loop) when it is news."""
        if not self.is_news(kind, body, fingerprint):
            return False
        key, value = self._entry(kind, body, fingerprint)
        if len(self.seen) >= _SEEN_MAX and key not in self.seen:
            # Bounded: an object deleted while the watch was down never sends DELETED (pods
            # churn). Forgetting everything costs at most one extra wake-up per object.
            self.seen.clear()
        self.seen[key] = value
        self.wakeup.set()
        return True

    def forget(self, kind: str, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        self.seen.pop((kind, str(meta.get("namespace") or ""), str(meta.get("name") or "")), None)
        self.wakeup.set()


def _runtime(memo: Any) -> Runtime:
    runtime = memo.get("modelgate_runtime")
    if not isinstance(runtime, Runtime):
        raise kopf.TemporaryError("the operator is still starting", delay=1)
    return runtime


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """Service account in a pod, $KUBECONFIG elsewhere (read at login time, not import time)."""
    if os.path.exists(_SERVICE_ACCOUNT_TOKEN):
        return kopf.login_with_service_account(**kwargs)
    return kopf.login_with_kubeconfig(**kwargs)


@kopf.on.startup()
async def startup(memo: kopf.Memo, settings: kopf.OperatorSettings, **_: Any) -> None:
    """Build the reconciler and start its loop; the first pass publishes the current set."""
    ours = memo.get("operator_settings")
    if not isinstance(ours, OperatorSettings):
        ours = OperatorSettings.from_env(os.environ)
    # The reconciler posts its own Events for condition changes; kopf's per-handler log
    # Events would only add noise.
    settings.posting.level = logging.WARNING
    await asyncio.to_thread(load_client_config)
    kube = KubeClient(ours)
    report = base_config_reporter(kube)
    try:
        base = load_base(ours, on_refused=report)
    except BaseConfigError as exc:  # a deployment mistake: fail loudly instead of serving less
        await asyncio.to_thread(report, str(exc))
        raise kopf.PermanentError(str(exc)) from exc
    identity = memo.get("peering_identity")  # set by main.py; absent in standalone runs
    injection = memo.get("injection_settings")
    if not isinstance(injection, InjectionSettings):
        injection = InjectionSettings.from_env(os.environ, ours.gateway_name, ours.gateway_namespace)
    sidecars, client = None, InjectionClient(kube)
    if injection is not None:
        template = load_template(injection.template_path, frozenset({injection.namespace}))
        sidecars = SidecarReconciler(ours, injection, template, client, probe_all)
        # Only this release's injected pods reach the operator (filtered by the API server).
        settings.watching.label_selectors["", "v1", "pods"] = f"{SIDECAR_LABEL}={template.gateway}"
    reconciler = Reconciler(
        ours,
        kube,
        base,
        peering_identity=identity if isinstance(identity, str) else None,
        keys=Keys(KeyClient(kube), ours),
        sidecars=sidecars,
    )
    runtime = Runtime(settings=ours, reconciler=reconciler, wakeup=asyncio.Event())
    runtime.task = asyncio.create_task(run_loop(runtime.reconciler, runtime.wakeup))
    memo["modelgate_runtime"] = runtime
    runtime.wakeup.set()
    if injection is not None and sidecars is not None:
        # A pod just injected may need its namespace's document and RoleBinding: wake the loop.
        runtime.injector = build_injector(injection, sidecars.template, client, lambda _namespace: runtime.wakeup.set())
        runtime.injector.start()


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    runtime = memo.get("modelgate_runtime")
    if isinstance(runtime, Runtime) and runtime.injector is not None:
        await runtime.injector.stop()
    if isinstance(runtime, Runtime) and runtime.task is not None:
        runtime.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runtime.task


@kopf.on.event(GROUP, VERSION, PLURAL)
async def route_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Any change of a route's spec, generation or deletion state wakes the loop.

    Status-only changes (our own writes) keep the fingerprint and are ignored.
    """
    runtime = _runtime(memo)
    if runtime.settings.namespaces and body.metadata.namespace not in runtime.settings.namespaces:
        return
    if event.get("type") == "DELETED":
        runtime.forget("route", body)
        return
    meta = body.get("metadata") or {}
    runtime.changed(
        "route",
        body,
        [body.get("spec"), meta.get("generation"), meta.get("deletionTimestamp"), meta.get("creationTimestamp")],
    )


@kopf.on.event(GROUP, VERSION, KEY_PLURAL)
async def key_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """A ModelGateKey's spec changed or it went away: re-render (statuses are the loop's writes)."""
    runtime = _runtime(memo)
    if runtime.settings.namespaces and body.metadata.namespace not in runtime.settings.namespaces:
        return
    if event.get("type") == "DELETED":
        runtime.forget("key", body)
        return
    meta = body.get("metadata") or {}
    runtime.changed("key", body, [body.get("spec"), meta.get("generation"), meta.get("deletionTimestamp")])


def _referenced_secret(body: kopf.Body, memo: kopf.Memo, **_: Any) -> bool:
    """kopf's filter for Secret events: only Secrets some route or key references are handled.

    Filtered here, not in the handler: kopf logs every handled event at INFO ("Handler
    'secret_event' succeeded."), which for an operator watching Secrets cluster-wide would be one
    line per Secret change anywhere in the cluster. The loop's passes read the referenced Secrets
    anyway, so an event filtered before the first pass loses nothing.
    """
    runtime = memo.get("modelgate_runtime")
    meta = body.get("metadata") or {}
    return isinstance(runtime, Runtime) and (meta.get("namespace"), meta.get("name")) in runtime.reconciler.referenced


@kopf.on.event("", "v1", "secrets", when=_referenced_secret)
async def secret_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """A Secret some route references was created, changed or deleted."""
    runtime = _runtime(memo)
    if event.get("type") == "DELETED":
        runtime.forget("secret", body)
        return
    runtime.changed("secret", body, body.get("data"))


def _pod_news(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> bool:
    """kopf's filter for injected pods' events: only those that change what a pass reads of the
    pod, or its deletion. Most events of a running pod (a container's restart count, probes'
    timestamps) change nothing here, and kopf logs every handled event at INFO."""
    runtime = memo.get("modelgate_runtime")
    if not isinstance(runtime, Runtime) or kwargs.get("type") == "DELETED":
        return True
    return runtime.is_news("pod", body, pod_fingerprint(body))


async def sidecar_pod_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """An injected pod appeared, changed what a pass reads of it, or went away: its namespace may
    need a document, a RoleBinding subject, a new rollout count, or nothing any more."""
    runtime = _runtime(memo)
    if event.get("type") == "DELETED":
        runtime.forget("pod", body)
        return
    runtime.changed("pod", body, pod_fingerprint(body))


def watch_sidecar_pods(gateway: str, registry: kopf.OperatorRegistry | None = None) -> None:
    """Sidecar mode only: handle the events of the pods injected for ``gateway``.

    Registered by :func:`.main.main` when sidecar mode is on, not by a decorator: without it the
    operator has no RBAC on pods beyond listing the gateway's own, and must not watch them.
    Besides this client-side filter, :func:`startup` sets the same label as the server-side
    selector of the pod watch, so other pods never reach the operator at all.
    """
    kopf.on.event("", "v1", "pods", labels={SIDECAR_LABEL: gateway}, when=_pod_news, registry=registry)(
        sidecar_pod_event
    )
