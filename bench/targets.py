"""The processes of a benchmark run: fake upstream, floor proxy and gateway, and their config.

The gateway runs the real path with every feature on: a generated config document whose
deployments are ``openai-compatible`` and point at the fake upstream (with an upstream key from
the environment), auth on (the quickstart key), pricing on every model, metrics on a port, and the
request log written to a file (or ``/dev/null``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import procs

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
API_KEY = "sk-modelgate-quickstart"
UPSTREAM_KEY_ENV = "MODELGATE_BENCH_UPSTREAM_KEY"
MODELS = ("bench", "paced-20")  # the fake upstream paces "paced-<ms>" models
PROXY_CPU, LOAD_CPU = 0, 1


@dataclass(frozen=True)
class Ports:
    upstream: int = 18001
    floor: int = 18002
    gateway: int = 18003
    gateway_metrics: int = 18004


def gateway_executable() -> str | None:
    """Path of ``modelgate-gateway`` if it exists and ``--help`` works, else None."""
    exe = Path(PYTHON).parent / "modelgate-gateway"
    path = str(exe) if exe.exists() else shutil.which("modelgate-gateway")
    if path is None:
        return None
    try:
        done = subprocess.run([path, "--help"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return path if done.returncode == 0 else None


def gateway_config(upstream_port: int, request_log: str) -> dict[str, object]:
    """A config document with every feature on, routing each bench model to the fake upstream."""
    deployments = [
        {
            "name": f"fake-{model}",
            "provider": "openai-compatible",
            "baseUrl": f"http://127.0.0.1:{upstream_port}/v1",
            "model": model,
            "credentials": {"env": UPSTREAM_KEY_ENV},
        }
        for model in MODELS
    ]
    models = [
        {
            "name": model,
            "targets": [{"deployment": f"fake-{model}", "weight": 1}],
            "pricing": {
                "inputUsdPerMillionTokens": 2.5,
                "cachedInputUsdPerMillionTokens": 1.25,
                "outputUsdPerMillionTokens": 10,
            },
        }
        for model in MODELS
    ]
    key_hash = hashlib.sha256(API_KEY.encode()).hexdigest()
    return {
        "apiVersion": "config.modelgate.dev/v1alpha1",
        "kind": "GatewayConfig",
        "metadata": {"renderedBy": "bench"},
        "spec": {
            "deployments": deployments,
            "models": models,
            "auth": {"keys": [{"name": "bench", "sha256": key_hash}]},
            "observability": {"requestLog": {"enabled": True, "path": request_log}},
        },
    }


def validate_config(doc: dict[str, object]) -> str:
    """'ok', or why the gateway's own validator rejects ``doc`` (or that it is unavailable)."""
    try:
        from modelgate_gateway.config import ConfigError, validate_data
    except ImportError as exc:
        return f"validator unavailable: {exc}"
    try:
        validate_data(doc, source="bench")
    except ConfigError as exc:
        return "; ".join(exc.errors)
    return "ok"


def start_upstream(ports: Ports, deltas: int, logdir: Path) -> procs.Proc:
    cmd = [PYTHON, str(HERE / "fake_upstream.py"), "--port", str(ports.upstream), "--deltas", str(deltas)]
    return procs.start(
        "upstream", cmd, cpus={LOAD_CPU}, ready_port=ports.upstream, ready_path="/healthz", log=logdir / "upstream.log"
    )


def start_floor(ports: Ports, logdir: Path, *, workers: int = 1, pinned: bool = True) -> procs.Proc:
    cmd = [
        PYTHON,
        str(HERE / "floor_proxy.py"),
        "--port",
        str(ports.floor),
        "--upstream",
        f"http://127.0.0.1:{ports.upstream}",
        "--workers",
        str(workers),
    ]
    return procs.start(
        f"floor-w{workers}",
        cmd,
        cpus={PROXY_CPU} if pinned else None,
        ready_port=ports.floor,
        ready_path="/healthz",
        log=logdir / f"floor-w{workers}.log",
    )


def gateway_args(config: Path, ports: Ports) -> list[str]:
    """The gateway's command-line arguments on the bench ports (after the executable or a wrapper)."""
    return [
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        str(ports.gateway),
        "--metrics-port",
        str(ports.gateway_metrics),
    ]


def write_gateway_config(ports: Ports, request_log: str, workdir: Path) -> Path:
    path = workdir / "gateway-config.json"
    path.write_text(json.dumps(gateway_config(ports.upstream, request_log), indent=2))
    return path


def start_gateway(
    exe: str,
    config: Path,
    ports: Ports,
    logdir: Path,
    *,
    workers: int = 1,
    pinned: bool = True,
    tag: str = "",
) -> procs.Proc:
    cmd = [exe, *gateway_args(config, ports)]
    if workers != 1:
        cmd += ["--workers", str(workers)]
    name = f"gateway-w{workers}{tag}"
    return procs.start(
        name,
        cmd,
        cpus={PROXY_CPU} if pinned else None,
        ready_port=ports.gateway,
        ready_path="/readyz",
        log=logdir / f"{name}.log",
        env={UPSTREAM_KEY_ENV: "sk-bench-upstream", "MODELGATE_SHUTDOWN_GRACE_SECONDS": "1"},
    )
