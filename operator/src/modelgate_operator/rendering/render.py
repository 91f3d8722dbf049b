"""Pure rendering: ModelRoutes + resolved Secrets + base document -> the gateway's config.

No I/O and no clock: the same input gives the same bytes. Every route gets a :class:`Verdict`;
a broken route is left out and the others are still rendered. The output passes the gateway's
own validation (:func:`modelgate_gateway.config.validate_data`) before it is returned.
Neighbours: :mod:`.resources` parses the input, :mod:`.publishing` writes the output.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import ValidationError

from modelgate_gateway.config import (
    API_VERSION,
    KIND,
    ConfigError,
    ConfigIssue,
    Deployment,
    GatewayConfig,
    Model,
    canonical_json,
    config_to_data,
    spec_checksum,
    validate_data,
)

from ..errors import BaseConfigError
from .resources import ModelRoute, RouteKey
from .sizing import OBJECT_BUDGET_BYTES, ROUTE_TOO_LARGE

ROUTE_BUDGET_BYTES = OBJECT_BUDGET_BYTES - 100
"""A route's entries must fit one shard with its envelope (``{"deployments":[…],"models":[…]}``)."""

RENDERED_BY = "modelgate-operator"
SecretData = Mapping[str, bytes]
SecretLookup = Mapping[tuple[str, str], SecretData | None]
"""(namespace, Secret name) -> the Secret's decoded data, or None when it does not exist."""

# Secret keys allow [-._a-zA-Z0-9] up to 253 characters; namespaces and deployment names are
# DNS labels (no dots), so "<ns>.<route>.<deployment>" is unambiguous.
_MAX_SECRET_KEY = 253


@dataclass(frozen=True, slots=True)
class Verdict:
    """What rendering decided about one route; conditions are built from it."""

    accepted: bool = True
    accepted_reason: str = "Accepted"
    accepted_message: str = "The route is valid and owns its model name."
    resolved: bool = True
    resolved_reason: str = "ResolvedRefs"
    resolved_message: str = "All Secret references and fallbacks resolve."
    deployments: tuple[str, ...] = ()
    missing_fallbacks: tuple[str, ...] = ()
    """Fallback models no served route (nor the base config) provides: the route is served
    without them (degraded), never left out for them."""

    @property
    def included(self) -> bool:
        return self.accepted and self.resolved

    @property
    def degraded(self) -> bool:
        return self.included and bool(self.missing_fallbacks)


@dataclass(frozen=True, slots=True)
class Rendered:
    """The rendered document and everything the publisher and the status writer need."""

    config: GatewayConfig
    document: bytes
    checksum: str
    secret_data: Mapping[str, bytes]
    verdicts: Mapping[RouteKey, Verdict]
    served: frozenset[tuple[RouteKey, int]] = field(default_factory=frozenset)
    """(route, generation) pairs present in this document; rollout status compares against it."""
    base_entries: tuple[int, int] = (0, 0)
    """How many leading deployments and models come from the base config (the rest are routes')."""
    data: Mapping[str, Any] = field(default_factory=dict)
    """``document`` as plain data (spares parsing it again to split it into shards)."""


def deployment_name(route: ModelRoute, deployment: str) -> str:
    """Rendered deployment name: ``<namespace>/<route>/<deployment>``, stable across renders."""
    return f"{route.namespace}/{route.name}/{deployment}"


def secret_store_key(route: ModelRoute, deployment: str) -> str:
    """Key in the gateway's upstream-keys Secret holding one deployment's API key."""
    key = f"{route.namespace}.{route.name}.{deployment}"
    if len(key) <= _MAX_SECRET_KEY:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()[:40]
    return f"{route.namespace}.{digest}"


def referenced_secrets(routes: Iterable[ModelRoute]) -> set[tuple[str, str]]:
    """Every (namespace, name) of a Secret some route references, in the route's namespace."""
    return {
        (route.namespace, dep.api_key.name) for route in routes for dep in route.deployments if dep.api_key is not None
    }


@dataclass(slots=True)
class _Entry:
    route: ModelRoute
    verdict: Verdict
    deployments: list[dict[str, Any]] = field(default_factory=list)
    model: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Built:
    """What :func:`_build` made of one route, given the Secrets it references."""

    route: ModelRoute
    secrets: tuple[tuple[tuple[str, str], SecretData | None], ...]
    verdict: Verdict
    deployments: list[dict[str, Any]]
    model: dict[str, Any]
    keys: dict[str, bytes]


BuildCache = dict[int, _Built]
"""Built routes by ``id`` of the parsed route (kept alive by the entry): with thousands of
routes, validating every route's entries again on each render costs seconds, and one change
leaves all the others as they were."""


def _build_cached(entry: _Entry, secrets: SecretLookup, max_bytes: int, cache: BuildCache | None) -> None:
    """:func:`_build`, reusing the last result for the same parsed route and Secret contents."""
    route = entry.route
    used = tuple(sorted((ref, secrets.get(ref)) for ref in referenced_secrets([route])))
    found = cache.get(id(route)) if cache is not None else None
    if found is not None and found.route is route and found.secrets == used:
        entry.verdict, entry.deployments, entry.model, entry.secrets = (
            found.verdict,
            found.deployments,
            found.model,
            found.keys,
        )
        return
    _build(entry, secrets, max_bytes)
    if cache is not None:
        cache[id(route)] = _Built(route, used, entry.verdict, entry.deployments, entry.model, entry.secrets)


def _check_services(entry: _Entry, readable: frozenset[str]) -> None:
    """A serviceRef pool in a namespace whose EndpointSlices the gateway may not read would have no
    servers: say so on the route (and leave it out) instead of serving 502s."""
    namespace = entry.route.namespace
    if not entry.verdict.included or namespace in readable:
        return
    for index, data in enumerate(entry.deployments):
        if "serviceRef" in data:
            _unresolved(
                entry,
                "ServiceNotReadable",
                f"spec.deployments[{index}].serviceRef: the gateway may not read EndpointSlices in namespace "
                f"{namespace} (add it to the chart's gateway.rbac.endpointSliceNamespaces)",
            )
            return


def _reject(entry: _Entry, reason: str, message: str) -> None:
    entry.verdict = Verdict(accepted=False, accepted_reason=reason, accepted_message=message)


def _unresolved(entry: _Entry, reason: str, message: str) -> None:
    entry.verdict = Verdict(
        accepted=entry.verdict.accepted,
        accepted_reason=entry.verdict.accepted_reason,
        accepted_message=entry.verdict.accepted_message,
        resolved=False,
        resolved_reason=reason,
        resolved_message=message,
    )


def _pydantic_message(exc: ValidationError, where: str) -> str:
    parts = [f"{where}.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors(include_url=False)]
    return "; ".join(parts)


def _build(entry: _Entry, secrets: SecretLookup, max_bytes: int) -> None:
    """Fill the entry's deployments, model and secrets, or mark why it cannot be served."""
    route = entry.route
    targets = []
    for index, dep in enumerate(route.deployments):
        data: dict[str, Any] = {"name": deployment_name(route, dep.name), "model": dep.upstream_model}
        data.update(dep.extra)
        if "serviceRef" in data:  # the route's own namespace, always: a route cannot name another's Service
            data["serviceRef"] = {**data["serviceRef"], "namespace": route.namespace}
        if dep.api_key is not None:
            found = secrets.get((route.namespace, dep.api_key.name))
            where = f"spec.deployments[{index}].apiKeySecretRef"
            if found is None:
                _unresolved(entry, "SecretNotFound", f"{where}: Secret {route.namespace}/{dep.api_key.name} not found")
                return
            if dep.api_key.key not in found:
                _unresolved(
                    entry,
                    "SecretKeyNotFound",
                    f"{where}: Secret {route.namespace}/{dep.api_key.name} has no key {dep.api_key.key!r}",
                )
                return
            store_key = secret_store_key(route, dep.name)
            entry.secrets[store_key] = found[dep.api_key.key]
            data["credentials"] = {"secretKey": store_key}
        try:
            Deployment.model_validate(data)
        except ValidationError as exc:
            _reject(entry, "InvalidSpec", _pydantic_message(exc, f"spec.deployments[{index}]"))
            return
        entry.deployments.append(data)
        targets.append({"deployment": data["name"], "weight": dep.weight})
    model: dict[str, Any] = {
        "name": route.model,
        "route": {"namespace": route.namespace, "name": route.name, "generation": route.generation},
        "targets": targets,
        **route.policy,
    }
    if route.fallbacks:
        model["fallbacks"] = list(route.fallbacks)
    try:
        Model.model_validate(model)
    except ValidationError as exc:
        _reject(entry, "InvalidSpec", _pydantic_message(exc, "spec"))
        return
    size = len(canonical_json(model)) + sum(len(canonical_json(d)) for d in entry.deployments)
    if size > max_bytes:
        _reject(
            entry,
            ROUTE_TOO_LARGE,
            f"the route renders to {size:,} bytes, more than one config object holds "
            f"({max_bytes:,}); use fewer deployments or shorter mock texts, headers and query "
            "parameters",
        )
        return
    entry.model = model
    entry.verdict = Verdict(
        accepted=entry.verdict.accepted,
        resolved=entry.verdict.resolved,
        deployments=tuple(d["name"] for d in entry.deployments),
    )


def _claim_names(entries: Sequence[_Entry], base_models: set[str]) -> None:
    """Older routes keep a public model name; newer claimants get ModelNameConflict."""
    owners: dict[str, ModelRoute] = {}
    for entry in entries:
        route = entry.route
        if route.error is not None:
            _reject(entry, route.error.reason, route.error.message)
        elif route.model in base_models:
            _reject(entry, "ModelNameConflict", f"model {route.model!r} is defined by the gateway's base config")
        elif route.model in owners:
            owner = owners[route.model]
            _reject(
                entry,
                "ModelNameConflict",
                f"model {route.model!r} is already served by the older ModelRoute {owner.namespace}/{owner.name}",
            )
        else:
            owners[route.model] = route


def _with_available_fallbacks(entries: Sequence[_Entry], base_models: set[str]) -> None:
    """Keep each served route's fallbacks that some served model provides; note the others.

    A fallback that disappears (its route deleted, broken or in a cycle) degrades the routes
    naming it: they are served without it, so removing one model never takes down its users.
    """
    known = base_models | {e.route.model for e in entries if e.verdict.included}
    for entry in entries:
        if not entry.verdict.included:
            continue
        available = [f for f in entry.route.fallbacks if f in known]
        missing = tuple(f for f in entry.route.fallbacks if f not in known)
        entry.model = {k: v for k, v in entry.model.items() if k != "fallbacks"}
        if available:
            entry.model["fallbacks"] = available
        if missing != entry.verdict.missing_fallbacks:
            entry.verdict = replace(entry.verdict, missing_fallbacks=missing)


def _assemble(base_spec: Mapping[str, Any], entries: Sequence[_Entry]) -> dict[str, Any]:
    served = [e for e in entries if e.verdict.included]
    spec = dict(base_spec)
    spec["deployments"] = list(base_spec.get("deployments", [])) + sorted(
        (d for e in served for d in e.deployments), key=lambda d: str(d["name"])
    )
    spec["models"] = list(base_spec.get("models", [])) + sorted((e.model for e in served), key=lambda m: str(m["name"]))
    return spec


def _blame(
    issue: ConfigIssue, spec: Mapping[str, Any], base_spec: Mapping[str, Any], entries: Sequence[_Entry]
) -> _Entry | None:
    """The route a gateway validation issue points at, or None when it is the base's fault.

    Decided on the issue's structured ``path`` and ``cycle``, never on its message text.
    """
    by_model = {e.route.model: e for e in entries if e.verdict.included}
    by_deployment = {d["name"]: e for e in by_model.values() for d in e.deployments}
    if issue.cycle:
        cycle = [by_model[n] for n in issue.cycle if n in by_model]
        return max(cycle, key=lambda e: e.route.age_key) if cycle else None
    path = issue.path
    for kind, lookup in (("models", by_model), ("deployments", by_deployment)):
        if len(path) >= 3 and path[:2] == ("spec", kind) and isinstance(path[2], int):
            index = path[2]
            if index >= len(base_spec.get(kind, [])):
                return lookup.get(spec[kind][index]["name"])
            return None
    return None


def render(
    routes: Iterable[ModelRoute],
    secrets: SecretLookup,
    base: GatewayConfig | None,
    *,
    gateway: str,
    generation: int,
    max_route_bytes: int = ROUTE_BUDGET_BYTES,
    cache: BuildCache | None = None,
    service_namespaces: frozenset[str] | None = None,
) -> Rendered:
    """Render every route attached to ``gateway`` into one validated document.

    ``service_namespaces``: where the gateway may read EndpointSlices; a route elsewhere naming a
    Service (``serviceRef``) is left out with ``ResolvedRefs=False, ServiceNotReadable`` (None:
    not known, every namespace is taken to be readable).

    A route whose model and deployments take more than ``max_route_bytes`` is left out
    (``RouteTooLarge``): no shard could hold it. ``cache`` (kept by the caller between renders)
    spares rebuilding routes that did not change; it keeps only this render's routes.
    """
    base_data = config_to_data(base) if base is not None else {}
    base_spec: Mapping[str, Any] = base_data.get("spec", {})
    base_models = {str(m["name"]) for m in base_spec.get("models", [])}
    mine = sorted((r for r in routes if r.gateway == gateway), key=lambda r: r.age_key)
    entries = [_Entry(route=r, verdict=Verdict()) for r in mine]
    _claim_names(entries, base_models)
    for entry in entries:
        if entry.verdict.included:
            _build_cached(entry, secrets, max_route_bytes, cache)
            if service_namespaces is not None:
                _check_services(entry, service_namespaces)
    if cache is not None:
        current = {id(e.route) for e in entries}
        for stale in [k for k in cache if k not in current]:
            del cache[stale]
    metadata = {"generation": generation, "renderedBy": RENDERED_BY}
    while True:  # each round leaves one more route out, so it ends
        _with_available_fallbacks(entries, base_models)
        spec = _assemble(base_spec, entries)
        data = {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": spec}
        try:
            config = validate_data(data, source="rendered config")
            break
        except ConfigError as exc:
            culprit = None
            for issue in exc.issues:
                culprit = _blame(issue, spec, base_spec, entries)
                if culprit is None:
                    continue
                if issue.cycle:
                    _unresolved(culprit, "FallbackCycle", str(issue))
                else:
                    _reject(culprit, "InvalidSpec", str(issue))
                break
            if culprit is None:
                raise BaseConfigError(f"the base config is not valid: {exc}") from None
    checksum = spec_checksum(spec)
    data = {**data, "metadata": {**metadata, "checksum": checksum}}
    served = [e for e in entries if e.verdict.included]
    return Rendered(
        config=config,
        document=canonical_json(data),
        data=data,
        checksum=checksum,
        secret_data={k: v for e in served for k, v in sorted(e.secrets.items())},
        verdicts={e.route.key: e.verdict for e in entries},
        served=frozenset((e.route.key, e.route.generation) for e in served),
        base_entries=(len(base_spec.get("deployments", [])), len(base_spec.get("models", []))),
    )
