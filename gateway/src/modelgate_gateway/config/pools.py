"""Deployments that are a pool of servers: a Kubernetes Service's endpoints, or a list of URLs.

A self-hosted model (vLLM, SGLang, TGI) usually runs as several replicas behind a Service. Sent to
the Service's address, requests land on a random pod (kube-proxy), whatever its queue, and a
follow-up (``previous_response_id``, retrieve) lands on a pod that does not hold the response
(vLLM keeps stored responses in process memory). A pool deployment names the replicas instead:
the gateway balances across them by their load and pins each response to the replica that made it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from .documentmodel import DocumentModel as _Model

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
PORT_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]{0,13}[a-z0-9])?$"


class ServiceRef(_Model):
    namespace: str = Field(pattern=DNS_LABEL_PATTERN, description="Namespace of the Service.")
    name: str = Field(pattern=DNS_LABEL_PATTERN, description="Name of the Service.")
    port: Annotated[int, Field(ge=1, le=65535)] | Annotated[str, Field(pattern=PORT_NAME_PATTERN)] = Field(
        description="Which port of the Service's endpoints to call: the port's name (as in the Service), or "
        "the number the pods listen on (the targetPort; the gateway calls pods directly, never the Service's "
        "cluster IP). A Service with one unnamed port: its number.",
        union_mode="left_to_right",
    )
    scheme: Literal["http", "https"] = Field(default="http", description="Scheme of the calls to the pods.")
    path: str = Field(
        default="/v1",
        pattern=r"^(/[A-Za-z0-9._~%!$&'()*+,;=:@-]*)*$",
        max_length=256,
        description="API prefix on the pods (the gateway appends /responses or /chat/completions).",
    )


class LoadMetrics(_Model):
    path: str = Field(
        default="/metrics",
        pattern=r"^/[A-Za-z0-9._~/-]*$",
        max_length=256,
        description="Prometheus text endpoint of each server (vLLM, SGLang and TGI serve /metrics).",
    )
    port: int | None = Field(
        default=None, ge=1, le=65535, description="Port of the metrics endpoint; unset: the serving port."
    )
    interval_seconds: float = Field(default=1.0, ge=0.1, le=60, description="How often each server is read.")
    timeout_seconds: float = Field(default=0.5, gt=0, le=10, description="Timeout of one read (connect included).")
    stale_seconds: float = Field(
        default=5.0,
        gt=0,
        le=600,
        description="A reading older than this is ignored: the server is judged by the gateway's own in-flight "
        "requests to it until a read succeeds again.",
    )
    saturated_queue: int = Field(
        default=8,
        ge=1,
        le=100_000,
        description="Waiting requests (queue depth) at which a server counts as saturated: a session pinned to it "
        "then goes to the least loaded server instead.",
    )
    saturated_kv_cache: float = Field(
        default=0.95, gt=0, le=1, description="KV-cache usage (0..1) at which a server counts as saturated."
    )


class AdaptiveWeights(_Model):
    enabled: bool = Field(
        default=False,
        description="Shift a weighted-random model's traffic away from a deployment whose latency or error rate "
        "degrades, and back as it recovers (see docs/operations.md, picking).",
    )
    floor: float = Field(
        default=0.1,
        ge=0.01,
        le=1,
        description="Least share of its configured weight a deployment keeps, however bad its signal: it keeps "
        "being measured, so it can recover.",
    )


class PoolAddresses(_Model):
    """The fields of a deployment that make it a pool (``Deployment`` inherits them)."""

    base_urls: list[Annotated[str, Field(pattern=r"^https?://[^\s]+$")]] = Field(
        default_factory=list,
        max_length=256,
        description="Instead of baseUrl: the base URLs of several servers of one pool (replicas of one model "
        "server), one per host:port. Each is its own failure unit; responses stay with the server that made them.",
    )
    service_ref: ServiceRef | None = Field(
        default=None,
        description="Instead of baseUrl: a Kubernetes Service whose ready endpoints (EndpointSlices, followed "
        "live) are the pool's servers. The gateway calls the pods directly.",
    )
    load_metrics: LoadMetrics | None = Field(
        default=None,
        description="Read each server's Prometheus metrics (queue depth, KV-cache usage) to pick the least "
        "loaded one (baseUrls and serviceRef only). Unset: servers are judged by the gateway's own in-flight "
        "requests.",
    )
