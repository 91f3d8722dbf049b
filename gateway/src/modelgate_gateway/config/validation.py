"""Cross-field rules of the config document, reported all at once with their paths.

Single-field rules (types, ranges, patterns) are pydantic's job in :mod:`.v1alpha1`; this module
checks what spans fields: unique names, references to deployments and models, fallback cycles,
key sources. The operator runs it on its own output before publishing, the gateway on load.
"""

from __future__ import annotations

from collections.abc import Iterable

from .v1alpha1 import GatewayConfig, Provider


def _duplicates(names: Iterable[str]) -> list[tuple[int, str]]:
    seen: set[str] = set()
    found = []
    for index, name in enumerate(names):
        if name in seen:
            found.append((index, name))
        seen.add(name)
    return found


def _cycle_errors(fallbacks: dict[str, list[str]]) -> list[str]:
    """Depth-first search for cycles in the fallback graph; one message per cycle found."""
    errors: list[str] = []
    state: dict[str, int] = {}  # 1 = on stack, 2 = done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in fallbacks.get(node, []):
            if state.get(nxt) == 1:
                cycle = [*path[path.index(nxt):], nxt] if nxt in path else [node, nxt]
                errors.append("fallback cycle: " + " -> ".join(cycle))
            elif nxt in fallbacks and state.get(nxt) is None:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for name in fallbacks:
        if state.get(name) is None:
            visit(name, [name])
    return errors


def _deployment_errors(config: GatewayConfig) -> list[str]:
    errors: list[str] = []
    for index, dep in enumerate(config.spec.deployments):
        path = f"spec.deployments[{index}]"
        if dep.provider is Provider.MOCK:
            continue
        if not dep.base_url:
            errors.append(f"{path}.baseUrl: required unless provider is mock")
        if dep.mock is not None:
            errors.append(f"{path}.mock: only allowed with provider mock")
    return errors


def _model_errors(config: GatewayConfig) -> list[str]:
    errors: list[str] = []
    deployments = {d.name for d in config.spec.deployments}
    models = {m.name for m in config.spec.models}
    for index, model in enumerate(config.spec.models):
        path = f"spec.models[{index}]"
        for t_index, target in enumerate(model.targets):
            if target.deployment not in deployments:
                errors.append(f"{path}.targets[{t_index}].deployment: unknown deployment {target.deployment!r}")
        for d_index, name in _duplicates(t.deployment for t in model.targets):
            errors.append(f"{path}.targets[{d_index}].deployment: {name!r} listed twice")
        if all(t.weight == 0 for t in model.targets):
            errors.append(f"{path}.targets: at least one target needs a weight above 0")
        for f_index, fallback in enumerate(model.fallbacks):
            if fallback == model.name:
                errors.append(f"{path}.fallbacks[{f_index}]: a model cannot fall back to itself")
            elif fallback not in models:
                errors.append(f"{path}.fallbacks[{f_index}]: unknown model {fallback!r}")
    graph = {m.name: [f for f in m.fallbacks if f != m.name] for m in config.spec.models}
    errors.extend(f"spec.models: {msg}" for msg in _cycle_errors(graph))
    return errors


def _state_errors(config: GatewayConfig) -> list[str]:
    url = config.spec.state.redis_url
    if url and "@" in url.split("://", 1)[-1].split("/", 1)[0]:
        return ["spec.state.redisUrl: credentials do not belong in the URL (the document is not "
                "secret); put the password in spec.state.redisPassword as a secret reference"]
    return []


def _key_errors(config: GatewayConfig) -> list[str]:
    # A key's model allowlist may name models that no route serves right now: routes come and go
    # (the operator renders them), and a key must not make the whole document invalid meanwhile.
    errors: list[str] = []
    for index, key in enumerate(config.spec.auth.keys):
        if (key.sha256 is None) == (key.value_from is None):
            errors.append(f"spec.auth.keys[{index}]: set exactly one of sha256 and valueFrom")
    return errors


def _governance_errors(config: GatewayConfig) -> list[str]:
    spec = config.spec
    errors = [f"spec.governance.tenants[{index}].name: duplicate tenant {name!r}"
              for index, name in _duplicates(t.name for t in spec.governance.tenants)]
    limited = any(k.limits is not None for k in spec.auth.keys) or bool(spec.governance.tenants)
    if limited and not spec.state.redis_url:
        errors.append("spec.state.redisUrl: required when keys or tenants have limits (the counters are "
                      "shared by all replicas in Redis)")
    return errors


def semantic_errors(config: GatewayConfig) -> list[str]:
    """Return every cross-field error as ``"<path>: <message>"``; empty when valid."""
    spec = config.spec
    errors: list[str] = []
    for index, name in _duplicates(d.name for d in spec.deployments):
        errors.append(f"spec.deployments[{index}].name: duplicate deployment name {name!r}")
    for index, name in _duplicates(m.name for m in spec.models):
        errors.append(f"spec.models[{index}].name: duplicate model name {name!r}")
    for index, name in _duplicates(k.name for k in spec.auth.keys):
        errors.append(f"spec.auth.keys[{index}].name: duplicate key name {name!r}")
    return (errors + _deployment_errors(config) + _model_errors(config) + _key_errors(config)
            + _state_errors(config) + _governance_errors(config))
