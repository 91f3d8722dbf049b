"""The sidecar part of a reconcile pass: per-namespace documents, their RoleBindings, and rollout.

Runs in the reconciler's worker thread after the shared gateway's part, on the same routes and
Secrets. For every namespace that needs a sidecar document (:func:`..rendering.sidecars.sidecar_namespaces`)
it renders that namespace's document and writes it with the shared gateway's own
:class:`~.committing.Committer` (keys first, index last, pruning only once the namespace's
sidecars serve the new document), binds the sidecar ClusterRole to the injected pods'
ServiceAccounts, and probes the sidecars' ``/readyz``. A namespace that no longer needs one loses
its objects. Neighbours: :mod:`..rendering.sidecars` renders, :mod:`..injection.client` talks to
the API (through the :class:`SidecarApi` protocol, so this module stays free of ``kubernetes``).

Each namespace is its own blast radius: an API call refused in one (a ResourceQuota, a namespace
being deleted) or a document too large for it never stops the others nor the statuses of routes
it does not serve. Its routes say why in their Ready condition, and the pass is retried.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from modelgate_gateway.config import GatewayConfig
from modelgate_gateway.config.sharding import TooLarge

from ..errors import KubeApiError
from ..injection.mutation import SIDECAR_LABEL
from ..injection.pods import service_accounts, sidecar_pod
from ..injection.settings import InjectionSettings
from ..injection.template import SidecarTemplate
from ..kube.objects import PodEndpoint
from ..rendering.layout import CONFIGMAP, SECRET, plan
from ..rendering.render import Rendered, SecretLookup, Verdict
from ..rendering.resources import ModelRoute, RouteKey
from ..rendering.sidecars import SIGNING_KEY, NamespaceKeys, Scope, render_namespace, routes_for, sidecar_namespaces
from ..rendering.sizing import CONFIG_TOO_LARGE, Oversize
from ..settings import OperatorSettings
from .cluster import Store
from .committing import SHARD_LABEL, Committer, Published
from .conditions import Rollout, Withheld
from .rollout import RolloutHistory

logger = logging.getLogger("modelgate_operator")
NOT_PUBLISHED = "SidecarConfigNotPublished"
"""Ready reason of a route whose sidecar namespace's document could not be written."""
Probe = Callable[[Sequence[PodEndpoint], float], list[str | None]]


class SidecarApi(Protocol):
    """The API calls of the sidecar part of a pass (:class:`~..injection.client.InjectionClient`)."""

    def list_pods(self, label_selector: str, namespaces: tuple[str, ...]) -> list[dict[str, Any]]: ...

    def list_secrets(self, label_selector: str, namespaces: tuple[str, ...]) -> list[dict[str, Any]]: ...

    def read_namespace_secret(self, namespace: str, name: str) -> dict[str, bytes] | None: ...

    def store(self, namespace: str, configmap: str, secret: str) -> Store: ...

    def set_role_binding(self, namespace: str, name: str, cluster_role: str, service_accounts: list[str]) -> bool: ...

    def delete_role_binding(self, namespace: str, name: str) -> None: ...


@dataclass(slots=True)
class SidecarPass:
    """What the sidecar part of a pass tells the status writer."""

    rollouts: dict[RouteKey, Rollout] = field(default_factory=dict)
    """Per route: sidecars serving its current generation, out of the sidecars whose namespace
    document contains it (running pods only, as for the shared gateway)."""
    verdicts: dict[RouteKey, Verdict] = field(default_factory=dict)
    """Per route served by sidecars: the verdict in its own namespace's document, else in the
    first namespace it is shared into."""
    rolling_out: bool = False
    namespaces: tuple[str, ...] = ()
    extra_secrets: frozenset[tuple[str, str]] = frozenset()
    """Secrets besides the routes' own whose change must wake the loop (sidecar API keys)."""
    withheld: dict[RouteKey, Withheld] = field(default_factory=dict)
    """Routes rendered into a namespace's document that was not published (too large, or refused
    by the API server): Ready says why."""
    unchanged: set[RouteKey] = field(default_factory=set)
    """Routes of a namespace whose document could not even be rendered (its reads failed): their
    statuses are left as they are until the retry."""
    failed: list[str] = field(default_factory=list)
    """What failed in which namespace; the pass finished the rest and is retried."""


@dataclass(frozen=True, slots=True)
class Inputs:
    """What the shared gateway's part of the pass read: routes in scope, their Secrets, the base."""

    routes: Sequence[ModelRoute]
    secrets: SecretLookup
    base: GatewayConfig | None


def not_served(route: ModelRoute) -> Verdict:
    """The verdict of a route kept off the shared gateway that no sidecar namespace renders."""
    return Verdict(
        accepted=False,
        accepted_reason="NotServed",
        accepted_message=(
            f"spec.sidecars: the route is kept off the shared gateway (sharedGateway: false) and no sidecar serves "
            f"it: attach it to {route.namespace}'s sidecars (attach: true), or share it from a sharing namespace"
        ),
    )


@dataclass(frozen=True, slots=True)
class RouteView:
    """What a route's status is built from, the shared gateway's and the sidecars' parts together."""

    verdict: Verdict
    rollout: Rollout
    withheld: Withheld | None
    sidecars: Rollout | None

    @property
    def rolling_out(self) -> bool:
        """Served, and some gateway pod or sidecar does not serve this generation yet."""
        behind = self.rollout.serving < self.rollout.total or (
            self.sidecars is not None and self.sidecars.serving < self.sidecars.total
        )
        return self.verdict.included and self.withheld is None and behind


def route_view(
    route: ModelRoute,
    shared: Mapping[RouteKey, Verdict],
    rollout: Rollout,
    refused: Oversize | None,
    sidecars: SidecarPass,
) -> RouteView:
    """A route kept off the shared gateway (``sharedGateway: false``) takes its verdict from the
    sidecars' documents, and neither the gateway pods nor a refused gateway document concern it."""
    verdict = shared.get(route.key) or sidecars.verdicts.get(route.key) or not_served(route)
    withheld = None if refused is None else Withheld(CONFIG_TOO_LARGE, refused.route_message(route.key))
    if not route.sidecars.shared_gateway:
        rollout, withheld = Rollout(0, 0), None
    return RouteView(verdict, rollout, withheld or sidecars.withheld.get(route.key), sidecars.rollouts.get(route.key))


class SidecarReconciler:
    """State kept between passes: the sidecar documents' rollout history and first-seen times."""

    def __init__(
        self,
        settings: OperatorSettings,
        injection: InjectionSettings,
        template: SidecarTemplate,
        api: SidecarApi,
        probe: Probe,
    ) -> None:
        self.settings = settings
        self.injection = injection
        self.template = template
        self.api = api
        self.probe = probe
        self.scope = Scope(gateway=settings.gateway_name, sharing=injection.sharing_namespaces)
        self.histories: dict[str, RolloutHistory] = {}
        """Per namespace: the documents it published lately. Not one history for all: a history
        is bounded, and one pass records a document per namespace."""
        self.first_seen: dict[str, tuple[str, float]] = {}
        """Per namespace: its latest document and when this replica first saw it (monotonic), for
        the clean-up deadline."""
        self.committers: dict[str, Committer] = {}
        """One per sidecar namespace, so an unchanged namespace costs one read per pass."""

    def _namespace_settings(self, namespace: str) -> OperatorSettings:
        return dataclasses.replace(
            self.settings, gateway_namespace=namespace, configmap=self.template.configmap, secret=self.template.secret
        )

    def _committer(self, namespace: str) -> Committer:
        if namespace not in self.committers:
            store = self.api.store(namespace, self.template.configmap, self.template.secret)
            self.committers[namespace] = Committer(store, self._namespace_settings(namespace))
        return self.committers[namespace]

    def reconcile(self, inputs: Inputs) -> SidecarPass:
        routes = inputs.routes
        scope = self.settings.namespaces
        pods = [
            p
            for p in (sidecar_pod(b) for b in self.api.list_pods(f"{SIDECAR_LABEL}={self.template.gateway}", scope))
            if p is not None
        ]
        existing = {
            str((b.get("metadata") or {}).get("namespace"))
            for b in self.api.list_secrets(f"{SHARD_LABEL}={self.template.configmap}", scope)
        }
        wanted = sidecar_namespaces(routes, {p.namespace for p in pods}, self.scope.sharing) - {"kube-system"}
        if scope:
            wanted &= set(scope)
        result = SidecarPass(namespaces=tuple(sorted(wanted)))
        accounts = service_accounts(pods)
        if self.template.api_keys_secret:
            result.extra_secrets = frozenset((n, self.template.api_keys_secret) for n in wanted)
        documents: dict[str, Rendered] = {}
        unpublished: dict[str, tuple[Rendered, Withheld]] = {}
        unrendered: set[str] = set()
        checksums: dict[str, list[str | None]] = {}
        for namespace in sorted(wanted):
            running = [p for p in pods if p.namespace == namespace and p.probeable]
            checksums[namespace] = self.probe(
                [PodEndpoint(p.name, str(p.ip), int(p.admin_port or 0)) for p in running],
                self.settings.readyz_timeout_seconds,
            )
            try:
                rendered, published = self._render(namespace, inputs)
            except KubeApiError as exc:
                result.failed.append(f"sidecar config of namespace {namespace}: {exc}")
                unrendered.add(namespace)
                continue
            try:
                self._publish(namespace, rendered, published, accounts.get(namespace, []), checksums[namespace], result)
            except TooLarge as exc:
                logger.error(
                    "sidecar config of namespace %s not published (its sidecars keep the last one): %s", namespace, exc
                )
                why = (
                    f"Not published: the sidecar config of namespace {namespace} is too large ({exc}); its sidecars "
                    "keep the last one."
                )
                unpublished[namespace] = (rendered, Withheld(CONFIG_TOO_LARGE, why))
                continue
            except KubeApiError as exc:
                result.failed.append(f"sidecar config of namespace {namespace}: {exc}")
                why = f"The sidecar config of namespace {namespace} could not be published (retrying): {exc}"
                unpublished[namespace] = (rendered, Withheld(NOT_PUBLISHED, why))
                continue
            documents[namespace] = rendered
        for namespace in sorted(existing - wanted):
            try:
                self._remove(namespace)
            except KubeApiError as exc:
                result.failed.append(f"sidecar objects of namespace {namespace}: {exc}")
        for stale in (set(self.histories) | set(self.committers) | set(self.first_seen)) - wanted:
            # Bounded by the namespaces in use.
            self.histories.pop(stale, None)
            self.committers.pop(stale, None)
            self.first_seen.pop(stale, None)
        self._count(routes, documents, checksums, result)
        self._mark(routes, unpublished, unrendered, result)
        return result

    def _render(self, namespace: str, inputs: Inputs) -> tuple[Rendered, Published]:
        """The namespace's next document, and what is published there now; raises KubeApiError."""
        committer = self._committer(namespace)
        published = committer.read()
        keys = NamespaceKeys(
            signing_key=self._signing_key(committer.store, published), api_keys=self._api_keys(namespace)
        )
        rendered = render_namespace(
            namespace, inputs.routes, inputs.secrets, inputs.base, self.scope, keys, generation=published.generation + 1
        )
        return rendered, published

    def _publish(
        self,
        namespace: str,
        rendered: Rendered,
        published: Published,
        accounts: list[str],
        checksums: list[str | None],
        result: SidecarPass,
    ) -> None:
        """Write the document, bind the pods' ServiceAccounts, clean up once served; raises
        TooLarge (nothing written) or KubeApiError."""
        committer = self._committer(namespace)
        layout = plan(rendered, self._namespace_settings(namespace))
        if committer.write(layout, published) and rendered.checksum != published.checksum:
            logger.info(
                "published sidecar config %s for namespace %s (%d models)",
                rendered.checksum,
                namespace,
                len(rendered.config.spec.models),
            )
        self.histories.setdefault(namespace, RolloutHistory()).record(rendered.checksum, rendered.served)
        if accounts:
            self.api.set_role_binding(namespace, self.injection.cluster_role, self.injection.cluster_role, accounts)
        else:
            self.api.delete_role_binding(namespace, self.injection.cluster_role)
        served = self._served(namespace, rendered.checksum, checksums)
        if committer.clean_up(layout, published.objects, served):
            result.rolling_out = True

    def _signing_key(self, store: Store, published: Published) -> bytes:
        """The namespace's response-id signing key as stored, or a new one (first document)."""
        names = published.index.secrets if published.index is not None else (self.template.secret,)
        for name in names:
            stored = store.read_object(SECRET, name)
            value = stored.data.get(SIGNING_KEY) if stored is not None else None
            if isinstance(value, bytes) and len(value) >= 32:
                return value
        return os.urandom(32)

    def _api_keys(self, namespace: str) -> Mapping[str, bytes] | None:
        if not self.template.api_keys_secret:
            return None
        return self.api.read_namespace_secret(namespace, self.template.api_keys_secret) or {}

    def _served(self, namespace: str, checksum: str, pod_checksums: list[str | None]) -> bool:
        """Every sidecar of the namespace serves ``checksum``, or the rollout deadline passed."""
        now = time.monotonic()
        seen = self.first_seen.get(namespace)
        if seen is None or seen[0] != checksum:
            seen = self.first_seen[namespace] = (checksum, now)
        first = seen[1]
        return all(c == checksum for c in pod_checksums) or now - first >= self.settings.rollout_deadline_seconds

    def _remove(self, namespace: str) -> None:
        """Delete a namespace's sidecar objects: it has no injected pods and no sidecar routes."""
        committer = self.committers.pop(namespace, None) or self._committer(namespace)
        self.committers.pop(namespace, None)
        store, published = committer.store, committer.read()
        objects = published.objects | {(CONFIGMAP, self.template.configmap), (SECRET, self.template.secret)}
        self.api.delete_role_binding(namespace, self.injection.cluster_role)
        for kind, name in sorted(objects, key=lambda o: (o[0] != SECRET, o[1] != self.template.configmap, o[1])):
            store.delete_object(kind, name)
        logger.info("namespace %s needs no sidecar config any more: its sidecar objects are deleted", namespace)

    def _count(
        self,
        routes: Sequence[ModelRoute],
        documents: Mapping[str, Rendered],
        checksums: Mapping[str, list[str | None]],
        result: SidecarPass,
    ) -> None:
        """Per-route sidecar rollout and the verdicts of routes kept off the shared gateway."""
        for route in routes:
            homes = [n for n in sorted(documents) if routes_for(n, [route], self.scope.sharing)]
            serving = total = 0
            for namespace in homes:
                if (route.key, route.generation) in documents[namespace].served:
                    applied = checksums.get(namespace, [])
                    total += len(applied)
                    history = self.histories.get(namespace) or RolloutHistory()
                    serving += history.count(applied, [(route.key, route.generation)])[route.key].serving
            if homes:
                result.rollouts[route.key] = Rollout(serving, total)
            own = route.namespace if route.namespace in homes else (homes[0] if homes else None)
            if own is not None and route.key in documents[own].verdicts:
                result.verdicts[route.key] = documents[own].verdicts[route.key]

    def _mark(
        self,
        routes: Sequence[ModelRoute],
        unpublished: Mapping[str, tuple[Rendered, Withheld]],
        unrendered: set[str],
        result: SidecarPass,
    ) -> None:
        """Routes of namespaces whose document was not published: withheld, with the verdict of
        that document when no published one gave them one; routes of namespaces that could not
        even be rendered keep their status. Then the verdict of sidecar-only routes nobody serves."""
        for route in routes:
            if any(routes_for(n, [route], self.scope.sharing) for n in sorted(unrendered)):
                result.unchanged.add(route.key)
                continue
            for namespace in sorted(unpublished):
                rendered, withheld = unpublished[namespace]
                verdict = rendered.verdicts.get(route.key)
                if verdict is None or not routes_for(namespace, [route], self.scope.sharing):
                    continue
                result.verdicts.setdefault(route.key, verdict)
                if verdict.included:
                    result.withheld.setdefault(route.key, withheld)
            if route.key not in result.verdicts and not route.sidecars.shared_gateway:
                result.verdicts[route.key] = not_served(route)
