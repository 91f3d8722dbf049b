"""Per-namespace config for sidecars: which routes a namespace's sidecars serve, and its document.

Pure. A namespace's sidecars serve its own routes with ``spec.sidecars.attach``, plus routes from a
*sharing* namespace (the platform team's) that list it in ``spec.sidecars.shareWith``; its own
routes shadow shared ones of the same public model name, so nobody can take over a team's model
by sharing into its namespace. Isolation is by construction: the document and the Secret of
namespace N are rendered from N's routes only, with a Secret lookup cut down to what those routes
reference, so no value of another namespace's routes can appear in them. Rendering itself is
:func:`.render.render`, unchanged.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from modelgate_gateway.config import API_VERSION, KIND, GatewayConfig, config_to_data, validate_data

from .render import Rendered, SecretLookup, referenced_secrets, render
from .resources import ModelRoute

# Route keys in the Secret start with the route's namespace, a DNS label; an underscore never
# starts one, so these keys cannot collide with a route's.
SIGNING_KEY = "_modelgate.response-ids-signing-key"
"""Key of the per-namespace signing key in the sidecar Secret: the sidecars of one namespace
share response ids with each other, never with the shared gateway or another namespace."""
API_KEY_PREFIX = "_modelgate.api-key."
_KEY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")


def shares_into(route: ModelRoute, namespace: str, sharing: frozenset[str]) -> bool:
    """The route is shared into ``namespace`` by a namespace allowed to share."""
    return route.namespace != namespace and route.namespace in sharing and namespace in route.sidecars.share_with


def routes_for(namespace: str, routes: Iterable[ModelRoute], sharing: frozenset[str]) -> list[ModelRoute]:
    """The routes the sidecars of ``namespace`` serve, own routes shadowing shared ones by name."""
    routes = list(routes)
    own = [r for r in routes if r.namespace == namespace and r.sidecars.attach]
    claimed = {r.model for r in own if r.error is None}
    shared = [r for r in routes if shares_into(r, namespace, sharing) and r.model not in claimed]
    return own + shared


def sidecar_namespaces(routes: Iterable[ModelRoute], injected: Iterable[str], sharing: frozenset[str]) -> set[str]:
    """Namespaces that need a sidecar document: with injected pods or routes attached to sidecars."""
    wanted = set(injected)
    for route in routes:
        if route.sidecars.attach:
            wanted.add(route.namespace)
        if route.namespace in sharing:
            wanted.update(n for n in route.sidecars.share_with if n != route.namespace)
    return wanted


def api_key_entries(api_keys: Mapping[str, bytes]) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
    """``auth.keys`` entries and their Secret data, from the namespace's API keys Secret."""
    entries, data = [], {}
    for name in sorted(api_keys):
        if not _KEY_NAME.match(name) or not api_keys[name]:
            continue  # not a usable key name or an empty key: left out (fail closed)
        data[API_KEY_PREFIX + name] = api_keys[name]
        entries.append({"name": name, "valueFrom": {"secretKey": API_KEY_PREFIX + name}, "models": ["*"]})
    return entries, data


def sidecar_base(
    base: GatewayConfig | None, api_keys: Mapping[str, bytes] | None
) -> tuple[GatewayConfig, dict[str, bytes]]:
    """The base document of a namespace's sidecars and the Secret data it needs besides the routes.

    From the operator's base: limits and observability; not its models, deployments or keys
    (they name files of the shared gateway's pods, and its keys must not reach every namespace).
    ``api_keys`` None: pod-local trust (any caller on 127.0.0.1); else exactly these keys.
    """
    spec: dict[str, Any] = {}
    if base is not None:
        spec = {
            k: v
            for k, v in config_to_data(base)["spec"].items()
            if k not in {"models", "deployments", "auth", "responseIds"}
        }
    extra: dict[str, bytes] = {}
    if api_keys is None:
        spec["auth"] = {"allowUnauthenticated": True}
    else:
        entries, extra = api_key_entries(api_keys)
        spec["auth"] = {"keys": entries}
    spec["responseIds"] = {"signingKey": {"secretKey": SIGNING_KEY}}
    config = validate_data({"apiVersion": API_VERSION, "kind": KIND, "spec": spec}, source="sidecar base config")
    return config, extra


@dataclass(frozen=True, slots=True)
class Scope:
    gateway: str
    """Routes attach to this gateway (``spec.gatewayRef``), as for the shared gateway."""
    sharing: frozenset[str]
    """Namespaces whose routes may be shared into other namespaces (the platform team's)."""


@dataclass(frozen=True, slots=True)
class NamespaceKeys:
    """What a namespace's Secret holds besides the routes' keys."""

    signing_key: bytes
    """Response-id signing key, generated once per namespace and kept."""
    api_keys: Mapping[str, bytes] | None = None
    """The namespace's sidecar API keys; None: pod-local trust."""


def render_namespace(
    namespace: str,
    routes: Iterable[ModelRoute],
    secrets: SecretLookup,
    base: GatewayConfig | None,
    scope: Scope,
    keys: NamespaceKeys,
    *,
    generation: int,
) -> Rendered:
    """The document and Secret data of ``namespace``'s sidecars (verdicts only for its routes)."""
    mine = routes_for(namespace, routes, scope.sharing)
    visible = {ref: secrets.get(ref) for ref in referenced_secrets(mine)}
    config, extra = sidecar_base(base, keys.api_keys)
    rendered = render(mine, visible, config, gateway=scope.gateway, generation=generation)
    secret_data = {**rendered.secret_data, **extra, SIGNING_KEY: keys.signing_key}
    return dataclasses.replace(rendered, secret_data=secret_data)
