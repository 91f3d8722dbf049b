"""Pure rendering: ModelRoutes + resolved Secrets + base document -> the gateway's config.

No I/O and no clock: the same input gives the same bytes. Every route gets a :class:`Verdict`;
a broken route is left out and the others are still rendered. The output passes the gateway's
own validation (:func:`modelgate_gateway.config.validate_data`) before it is returned.
Neighbours: :mod:`.resources` parses the input, :mod:`.publishing` writes the output.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from modelgate_gateway.config import (
    API_VERSION,
    KIND,
    ConfigError,
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

    @property
    def included(self) -> bool:
        return self.accepted and self.resolved


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
        (route.namespace, dep.api_key.name)
        for route in routes
        for dep in route.deployments
        if dep.api_key is not None
    }


@dataclass(slots=True)
class _Entry:
    route: ModelRoute
    verdict: Verdict
    deployments: list[dict[str, Any]] = field(default_factory=list)
    model: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, bytes] = field(default_factory=dict)


def _reject(entry: _Entry, reason: str, message: str) -> None:
    entry.verdict = Verdict(accepted=False, accepted_reason=reason, accepted_message=message)


def _unresolved(entry: _Entry, reason: str, message: str) -> None:
    entry.verdict = Verdict(
        accepted=entry.verdict.accepted,
        accepted_reason=entry.verdict.accepted_reason,
        accepted_message=entry.verdict.accepted_message,
        resolved=False, resolved_reason=reason, resolved_message=message,
    )


def _pydantic_message(exc: ValidationError, where: str) -> str:
    parts = [
        f"{where}.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
        for err in exc.errors(include_url=False)
    ]
    return "; ".join(parts)


def _build(entry: _Entry, secrets: SecretLookup) -> None:
    """Fill the entry's deployments, model and secrets, or mark why it cannot be served."""
    route = entry.route
    targets = []
    for index, dep in enumerate(route.deployments):
        data: dict[str, Any] = {"name": deployment_name(route, dep.name),
                                "model": dep.upstream_model}
        data.update(dep.extra)
        if dep.api_key is not None:
            found = secrets.get((route.namespace, dep.api_key.name))
            where = f"spec.deployments[{index}].apiKeySecretRef"
            if found is None:
                _unresolved(entry, "SecretNotFound",
                            f"{where}: Secret {route.namespace}/{dep.api_key.name} not found")
                return
            if dep.api_key.key not in found:
                _unresolved(entry, "SecretKeyNotFound",
                            f"{where}: Secret {route.namespace}/{dep.api_key.name} "
                            f"has no key {dep.api_key.key!r}")
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
    entry.model = model
    entry.verdict = Verdict(
        accepted=entry.verdict.accepted, resolved=entry.verdict.resolved,
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
            _reject(entry, "ModelNameConflict",
                    f"model {route.model!r} is defined by the gateway's base config")
        elif route.model in owners:
            owner = owners[route.model]
            _reject(entry, "ModelNameConflict",
                    f"model {route.model!r} is already served by the older ModelRoute "
                    f"{owner.namespace}/{owner.name}")
        else:
            owners[route.model] = route


def _drop_unknown_fallbacks(entries: Sequence[_Entry], base_models: set[str]) -> None:
    """Iterate to a fixpoint: leaving one route out may orphan another's fallback."""
    changed = True
    while changed:
        changed = False
        known = base_models | {e.route.model for e in entries if e.verdict.included}
        for entry in entries:
            if not entry.verdict.included:
                continue
            missing = [f for f in entry.route.fallbacks if f not in known]
            if missing:
                names = ", ".join(map(repr, missing))
                message = f"spec.fallbacks: no served model named {names}"
                _unresolved(entry, "UnknownFallback", message)
                changed = True


def _assemble(base_spec: Mapping[str, Any], entries: Sequence[_Entry]) -> dict[str, Any]:
    served = [e for e in entries if e.verdict.included]
    spec = dict(base_spec)
    spec["deployments"] = list(base_spec.get("deployments", [])) + sorted(
        (d for e in served for d in e.deployments), key=lambda d: str(d["name"]))
    spec["models"] = list(base_spec.get("models", [])) + sorted(
        (e.model for e in served), key=lambda m: str(m["name"]))
    return spec


def _blame(error: str, spec: Mapping[str, Any], base_spec: Mapping[str, Any],
           entries: Sequence[_Entry]) -> _Entry | None:
    """The route a gateway validation error points at, or None when it is the base's fault."""
    by_model = {e.route.model: e for e in entries if e.verdict.included}
    by_deployment = {d["name"]: e for e in by_model.values() for d in e.deployments}
    for kind, lookup in (("models", by_model), ("deployments", by_deployment)):
        prefix = f"spec.{kind}["
        if error.startswith(prefix):
            index = int(error[len(prefix):error.index("]")])
            if index >= len(base_spec.get(kind, [])):
                return lookup.get(spec[kind][index]["name"])
            return None
    if error.startswith("spec.models: fallback cycle: "):
        names = error.split(": ", 2)[2].split(" -> ")
        cycle = [by_model[n] for n in names if n in by_model]
        return max(cycle, key=lambda e: e.route.age_key) if cycle else None
    return None


def render(routes: Iterable[ModelRoute], secrets: SecretLookup, base: GatewayConfig | None, *,
           gateway: str, generation: int) -> Rendered:
    """Render every route attached to ``gateway`` into one validated document."""
    base_data = config_to_data(base) if base is not None else {}
    base_spec: Mapping[str, Any] = base_data.get("spec", {})
    base_models = {str(m["name"]) for m in base_spec.get("models", [])}
    mine = sorted((r for r in routes if r.gateway == gateway), key=lambda r: r.age_key)
    entries = [_Entry(route=r, verdict=Verdict()) for r in mine]
    _claim_names(entries, base_models)
    for entry in entries:
        if entry.verdict.included:
            _build(entry, secrets)
    _drop_unknown_fallbacks(entries, base_models)
    metadata = {"generation": generation, "renderedBy": RENDERED_BY}
    while True:
        spec = _assemble(base_spec, entries)
        data = {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": spec}
        try:
            config = validate_data(data, source="rendered config")
            break
        except ConfigError as exc:
            culprit = None
            for error in exc.errors:
                culprit = _blame(error, spec, base_spec, entries)
                if culprit is None:
                    continue
                if "fallback cycle" in error:
                    _unresolved(culprit, "FallbackCycle", error)
                else:
                    _reject(culprit, "InvalidSpec", error)
                break
            if culprit is None:
                raise BaseConfigError(f"the base config is not valid: {exc}") from None
            _drop_unknown_fallbacks(entries, base_models)
    checksum = spec_checksum(spec)
    document = canonical_json({**data, "metadata": {**metadata, "checksum": checksum}})
    served = [e for e in entries if e.verdict.included]
    return Rendered(
        config=config,
        document=document,
        checksum=checksum,
        secret_data={k: v for e in served for k, v in sorted(e.secrets.items())},
        verdicts={e.route.key: e.verdict for e in entries},
        served=frozenset((e.route.key, e.route.generation) for e in served),
    )
