"""The gateway config document, version ``config.modelgate.dev/v1alpha1``.

This is the seam between control plane and data plane: the operator renders exactly this
document and the gateway validates it again on load. It must stay free of Kubernetes types and
of anything but pydantic, so the gateway also runs from a plain file. Field descriptions are
the documentation: they flow into the exported JSON Schema and into ``docs/config.md``.
Cross-field rules (references, uniqueness, cycles) live in :mod:`.validation`.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from .documentmodel import DocumentModel as _Model
from .pools import AdaptiveWeights, PoolAddresses
from .websocketmode import WebSocketMode

API_VERSION = "config.modelgate.dev/v1alpha1"
KIND = "GatewayConfig"

# Names that end up in response ids, metric labels and Kubernetes objects: keep them boring.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,252}$"
ENV_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"


class Provider(enum.StrEnum):
    """Who runs the upstream; decides the auth header and URL shape."""

    OPENAI = "openai"
    AZURE_OPENAI = "azure-openai"
    OPENAI_COMPATIBLE = "openai-compatible"
    VLLM = "vllm"
    MOCK = "mock"


class UpstreamApi(enum.StrEnum):
    """Which API the upstream speaks. ``chat_completions`` upstreams are translated."""

    RESPONSES = "responses"
    CHAT_COMPLETIONS = "chat_completions"


class Strategy(enum.StrEnum):
    """How a model picks among its healthy targets."""

    WEIGHTED_RANDOM = "weighted-random"
    LEAST_OUTSTANDING = "least-outstanding"
    LOWEST_LATENCY = "lowest-latency"


# --- secret references --------------------------------------------------------------------


class EnvRef(_Model):
    env: str = Field(pattern=ENV_PATTERN, description="Name of an environment variable of the gateway process.")


class FileRef(_Model):
    file: str = Field(
        min_length=1,
        description="Path of a file holding the value (trailing newline stripped). "
        "A relative path is resolved against the config file's directory.",
    )


class SecretKeyRef(_Model):
    secret_key: str = Field(
        pattern=r"^[-._a-zA-Z0-9]+$",
        max_length=253,
        description="Key in the gateway's secret store: the mounted secrets directory "
        "(--secrets-dir) or, in a cluster, the gateway Secret watched through the API. "
        "This is what the operator renders.",
    )


SecretRef = Annotated[
    EnvRef | FileRef | SecretKeyRef,
    Field(description="Where a secret value comes from. Secret bytes never appear in the document."),
]


# --- deployments --------------------------------------------------------------------------


class Timeouts(_Model):
    connect_seconds: float = Field(default=5.0, gt=0, le=300, description="TCP+TLS connect timeout for one attempt.")
    first_byte_seconds: float = Field(
        default=120.0,
        gt=0,
        le=3600,
        description="Time until the upstream starts answering: the first event of a stream, or "
        "the response headers of a non-streaming call (which most providers send only once the "
        "whole answer is ready). Failover happens only within this window.",
    )
    stream_idle_seconds: float = Field(
        default=120.0,
        gt=0,
        le=3600,
        description="Longest silence allowed while reading an answer: between two stream "
        "chunks, and before the headers or the rest of a plain answer.",
    )
    total_seconds: float = Field(
        default=600.0, gt=0, le=86400, description="Upper bound on one attempt, streaming included."
    )


# Service tiers and hosted tools are provider vocabulary: lower-case words (``flex``, ``web_search``).
TIER_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"
TOOL_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"


class TokenPrices(_Model):
    input_usd_per_million_tokens: float = Field(
        default=0.0, ge=0, description="Price of uncached input tokens, USD per 1M."
    )
    cached_input_usd_per_million_tokens: float | None = Field(
        default=None,
        ge=0,
        description="Price of cached input tokens (cache reads), USD per 1M. Unset means the input price applies.",
    )
    cache_write_usd_per_million_tokens: float | None = Field(
        default=None,
        ge=0,
        description="Price of input tokens written to the prompt cache (usage "
        "input_tokens_details.cache_write_tokens), USD per 1M. Unset means the input price applies.",
    )
    output_usd_per_million_tokens: float = Field(
        default=0.0, ge=0, description="Price of output tokens (reasoning included), USD per 1M."
    )


class Pricing(TokenPrices):
    tiers: dict[Annotated[str, Field(pattern=TIER_PATTERN)], TokenPrices] = Field(
        default_factory=dict,
        max_length=16,
        description="Token prices per service tier (flex, priority, scale, ...), applied when the response "
        "says that tier served it (its service_tier, not the requested one). A field a tier leaves unset "
        "takes the price above; a tier not listed is charged the prices above.",
    )
    hosted_tool_usd_per_call: dict[Annotated[str, Field(pattern=TOOL_PATTERN)], Annotated[float, Field(ge=0)]] = Field(
        default_factory=dict,
        max_length=32,
        description="Per-call price of hosted tools, billed outside token usage, keyed by the output item "
        "type without its _call suffix (web_search, file_search, code_interpreter, image_generation, ...). "
        "Each such item in a response's output counts as one call.",
    )


class MockSettings(_Model):
    text: str = Field(
        default="Hello from ModelGate's mock provider. This text is canned.",
        description="Text the mock upstream answers with, streamed word by word.",
    )
    first_token_delay_seconds: float = Field(default=0.0, ge=0, le=60, description="Delay before the first delta.")
    token_delay_seconds: float = Field(default=0.0, ge=0, le=10, description="Delay between deltas.")


class Translation(_Model):
    unsupported_tools: Literal["refuse", "drop"] = Field(
        default="refuse",
        description="What a chat_completions deployment does with tools it cannot run (hosted tools "
        "such as web_search or file_search, custom tools): refuse the request (400 naming the tool) or "
        "drop them so the model does not see them (Codex offers web_search on every request).",
    )


class Deployment(PoolAddresses):
    name: str = Field(
        pattern=NAME_PATTERN,
        description="Stable identifier. Response ids embed it, so renaming a deployment orphans "
        "its stored responses; editing anything else does not.",
    )
    provider: Provider = Field(default=Provider.OPENAI_COMPATIBLE, description="Upstream flavour.")
    api: UpstreamApi = Field(
        default=UpstreamApi.RESPONSES,
        description="API the upstream speaks: responses (bodies and events passed through) or "
        "chat_completions (translated both ways; see docs/translation.md).",
    )
    base_url: str = Field(
        default="",
        pattern=r"^(https?://[^\s]+)?$",
        description="Base URL including the API prefix, e.g. https://api.openai.com/v1. "
        "The gateway appends /responses or /chat/completions. Empty only for provider mock, or with "
        "baseUrls or serviceRef.",
    )
    model: str = Field(min_length=1, max_length=256, description="Model name sent upstream.")
    credentials: SecretRef | None = Field(
        default=None, description="Upstream API key. Sent as Bearer (api-key header for azure-openai)."
    )
    query_params: dict[str, str] = Field(
        default_factory=dict,
        description="Query parameters sent on every call to this deployment, e.g. Azure's api-version. "
        "They always win over a client's parameter of the same name; of the client's, only those the "
        "endpoint defines are forwarded (retrieve: stream, starting_after, include, include_obfuscation; "
        "input_items: after, before, limit, order, include).",
    )
    headers: dict[str, str] = Field(default_factory=dict, description="Extra non-secret request headers sent upstream.")
    timeouts: Timeouts = Field(default_factory=Timeouts, description="Per-attempt timeouts.")
    max_concurrent_requests: int | None = Field(
        default=None, ge=1, le=1_000_000, description="In-flight cap; a full deployment is skipped."
    )
    pricing: Pricing | None = Field(default=None, description="Overrides the model's pricing for traffic served here.")
    mock: MockSettings | None = Field(default=None, description="Settings of the mock provider.")
    organization: str | None = Field(
        default=None,
        pattern=NAME_PATTERN,
        description="Provider organisation (or project) whose state this deployment shares: encrypted "
        "reasoning and compaction items, prompt caches. Deployments with the same value may take each "
        "other's items; when a session moves to a deployment of another organisation (its own is down), "
        "those items are stripped from the input so the request succeeds. Unset: the deployment is its "
        "own organisation.",
    )
    translation: Translation = Field(
        default_factory=Translation, description="How a chat_completions deployment translates requests."
    )
    websocket: bool = Field(
        default=False,
        description="The upstream speaks the Responses API's WebSocket mode (OpenAI does): a client's WebSocket lane "
        "served here gets its own upstream socket, pinned to it. Otherwise each turn is one HTTP call.",
    )


# --- models -------------------------------------------------------------------------------


class Target(_Model):
    deployment: str = Field(pattern=NAME_PATTERN, description="Name of a deployment in spec.deployments.")
    weight: float = Field(default=1.0, ge=0, le=1_000_000, description="Relative share; 0 = standby.")


class RetryPolicy(_Model):
    max_attempts: int = Field(
        default=3, ge=1, le=20, description="Attempts across all deployments and fallback models."
    )
    total_timeout_seconds: float = Field(
        default=900.0, gt=0, le=86400, description="Deadline for the whole request, retries included."
    )
    max_retry_after_seconds: float = Field(
        default=10.0,
        ge=0,
        le=600,
        description="Longest a request waits for a rate-limited deployment's Retry-After, and only "
        "once no other deployment or fallback model can serve; a longer one gives the client a 429.",
    )
    retry_after_cap_seconds: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="Longest an upstream 429's Retry-After keeps a deployment out of rotation; longer "
        "values (including absurd ones such as inf or a far-off date) are cut to this (for a deployment "
        "several models use, the largest of their caps). Also bounds the Retry-After sent to clients.",
    )


class CooldownPolicy(_Model):
    consecutive_failures: int = Field(
        default=3, ge=1, le=1000, description="Failures in a row that cool a deployment down."
    )
    duration_seconds: float = Field(
        default=30.0, gt=0, le=3600, description="How long a cooled-down deployment is skipped before a probe."
    )


class RouteRef(_Model):
    namespace: str = Field(description="Namespace of the ModelRoute this model came from.")
    name: str = Field(description="Name of that ModelRoute.")
    generation: int | None = Field(default=None, description="metadata.generation rendered.")


class Model(_Model):
    name: str = Field(min_length=1, max_length=256, description="Public model name clients send.")
    route: RouteRef | None = Field(default=None, description="Source ModelRoute, set by the operator.")
    strategy: Strategy = Field(default=Strategy.WEIGHTED_RANDOM, description="Load-balancing strategy.")
    targets: list[Target] = Field(min_length=1, description="Deployments serving this model.")
    fallbacks: list[str] = Field(
        default_factory=list, description="Public model names tried in order when all targets fail."
    )
    retry: RetryPolicy = Field(default_factory=RetryPolicy, description="Retry budget.")
    cooldown: CooldownPolicy = Field(default_factory=CooldownPolicy, description="Ejection of failing deployments.")
    adaptive_weights: AdaptiveWeights = Field(default_factory=AdaptiveWeights, description="Weights that adapt.")
    pricing: Pricing = Field(default_factory=Pricing, description="Prices for this model's traffic.")


# --- gateway-wide policy ------------------------------------------------------------------


class BudgetWindow(enum.StrEnum):
    """The period a budget covers; calendar periods in UTC."""

    DAILY = "daily"
    MONTHLY = "monthly"
    TOTAL = "total"


class Budget(_Model):
    usd: float = Field(
        gt=0,
        le=1e6,
        description="Spend allowed per window, in USD: reported usage times the configured "
        "prices, the figures of modelgate_cost_usd_total.",
    )
    window: BudgetWindow = Field(
        default=BudgetWindow.MONTHLY, description="daily (UTC day), monthly (UTC calendar month) or total."
    )


class UsageLimits(_Model):
    requests_per_minute: int | None = Field(
        default=None, ge=1, le=100_000_000, description="Requests admitted per UTC minute (fixed window)."
    )
    tokens_per_minute: int | None = Field(
        default=None,
        ge=1,
        le=10_000_000_000,
        description="Input plus output tokens per UTC minute (fixed window). A request reserves its estimate "
        "when admitted and is charged its reported usage when it ends.",
    )
    max_concurrent_requests: int | None = Field(
        default=None, ge=1, le=1_000_000, description="Requests in flight at once, across all replicas."
    )
    budget: Budget | None = Field(default=None, description="Spend limit in USD per window.")


class ApiKey(_Model):
    name: str = Field(pattern=NAME_PATTERN, description="Key name, used in metrics and logs.")
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$", description="Hex SHA-256 of the key.")
    value_from: SecretRef | None = Field(default=None, description="Where the key itself is read from.")
    models: list[Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[^*]*[*]?$")]] = Field(
        default_factory=lambda: ["*"],
        description="Public models this key may use: names, or prefixes ending in '*' ('gpt-4o*'); '*' = all.",
    )
    tenant: str | None = Field(
        default=None,
        pattern=NAME_PATTERN,
        description="Owner of the responses this key creates. Keys with the same tenant share their "
        "response ids (retrieve, delete, cancel, input_items, previous_response_id); any other key "
        "gets 404 for them. Unset: the key is its own tenant. Give an old and a new key the same "
        "tenant to rotate without losing access to earlier responses.",
    )
    expires_at: datetime | None = Field(
        default=None,
        description="RFC 3339 time after which the key is refused (401); unset: never. A time without a zone is UTC.",
    )
    limits: UsageLimits | None = Field(
        default=None,
        description="Rate limits and budget of this key, counted across all replicas in Redis "
        "(spec.state.redisUrl); see docs/governance.md. The tenant's limits (spec.governance.tenants) apply too.",
    )


class Auth(_Model):
    keys: list[ApiKey] = Field(default_factory=list, description="Gateway API keys.")
    allow_unauthenticated: bool = Field(
        default=False, description="Serve requests without a key (local development only)."
    )


class ResponseIds(_Model):
    signing_key: SecretRef | None = Field(
        default=None,
        description="HMAC key that signs response ids. Every replica must share it. Unset: a "
        "random key per process (ids then survive neither restarts nor other replicas).",
    )


class Limits(_Model):
    max_request_body_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=1024,
        le=1024 * 1024 * 1024,
        description="Larger bodies get 413. Inline images make Responses bodies large.",
    )


class RequestLog(_Model):
    enabled: bool = Field(default=True, description="One JSON line per request.")
    path: str | None = Field(default=None, description="Append to this file instead of stdout.")
    include_content: bool = Field(
        default=False, description="Also log request input and output text. Off by default: prompts are data."
    )


class BackgroundFollowUp(_Model):
    enabled: bool = Field(
        default=True,
        description="Follow up every background response this gateway creates until it ends, to count its "
        "real usage once (whoever polls it, even nobody). With spec.state.redisUrl the replicas share the "
        "ledger, so each response is counted exactly once across replicas and restarts; without it, only "
        "within one process.",
    )
    poll_interval_seconds: float = Field(
        default=2.0, ge=0.05, le=600, description="First wait before asking the upstream; doubles per poll."
    )
    max_poll_interval_seconds: float = Field(
        default=60.0, ge=0.05, le=3600, description="Longest wait between two polls of one response."
    )
    deadline_seconds: float = Field(
        default=24 * 3600.0,
        ge=1,
        le=30 * 86400,
        description="Give up on a response this long after its create: it is counted as expired, uncharged.",
    )
    max_concurrent_polls: int = Field(default=8, ge=1, le=256, description="Polls in flight at once, per replica.")
    max_followed: int = Field(
        default=10_000,
        ge=1,
        le=1_000_000,
        description="Responses one replica follows at once; more wait in the shared ledger for a free slot.",
    )
    lease_seconds: float = Field(
        default=30.0,
        ge=0.2,
        le=3600,
        description="A replica's hold on the responses it follows; another replica takes over those of a replica "
        "that stopped renewing it (crash, restart) after this long.",
    )


class Tracing(_Model):
    enabled: bool = Field(
        default=False,
        description="Export an OTLP trace of every request: one server span, one client span per upstream "
        "attempt, with OpenTelemetry GenAI attributes. Never prompt or completion text.",
    )
    endpoint: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s]+$",
        description="OTLP/HTTP (protobuf) traces URL, e.g. http://otel-collector:4318/v1/traces. Required when "
        "enabled.",
    )
    service_name: str = Field(
        default="modelgate-gateway", min_length=1, max_length=128, description="The service.name resource attribute."
    )
    sample_ratio: float = Field(default=1.0, ge=0, le=1, description="Share of requests traced.")
    batch_delay_seconds: float = Field(
        default=5.0, ge=0.01, le=60, description="Longest a finished span waits before it is sent, in a batch."
    )
    timeout_seconds: float = Field(default=10.0, gt=0, le=60, description="Timeout of one export call.")

    @model_validator(mode="after")
    def _endpoint_when_enabled(self) -> Tracing:
        if self.enabled and not self.endpoint:
            raise ValueError("tracing.endpoint is required when tracing is enabled")
        return self


class Observability(_Model):
    end_user_header: str | None = Field(
        default="x-modelgate-end-user",
        description="Header naming the end user; the body's user / safety_identifier wins over it.",
    )
    end_user_label_limit: int = Field(
        default=100, ge=0, le=100_000, description="Distinct end_user label values; beyond it: 'other'."
    )
    request_log: RequestLog = Field(default_factory=RequestLog, description="Per-request log line.")
    tracing: Tracing = Field(default_factory=Tracing, description="OTLP traces (off by default).")
    background_follow_up: BackgroundFollowUp = Field(
        default_factory=BackgroundFollowUp, description="Counting background responses when they end."
    )


class StateStore(_Model):
    redis_url: str | None = Field(
        default=None,
        pattern=r"^rediss?://",
        description="Redis shared by all replicas, for state of chat-completions conversations.",
    )
    redis_password: SecretRef | None = Field(default=None, description="Redis password, if any.")
    ttl_seconds: int = Field(default=30 * 86400, ge=60, description="How long stored state lives.")


class RedisFailurePolicy(enum.StrEnum):
    """What a request of a limited key gets while Redis cannot be reached."""

    FAIL_OPEN = "fail-open"
    FAIL_CLOSED = "fail-closed"


class TenantLimits(_Model):
    name: str = Field(pattern=NAME_PATTERN, description="Tenant, as in spec.auth.keys[].tenant.")
    limits: UsageLimits = Field(description="Limits shared by every key of the tenant, on top of each key's own.")


class Governance(_Model):
    tenants: list[TenantLimits] = Field(default_factory=list, description="Limits per tenant.")
    on_redis_failure: RedisFailurePolicy = Field(
        default=RedisFailurePolicy.FAIL_OPEN,
        description="fail-open: serve without limits, counted in modelgate_governance_redis_failures_total "
        "and logged; fail-closed: answer 503 until Redis is back.",
    )
    redis_timeout_seconds: float = Field(
        default=0.5, gt=0, le=30, description="Bound on one Redis round trip (connect included)."
    )
    retry_redis_after_seconds: float = Field(
        default=1.0,
        ge=0,
        le=300,
        description="After a Redis failure, requests get the failure policy without trying Redis for this "
        "long, so an unreachable Redis costs no timeout per request.",
    )
    default_max_output_tokens: int = Field(
        default=4096,
        ge=1,
        le=10_000_000,
        description="Output tokens reserved for a request that sets no max_output_tokens.",
    )
    input_bytes_per_token: float = Field(
        default=4.0,
        gt=0,
        le=64,
        description="Input tokens reserved per byte of request body: body bytes divided by this.",
    )


class Affinity(_Model):
    headers: list[Annotated[str, Field(pattern=HEADER_NAME_PATTERN)]] = Field(
        default_factory=list,
        max_length=8,
        description="Client headers that name a session (e.g. session-id, which Codex sends). A request "
        "with one of them or a prompt_cache_key sticks to one deployment of its model (rendezvous hashing: "
        "see docs/operations.md). The body's prompt_cache_key wins.",
    )


HEADER_NAME_PATTERN = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$"
NEVER_FORWARDED = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "api-key",
        "x-api-key",
        "cookie",
        "host",
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "x-request-id",
        "x-client-request-id",
    }
)
"""Client credentials, and headers the gateway itself sets for every upstream call."""


def _forwardable(names: list[str]) -> list[str]:
    refused = sorted({name for name in names if name.lower() in NEVER_FORWARDED})
    if refused:
        raise ValueError(f"these headers are never forwarded (credentials or set by the gateway): {refused}")
    return names


class Metadata(_Model):
    generation: int | None = Field(default=None, ge=0, description="Monotonic render counter.")
    checksum: str | None = Field(
        default=None,
        pattern=r"^sha256:[0-9a-f]{64}$",
        description="sha256 of the canonical JSON of spec; verified on load when present.",
    )
    rendered_by: str | None = Field(default=None, description="Who rendered the document.")


class Spec(_Model):
    deployments: list[Deployment] = Field(default_factory=list, description="Upstream deployments.")
    models: list[Model] = Field(default_factory=list, description="Public models.")
    auth: Auth = Field(default_factory=Auth, description="Gateway API keys.")
    response_ids: ResponseIds = Field(default_factory=ResponseIds, description="Response id signing.")
    limits: Limits = Field(default_factory=Limits, description="Request limits.")
    websocket: WebSocketMode = Field(default_factory=WebSocketMode, description="WebSocket mode on /v1/responses.")
    observability: Observability = Field(default_factory=Observability, description="Metrics and logs.")
    state: StateStore = Field(default_factory=StateStore, description="Shared state store.")
    governance: Governance = Field(
        default_factory=Governance, description="Budgets and rate limits (needs spec.state.redisUrl)."
    )
    affinity: Affinity = Field(default_factory=Affinity, description="Session affinity.")
    forward_headers: Annotated[
        list[Annotated[str, Field(pattern=HEADER_NAME_PATTERN)]], AfterValidator(_forwardable)
    ] = Field(
        default_factory=lambda: ["OpenAI-Beta", "Idempotency-Key"],
        max_length=16,
        description="Client request headers passed on to Responses upstreams (names, case-insensitive): those the "
        "API defines for behaviour. Never credentials (Authorization, api-key, Cookie, ...) nor headers the gateway "
        "sets itself (refused here); a deployment's own `headers` win over a client's of the same name. Values "
        "over 1024 characters or not printable ASCII are not forwarded.",
    )


class GatewayConfig(_Model):
    api_version: Literal["config.modelgate.dev/v1alpha1"] = Field(description="Schema version.")
    kind: Literal["GatewayConfig"] = Field(description="Always GatewayConfig.")
    metadata: Metadata = Field(default_factory=Metadata, description="Provenance.")
    spec: Spec = Field(description="Routing and policy.")
