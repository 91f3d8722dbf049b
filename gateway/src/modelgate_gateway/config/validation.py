"""Cross-field rules of the config document, reported all at once with their paths.

Single-field rules (types, ranges, patterns) are pydantic's job in :mod:`.v1alpha1`; this module
checks what spans fields: unique names, references to deployments and models, fallback cycles,
key sources. The operator runs it on its own output before publishing, the gateway on load.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from .v1alpha1 import GatewayConfig, Provider, UpstreamApi

Path = tuple[str | int, ...]


def format_path(path: Path) -> str:
    """``("spec", "models", 3, "name")`` -> ``spec.models[3].name`` (``<root>`` when empty)."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else ("." if text else "") + part
    return text or "<root>"


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem of a document, with where it is, so callers never parse message text.

    The operator blames routes by ``path`` (which model or deployment) and by ``cycle`` (the
    models of a fallback loop); people read ``str(issue)``.
    """

    path: Path
    message: str
    cycle: tuple[str, ...] = ()
    """For a fallback cycle: the model names along it, first repeated at the end."""

    def __str__(self) -> str:
        return f"{format_path(self.path)}: {self.message}" if self.path else self.message


def _duplicates(names: Iterable[str]) -> list[tuple[int, str]]:
    seen: set[str] = set()
    found = []
    for index, name in enumerate(names):
        if name in seen:
            found.append((index, name))
        seen.add(name)
    return found


def _cycles(fallbacks: dict[str, list[str]]) -> list[tuple[str, ...]]:
    """Depth-first search for cycles in the fallback graph; each cycle's names, closed."""
    errors: list[tuple[str, ...]] = []
    state: dict[str, int] = {}  # 1 = on stack, 2 = done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in fallbacks.get(node, []):
            if state.get(nxt) == 1:
                cycle = [*path[path.index(nxt) :], nxt] if nxt in path else [node, nxt]
                errors.append(tuple(cycle))
            elif nxt in fallbacks and state.get(nxt) is None:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for name in fallbacks:
        if state.get(name) is None:
            visit(name, [name])
    return errors


_ADDRESSES = (("baseUrl", "base_url"), ("baseUrls", "base_urls"), ("serviceRef", "service_ref"))


def _deployment_errors(config: GatewayConfig) -> list[ConfigIssue]:
    errors: list[ConfigIssue] = []
    for index, dep in enumerate(config.spec.deployments):
        path: Path = ("spec", "deployments", index)
        if dep.websocket and (dep.provider is Provider.MOCK or dep.api is not UpstreamApi.RESPONSES):
            errors.append(ConfigIssue((*path, "websocket"), "only a responses deployment with a baseUrl speaks it"))
        if dep.provider is Provider.MOCK:
            continue
        given = [name for name, value in _ADDRESSES if getattr(dep, value)]
        if not given:
            errors.append(ConfigIssue((*path, "baseUrl"), "required unless provider is mock (or baseUrls, serviceRef)"))
        elif len(given) > 1:
            problem = f"only one of baseUrl, baseUrls, serviceRef (also {given[0]})"
            errors.append(ConfigIssue((*path, given[1]), problem))
        for u_index, netloc in _duplicates(urlsplit(url).netloc for url in dep.base_urls):
            errors.append(ConfigIssue((*path, "baseUrls", u_index), f"a second URL of server {netloc!r}"))
        if dep.load_metrics is not None and dep.base_url:
            errors.append(ConfigIssue((*path, "loadMetrics"), "only for a pool (baseUrls or serviceRef)"))
        if dep.mock is not None:
            errors.append(ConfigIssue((*path, "mock"), "only allowed with provider mock"))
    return errors


def _model_errors(config: GatewayConfig) -> list[ConfigIssue]:
    errors: list[ConfigIssue] = []
    deployments = {d.name for d in config.spec.deployments}
    models = {m.name for m in config.spec.models}
    for index, model in enumerate(config.spec.models):
        path: Path = ("spec", "models", index)
        for t_index, target in enumerate(model.targets):
            if target.deployment not in deployments:
                errors.append(
                    ConfigIssue((*path, "targets", t_index, "deployment"), f"unknown deployment {target.deployment!r}")
                )
        for d_index, name in _duplicates(t.deployment for t in model.targets):
            errors.append(ConfigIssue((*path, "targets", d_index, "deployment"), f"{name!r} listed twice"))
        if all(t.weight == 0 for t in model.targets):
            errors.append(ConfigIssue((*path, "targets"), "at least one target needs a weight above 0"))
        for f_index, fallback in enumerate(model.fallbacks):
            if fallback == model.name:
                errors.append(ConfigIssue((*path, "fallbacks", f_index), "a model cannot fall back to itself"))
            elif fallback not in models:
                errors.append(ConfigIssue((*path, "fallbacks", f_index), f"unknown model {fallback!r}"))
    graph = {m.name: [f for f in m.fallbacks if f != m.name] for m in config.spec.models}
    errors.extend(
        ConfigIssue(("spec", "models"), "fallback cycle: " + " -> ".join(cycle), cycle=cycle)
        for cycle in _cycles(graph)
    )
    return errors


def _state_errors(config: GatewayConfig) -> list[ConfigIssue]:
    url = config.spec.state.redis_url
    if url and "@" in url.split("://", 1)[-1].split("/", 1)[0]:
        return [
            ConfigIssue(
                ("spec", "state", "redisUrl"),
                "credentials do not belong in the URL (the document is not secret); put "
                "the password in spec.state.redisPassword as a secret reference",
            )
        ]
    return []


def _key_errors(config: GatewayConfig) -> list[ConfigIssue]:
    # A key's model allowlist may name models that no route serves right now: routes come and go
    # (the operator renders them), and a key must not make the whole document invalid meanwhile.
    errors: list[ConfigIssue] = []
    for index, key in enumerate(config.spec.auth.keys):
        if (key.sha256 is None) == (key.value_from is None):
            errors.append(ConfigIssue(("spec", "auth", "keys", index), "set exactly one of sha256 and valueFrom"))
    return errors


def _governance_errors(config: GatewayConfig) -> list[ConfigIssue]:
    spec = config.spec
    errors = [
        ConfigIssue(("spec", "governance", "tenants", index, "name"), f"duplicate tenant {name!r}")
        for index, name in _duplicates(t.name for t in spec.governance.tenants)
    ]
    limited = any(k.limits is not None for k in spec.auth.keys) or bool(spec.governance.tenants)
    if limited and not spec.state.redis_url:
        errors.append(
            ConfigIssue(
                ("spec", "state", "redisUrl"),
                "required when keys or tenants have limits (the counters are shared by all replicas in Redis)",
            )
        )
    return errors


def semantic_issues(config: GatewayConfig) -> list[ConfigIssue]:
    """Every cross-field problem with its path; empty when valid."""
    spec = config.spec
    errors: list[ConfigIssue] = []
    for index, name in _duplicates(d.name for d in spec.deployments):
        errors.append(ConfigIssue(("spec", "deployments", index, "name"), f"duplicate deployment name {name!r}"))
    for index, name in _duplicates(m.name for m in spec.models):
        errors.append(ConfigIssue(("spec", "models", index, "name"), f"duplicate model name {name!r}"))
    for index, name in _duplicates(k.name for k in spec.auth.keys):
        errors.append(ConfigIssue(("spec", "auth", "keys", index, "name"), f"duplicate key name {name!r}"))
    return (
        errors
        + _deployment_errors(config)
        + _model_errors(config)
        + _key_errors(config)
        + _state_errors(config)
        + _governance_errors(config)
    )
