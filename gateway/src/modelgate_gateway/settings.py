"""Process settings of the gateway, from the command line and ``MODELGATE_*`` variables.

*Settings* are process knobs (ports, paths, drain time); the *config* is the routing document
(:mod:`modelgate_gateway.config`), which can change while the process runs. Environment variables
are read here and nowhere else; a flag beats its variable.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    config_path: str | None
    host: str = "127.0.0.1"
    port: int = 4000
    metrics_host: str | None = None
    metrics_port: int = 9090
    """0 disables the metrics listener."""
    secrets_dir: str | None = None
    workers: int = 1
    shutdown_grace_seconds: float = 25.0
    """Below the chart's terminationGracePeriodSeconds, so streams drain before SIGKILL."""
    reload_interval_seconds: float = 2.0
    client_header_timeout_seconds: float = 10.0
    """Complete request headers must arrive within this, from accept or a request's first byte."""
    client_body_timeout_seconds: float = 60.0
    """The whole request body must arrive within this after its headers (answering is unbounded)."""
    client_idle_timeout_seconds: float = 75.0
    """Idle keep-alive connections close after this; above common load balancers' 60 s."""
    max_client_connections: int = 8192
    """Open client connections per process; lowered to half the open-file limit if that is less."""
    log_level: str = "info"
    kube_configmap: str | None = None
    kube_config_key: str = "config.json"
    kube_secret: str | None = None
    kubeconfig: str | None = None
    """Kubeconfig file(s) to follow a cluster from outside it; None: in-cluster, else ~/.kube/config."""
    kube_context: str | None = None


def _env(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(f"MODELGATE_{name}")
    return value if value else None


def add_serve_arguments(parser: argparse.ArgumentParser, env: Mapping[str, str]) -> None:
    def opt(flag: str, var: str, default: object, kind: type = str, help_: str = "") -> None:
        raw = _env(env, var)
        value = kind(raw) if raw is not None else default
        parser.add_argument(flag, default=value, type=kind, help=f"{help_} (env MODELGATE_{var})")

    opt("--config", "CONFIG", None, str, "config document, YAML or JSON")
    opt("--host", "HOST", "127.0.0.1", str, "client-facing listen address")
    opt("--port", "PORT", 4000, int, "client-facing port")
    opt("--metrics-host", "METRICS_HOST", None, str, "metrics listen address (default: --host)")
    opt("--metrics-port", "METRICS_PORT", 9090, int, "Prometheus /metrics port; 0 disables")
    opt("--secrets-dir", "SECRETS_DIR", None, str, "directory resolving secretKey references")
    opt("--workers", "WORKERS", 1, int, "processes sharing the port (SO_REUSEPORT)")
    opt("--shutdown-grace-seconds", "SHUTDOWN_GRACE_SECONDS", 25.0, float, "drain time after SIGTERM")
    opt("--reload-interval-seconds", "RELOAD_INTERVAL_SECONDS", 2.0, float, "config file poll period")
    opt("--client-header-timeout-seconds", "CLIENT_HEADER_TIMEOUT_SECONDS", 10.0, float,
        "time for a request's headers, from accept or its first byte")
    opt("--client-body-timeout-seconds", "CLIENT_BODY_TIMEOUT_SECONDS", 60.0, float,
        "time for a request's whole body after its headers")
    opt("--client-idle-timeout-seconds", "CLIENT_IDLE_TIMEOUT_SECONDS", 75.0, float,
        "idle keep-alive connections close after this")
    opt("--max-client-connections", "MAX_CLIENT_CONNECTIONS", 8192, int,
        "open client connections per process (at most half the open-file limit)")
    opt("--log-level", "LOG_LEVEL", "info", str, "debug, info, warning or error")
    opt("--kube-configmap", "KUBE_CONFIGMAP", None, str, "namespace/name of a ConfigMap to watch")
    opt("--kube-config-key", "KUBE_CONFIG_KEY", "config.json", str, "key of the document in it")
    opt("--kube-secret", "KUBE_SECRET", None, str, "namespace/name of the upstream-keys Secret to watch")
    # kubectl's variable too: `KUBECONFIG=... modelgate-gateway --kube-configmap ...` just works.
    parser.add_argument("--kubeconfig", default=_env(env, "KUBECONFIG") or env.get("KUBECONFIG") or None,
                        help="kubeconfig path(s) for --kube-configmap outside a pod; default: in-cluster "
                             "service account, else ~/.kube/config (env MODELGATE_KUBECONFIG or KUBECONFIG)")
    opt("--kube-context", "KUBE_CONTEXT", None, str, "kubeconfig context (default: its current-context)")


def settings_from_args(args: argparse.Namespace) -> GatewaySettings:
    if args.workers < 1:
        raise SystemExit("--workers must be at least 1")
    for flag in ("client_header_timeout_seconds", "client_body_timeout_seconds", "client_idle_timeout_seconds"):
        if not 0 < getattr(args, flag) < math.inf:
            raise SystemExit(f"--{flag.replace('_', '-')} must be positive")
    if args.max_client_connections < 1:
        raise SystemExit("--max-client-connections must be at least 1")
    if args.shutdown_grace_seconds < 0:
        raise SystemExit("--shutdown-grace-seconds must not be negative")
    return GatewaySettings(
        config_path=args.config,
        host=args.host,
        port=args.port,
        metrics_host=args.metrics_host,
        metrics_port=args.metrics_port,
        secrets_dir=args.secrets_dir,
        workers=args.workers,
        shutdown_grace_seconds=args.shutdown_grace_seconds,
        reload_interval_seconds=args.reload_interval_seconds,
        client_header_timeout_seconds=args.client_header_timeout_seconds,
        client_body_timeout_seconds=args.client_body_timeout_seconds,
        client_idle_timeout_seconds=args.client_idle_timeout_seconds,
        max_client_connections=args.max_client_connections,
        log_level=args.log_level,
        kube_configmap=args.kube_configmap,
        kube_config_key=args.kube_config_key,
        kube_secret=args.kube_secret,
        kubeconfig=args.kubeconfig,
        kube_context=args.kube_context,
    )


def parse_settings(argv: Sequence[str], env: Mapping[str, str] | None = None) -> GatewaySettings:
    parser = argparse.ArgumentParser(prog="modelgate-gateway serve")
    add_serve_arguments(parser, os.environ if env is None else env)
    return settings_from_args(parser.parse_args(list(argv)))
