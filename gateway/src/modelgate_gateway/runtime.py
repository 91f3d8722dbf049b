"""Compile a validated :class:`GatewayConfig` plus secret values into the hot path's snapshot.

The hot path never touches pydantic objects: everything it reads is a frozen slotted dataclass
with precomputed lookups (auth header values, key digests, URLs). Secrets are
resolved here, once per reload, from a :class:`ConfigSnapshot`. Compiling fails with
:class:`ConfigError` when a referenced secret is missing, so the reloader keeps the last good one.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from urllib.parse import urlencode

from multidict import istr

from . import ids
from .config import (
    ConfigError,
    Deployment,
    EnvRef,
    FileRef,
    GatewayConfig,
    Provider,
    RetryPolicy,
    SecretKeyRef,
    SecretRef,
    Strategy,
    UpstreamApi,
    WebSocketMode,
    spec_checksum,
)
from .config.loading import config_to_data
from .http1 import Endpoint, proxy_from_environment
from .redaction import Redactor, credential_values, redactor_for

ServiceKey = tuple[str, str]
"""(namespace, name) of a Kubernetes Service (a ``serviceRef`` pool)."""
ServiceEndpoint = tuple[str, tuple[tuple[str, int], ...]]
"""A ready endpoint of a Service: its address and its ports (name, number) as its EndpointSlice lists them."""

_MAX_SECRET_BYTES = 64 * 1024  # an API key is never this long; a bigger file is a mistake


@dataclass(frozen=True, slots=True)
class LoadMetricsRuntime:
    """How a pool's servers are read for load (``spec.deployments[].loadMetrics``)."""

    path: str
    port: int | None
    interval_seconds: float
    timeout_seconds: float
    stale_seconds: float
    saturated_queue: int
    saturated_kv_cache: float


@dataclass(frozen=True, slots=True)
class PoolRuntime:
    """What a pool deployment's servers have in common; the servers themselves come and go
    (:mod:`.upstream.pools`). ``urls``: fixed servers (``baseUrls``); ``service``: namespace, name
    and port of a Kubernetes Service whose ready endpoints are the servers (``serviceRef``)."""

    urls: tuple[str, ...]
    service: tuple[str, str, int | str] | None
    scheme: str
    path: str
    headers: Mapping[str, str] = field(repr=False)
    query: Mapping[str, str]
    connect_seconds: float
    read_idle_seconds: float
    metrics: LoadMetricsRuntime | None

    def endpoint(self, base_url: str) -> Endpoint:
        """One server's endpoint: the deployment's headers and timeouts, the server's URL."""
        return Endpoint(
            base_url,
            self.headers,
            query=self.query,
            connect_seconds=self.connect_seconds,
            read_idle_seconds=self.read_idle_seconds,
            proxy=proxy_from_environment(base_url),
        )


@dataclass(frozen=True, slots=True)
class WebSocketUpstream:
    """Where a deployment that speaks WebSocket mode takes its sockets, and what the handshake sends."""

    url: str
    """ws(s)://host:port/prefix/responses plus the deployment's query parameters."""
    headers: tuple[tuple[str, str], ...] = field(repr=False)
    """Auth and extra headers (secrets: never shown)."""
    connect_seconds: float


@dataclass(frozen=True, slots=True)
class DeploymentRuntime:
    name: str
    provider: Provider
    api: UpstreamApi
    pool_key: str
    """Connection-pool key: the deployment's name and origin (scheme://host:port)."""
    model: str
    redactor: Redactor | None
    """Removes the secrets of the deployment's headers from upstream errors passed on to clients (None: none)."""
    endpoint: Endpoint | None
    """Owns what is sent: URL, auth and extra headers, query parameters, connect and read timeouts.
    None for the mock provider."""
    first_byte_seconds: float
    total_seconds: float
    max_concurrent: int | None
    mock_text: str
    mock_first_delay: float
    mock_token_delay: float
    organization: str = ""
    """Whose encrypted items and caches this deployment shares (its own name when unset)."""
    drop_unsupported_tools: bool = False
    """A chat deployment leaves out tools it cannot run instead of refusing the request."""
    pool: PoolRuntime | None = None
    """Set for a pool of servers (baseUrls, serviceRef): each request goes to one of them."""
    member: str = ""
    """One server of a pool (``host:port``, or its URL): set on the per-server copies the pool makes."""
    health_key: str = ""
    """Key of its health (cooldown, in-flight count): the name, or ``name@member`` for one server."""
    websocket: WebSocketUpstream | None = None
    """Set when the upstream speaks WebSocket mode (``websocket: true``): WebSocket lanes get a socket there."""


@dataclass(frozen=True, slots=True)
class TargetRuntime:
    deployment: str
    weight: float


@dataclass(frozen=True, slots=True)
class ModelRuntime:
    name: str
    strategy: Strategy
    targets: tuple[TargetRuntime, ...]
    fallbacks: tuple[str, ...]
    max_attempts: int
    total_timeout_seconds: float
    max_retry_after_seconds: float
    retry_after_cap_seconds: float
    cooldown_failures: int
    cooldown_seconds: float
    adaptive_floor: float | None = None
    """Adaptive weights: the least share of its weight a deployment keeps; None: weights are fixed."""


@dataclass(frozen=True, slots=True)
class KeyRuntime:
    name: str
    all_models: bool
    models: frozenset[str]
    owner: str
    """Who owns the response ids this key creates (its tenant, or the key itself); see ids.py."""
    expires_at: float | None = None
    """Epoch seconds after which the key is refused."""
    prefixes: tuple[str, ...] = ()
    """Allowed model-name prefixes (the entries of ``models`` that end in ``*``)."""

    def allows(self, model: str) -> bool:
        return self.all_models or model in self.models or (bool(self.prefixes) and model.startswith(self.prefixes))


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    config: GatewayConfig
    checksum: str
    generation: int | None
    deployments: Mapping[str, DeploymentRuntime]
    models: Mapping[str, ModelRuntime]
    keys_by_digest: Mapping[bytes, KeyRuntime]
    allow_unauthenticated: bool
    signing_key: bytes | None = field(repr=False)
    max_body_bytes: int
    end_user_header: str | None
    """Header naming the end user, as a ``multidict.istr`` like the two below: aiohttp's headers then
    find it without case-folding the name again on every request."""
    redis_url: str | None
    redis_password: str | None = field(repr=False)
    state_ttl_seconds: int
    retry_after_caps: Mapping[str, float]
    """Per deployment: longest a 429's Retry-After defers it (the largest cap of the models using it)."""
    affinity_headers: tuple[str, ...] = ()
    """Client headers naming a session (spec.affinity.headers)."""
    forward_headers: tuple[str, ...] = ()
    """Client headers passed on to Responses upstreams (spec.forwardHeaders)."""
    websocket: WebSocketMode = field(default_factory=WebSocketMode)
    """The WebSocket mode's switch and limits (spec.websocket)."""


def resolve_secret(ref: SecretRef, secrets: Mapping[str, bytes], base_dir: str, where: str) -> str:
    """Value of a secret reference; raises ConfigError naming the reference, never the value."""
    if isinstance(ref, EnvRef):
        value = os.environ.get(ref.env)
        if not value:
            raise ConfigError([f"{where}: environment variable {ref.env} is not set"])
        return value
    if isinstance(ref, FileRef):
        path = Path(base_dir, ref.file)
        try:
            with path.open("rb") as fh:
                raw = fh.read(_MAX_SECRET_BYTES + 1)
        except OSError as exc:
            raise ConfigError([f"{where}: cannot read {path}: {exc.strerror}"]) from None
    elif isinstance(ref, SecretKeyRef):
        if ref.secret_key not in secrets:
            raise ConfigError([f"{where}: key {ref.secret_key!r} is not in the gateway's secret store"])
        raw = secrets[ref.secret_key]
    else:  # pragma: no cover - the union is closed
        raise ConfigError([f"{where}: unsupported secret reference"])
    if len(raw) > _MAX_SECRET_BYTES:
        raise ConfigError([f"{where}: secret is larger than {_MAX_SECRET_BYTES} bytes"])
    value = raw.decode("utf-8", "replace").strip()
    if not value:
        raise ConfigError([f"{where}: secret is empty"])
    return value


def _origin(base_url: str) -> str:
    scheme, _, rest = base_url.partition("://")
    host = rest.split("/", 1)[0]
    if ":" not in host.rsplit("]", 1)[-1]:
        host += ":443" if scheme == "https" else ":80"
    return f"{scheme}://{host}"


def _deployments(config: GatewayConfig, secrets: Mapping[str, bytes], base_dir: str) -> dict[str, DeploymentRuntime]:
    out: dict[str, DeploymentRuntime] = {}
    for index, dep in enumerate(config.spec.deployments):
        headers = dict(dep.headers)
        key = None
        if dep.credentials is not None:
            key = resolve_secret(dep.credentials, secrets, base_dir, f"spec.deployments[{index}].credentials")
            if dep.provider is Provider.AZURE_OPENAI:
                headers["api-key"] = key
            else:
                headers["Authorization"] = f"Bearer {key}"
        mock = dep.mock
        base_url = dep.base_url.rstrip("/")
        endpoint = None
        pool = _pool(dep, headers) if dep.base_urls or dep.service_ref is not None else None
        try:
            if base_url:
                endpoint = Endpoint(
                    base_url,
                    headers,
                    query=dep.query_params,
                    connect_seconds=dep.timeouts.connect_seconds,
                    read_idle_seconds=dep.timeouts.stream_idle_seconds,
                    proxy=proxy_from_environment(base_url),
                )
            elif pool is not None:  # checked once here, so a server's endpoint cannot fail later
                for url in pool.urls or (f"{pool.scheme}://127.0.0.1:1{pool.path}",):
                    pool.endpoint(url)
        except ValueError as exc:  # a header that cannot be sent (a line break in a key), a bad proxy URL
            raise ConfigError([f"spec.deployments[{index}]: {exc}"]) from None
        out[dep.name] = DeploymentRuntime(
            name=dep.name,
            provider=dep.provider,
            api=dep.api,
            pool_key=f"{dep.name} {_origin(base_url) if base_url else 'mock://'}",
            model=dep.model,
            redactor=redactor_for(credential_values(key, headers)),
            endpoint=endpoint,
            first_byte_seconds=dep.timeouts.first_byte_seconds,
            total_seconds=dep.timeouts.total_seconds,
            max_concurrent=dep.max_concurrent_requests,
            mock_text=mock.text if mock else "Hello from ModelGate's mock provider.",
            mock_first_delay=mock.first_token_delay_seconds if mock else 0.0,
            mock_token_delay=mock.token_delay_seconds if mock else 0.0,
            organization=dep.organization or f"deployment:{dep.name}",
            drop_unsupported_tools=dep.translation.unsupported_tools == "drop",
            pool=pool,
            health_key=dep.name,
            websocket=_websocket_upstream(base_url, headers, dep.query_params, dep.timeouts.connect_seconds)
            if dep.websocket and base_url
            else None,
        )
    return out


def _pool(dep: Deployment, headers: Mapping[str, str]) -> PoolRuntime:
    ref = dep.service_ref
    metrics = dep.load_metrics
    return PoolRuntime(
        urls=tuple(url.rstrip("/") for url in dep.base_urls),
        service=(ref.namespace, ref.name, ref.port) if ref is not None else None,
        scheme=ref.scheme if ref is not None else "http",
        path=ref.path.rstrip("/") if ref is not None else "",
        headers=dict(headers),
        query=dict(dep.query_params),
        connect_seconds=dep.timeouts.connect_seconds,
        read_idle_seconds=dep.timeouts.stream_idle_seconds,
        metrics=None
        if metrics is None
        else LoadMetricsRuntime(
            path=metrics.path,
            port=metrics.port,
            interval_seconds=metrics.interval_seconds,
            timeout_seconds=metrics.timeout_seconds,
            stale_seconds=metrics.stale_seconds,
            saturated_queue=metrics.saturated_queue,
            saturated_kv_cache=metrics.saturated_kv_cache,
        ),
    )


def _websocket_upstream(
    base_url: str, headers: Mapping[str, str], query: Mapping[str, str], connect_seconds: float
) -> WebSocketUpstream:
    scheme, _, rest = base_url.partition("://")
    url = ("wss" if scheme == "https" else "ws") + "://" + rest + "/responses"
    if query:
        url += "?" + urlencode(dict(query))
    return WebSocketUpstream(url, tuple(headers.items()), connect_seconds)


def _keys(config: GatewayConfig, secrets: Mapping[str, bytes], base_dir: str) -> dict[bytes, KeyRuntime]:
    out: dict[bytes, KeyRuntime] = {}
    for index, key in enumerate(config.spec.auth.keys):
        if key.sha256 is not None:
            digest = bytes.fromhex(key.sha256)
        else:
            assert key.value_from is not None  # guaranteed by validation
            value = resolve_secret(key.value_from, secrets, base_dir, f"spec.auth.keys[{index}].valueFrom")
            digest = hashlib.sha256(value.encode()).digest()
        expires = key.expires_at
        if expires is not None and expires.tzinfo is None:
            expires = expires.replace(tzinfo=UTC)
        out[digest] = KeyRuntime(
            key.name,
            "*" in key.models,
            frozenset(key.models),
            ids.key_owner(key.name, key.tenant),
            expires.timestamp() if expires is not None else None,
            tuple(m[:-1] for m in key.models if m.endswith("*") and m != "*"),
        )
    return out


def compile_runtime(config: GatewayConfig, secrets: Mapping[str, bytes], base_dir: str) -> RuntimeConfig:
    """Build the hot path's snapshot; raises ConfigError if a secret cannot be resolved."""
    spec = config.spec
    models = {
        m.name: ModelRuntime(
            name=m.name,
            strategy=m.strategy,
            targets=tuple(TargetRuntime(t.deployment, t.weight) for t in m.targets),
            fallbacks=tuple(m.fallbacks),
            max_attempts=m.retry.max_attempts,
            total_timeout_seconds=m.retry.total_timeout_seconds,
            max_retry_after_seconds=m.retry.max_retry_after_seconds,
            retry_after_cap_seconds=m.retry.retry_after_cap_seconds,
            cooldown_failures=m.cooldown.consecutive_failures,
            cooldown_seconds=m.cooldown.duration_seconds,
            adaptive_floor=m.adaptive_weights.floor if m.adaptive_weights.enabled else None,
        )
        for m in spec.models
    }
    signing_key = None
    if spec.response_ids.signing_key is not None:
        signing_key = resolve_secret(
            spec.response_ids.signing_key, secrets, base_dir, "spec.responseIds.signingKey"
        ).encode()
    redis_password = None
    if spec.state.redis_password is not None:
        redis_password = resolve_secret(spec.state.redis_password, secrets, base_dir, "spec.state.redisPassword")
    deployments = _deployments(config, secrets, base_dir)
    return RuntimeConfig(
        config=config,
        checksum=config.metadata.checksum or spec_checksum(config_to_data(config)["spec"]),
        generation=config.metadata.generation,
        deployments=deployments,
        models=models,
        keys_by_digest=_keys(config, secrets, base_dir),
        allow_unauthenticated=spec.auth.allow_unauthenticated,
        signing_key=signing_key,
        max_body_bytes=spec.limits.max_request_body_bytes,
        end_user_header=istr(spec.observability.end_user_header) if spec.observability.end_user_header else None,
        redis_url=spec.state.redis_url,
        redis_password=redis_password,
        state_ttl_seconds=spec.state.ttl_seconds,
        retry_after_caps=_retry_after_caps(deployments, models.values()),
        affinity_headers=tuple(map(istr, spec.affinity.headers)),
        forward_headers=tuple(map(istr, spec.forward_headers)),
        websocket=spec.websocket,
    )


def _retry_after_caps(deployments: Mapping[str, DeploymentRuntime], models: Iterable[ModelRuntime]) -> dict[str, float]:
    caps = dict.fromkeys(deployments, RetryPolicy.model_fields["retry_after_cap_seconds"].default)
    used: dict[str, float] = {}
    for model in models:
        for target in model.targets:
            used[target.deployment] = max(used.get(target.deployment, 0.0), model.retry_after_cap_seconds)
    caps.update(used)
    return caps
