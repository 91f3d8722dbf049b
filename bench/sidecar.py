"""Sidecar footprint: idle memory and time to ready of a gateway started as the injected sidecar.

    KUBEBUILDER_ASSETS=/tmp/envtest python bench/sidecar.py            # 5 starts, ~30 s
    KUBEBUILDER_ASSETS=/tmp/envtest python bench/sidecar.py --runs 10 --json bench/results/sidecar.json

A real kube-apiserver (envtest assets, as the cluster tests use) holds a namespace's rendered
config and upstream-keys Secret (two routes, rendered by the operator's own per-namespace
rendering); the chart's sidecar ClusterRole is bound to the pod's ServiceAccount. Each run builds
the pod through the webhook's mutation and starts the sidecar container's command line exactly
(see tests/support/sidecar_process.py), then measures:

- time to ready: process spawn until the admin port's /readyz answers 200 (what the startup
  probe waits for: Python start, imports, the API watch, the first config loaded);
- idle memory: VmRSS (and its anonymous / file-backed parts) after 3 s without requests, and
  again after 200 requests through the official SDK (steady state, not a leak test).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "support"))

import jsonpatch  # noqa: E402
from openai import OpenAI  # noqa: E402

import envtest  # noqa: E402
from chart_helm import find, render  # noqa: E402
from gateway_process import free_port  # noqa: E402
from kube_cluster import Cluster  # noqa: E402
from modelgate_operator.injection.mutation import decide  # noqa: E402
from modelgate_operator.injection.template import SidecarTemplate  # noqa: E402
from modelgate_operator.rendering.resources import parse_route  # noqa: E402
from modelgate_operator.rendering.sidecars import NamespaceKeys, Scope, render_namespace  # noqa: E402
from sidecar_process import SidecarProcess  # noqa: E402

NAMESPACE = "bench-sidecar"
IDLE_SECONDS = 3.0


def _route(name: str, model: str) -> dict[str, Any]:
    return {
        "apiVersion": "modelgate.dev/v1alpha1",
        "kind": "ModelRoute",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "generation": 1,
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": {
            "model": model,
            "sidecars": {"attach": True},
            "deployments": [
                {"name": "mock", "provider": "mock", "upstreamModel": model, "mock": {"text": "hello from the sidecar"}}
            ],
        },
    }


def _publish(cluster: Cluster, template: SidecarTemplate) -> None:
    pairs = (("chat", "gpt-4o"), ("mini", "gpt-4o-mini"))
    routes = [parse_route(_route(name, model), "modelgate") for name, model in pairs]
    rendered = render_namespace(
        NAMESPACE,
        routes,
        {},
        None,
        Scope("modelgate", frozenset()),
        NamespaceKeys(signing_key=os.urandom(32)),
        generation=1,
    )
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": template.configmap},
            "data": {"config.json": rendered.document.decode()},
        },
        NAMESPACE,
    )
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": template.secret},
            "data": {k: base64.b64encode(v).decode() for k, v in rendered.secret_data.items()},
        },
        NAMESPACE,
    )


def _pod(template: SidecarTemplate, index: int, port: int, admin_port: int) -> dict[str, Any]:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"app-{index}",
            "namespace": NAMESPACE,
            "annotations": {
                "modelgate.dev/inject": "true",
                "modelgate.dev/port": str(port),
                "modelgate.dev/admin-port": str(admin_port),
            },
        },
        "spec": {"serviceAccountName": "app", "containers": [{"name": "app", "image": "example.com/app:1"}]},
    }
    decision = decide(pod, NAMESPACE, False, template)
    return dict(jsonpatch.apply_patch(pod, [dict(op) for op in decision.patch]))


def _requests(base_url: str, count: int) -> None:
    client = OpenAI(base_url=base_url, api_key="pod-local", max_retries=0, timeout=10)
    for index in range(count):
        client.responses.create(model="gpt-4o" if index % 2 else "gpt-4o-mini", input="hi", stream=bool(index % 3 == 0))
    client.close()


def measure(runs: int) -> dict[str, Any]:
    assets = envtest.assets_dir()
    if assets is None:
        raise SystemExit(envtest.INSTALL_HINT)
    plane = envtest.start(assets)
    cluster = Cluster(plane)
    results: list[dict[str, Any]] = []
    try:
        objects = render(sets=("sidecar.enabled=true",))
        template = SidecarTemplate.from_data(
            json.loads(find(objects, "ConfigMap", "modelgate-sidecar-template")["data"]["sidecar.json"])
        )
        cluster.request(
            "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
        )
        cluster.apply(find(objects, "ClusterRole", "modelgate-sidecar"))
        cluster.apply(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "modelgate-sidecar"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "modelgate-sidecar",
                },
                "subjects": [{"kind": "ServiceAccount", "name": "app", "namespace": NAMESPACE}],
            },
            NAMESPACE,
        )
        _publish(cluster, template)
        token = cluster.service_account_token(NAMESPACE, "app")
        kubeconfig = cluster.write_kubeconfig(Path(plane.run_dir) / "sidecar.kubeconfig", token=token)
        for index in range(runs):
            sidecar = SidecarProcess(_pod(template, index, free_port(), free_port()), kubeconfig)
            started = time.monotonic()
            sidecar.start()
            try:
                ready = sidecar.wait_ready()
                time.sleep(IDLE_SECONDS)  # idle: no request, the API watch open
                idle = sidecar.memory_kib()
                _requests(sidecar.base_url, 200)
                time.sleep(0.5)
                served = sidecar.memory_kib()
            finally:
                sidecar.stop()
            results.append(
                {
                    "ready_s": round(ready, 3),
                    "idle_kib": idle,
                    "after_200_kib": served,
                    "wall_s": round(time.monotonic() - started, 2),
                }
            )
            print(
                f"run {index + 1}: ready {ready:.3f} s, idle RSS {idle['VmRSS'] / 1024:.1f} MiB "
                f"(anon {idle['RssAnon'] / 1024:.1f}, file {idle['RssFile'] / 1024:.1f}), "
                f"after 200 requests {served['VmRSS'] / 1024:.1f} MiB",
                flush=True,
            )
    finally:
        cluster.close()
        plane.stop()
    return {
        "runs": results,
        "summary": _summary(results),
        "machine": os.uname().machine,
        "cpus": os.cpu_count(),
        "loadavg": os.getloadavg(),
    }


def _summary(results: list[dict[str, Any]]) -> dict[str, float]:
    def median(values: list[float]) -> float:
        return round(statistics.median(values), 3)

    return {
        "ready_s_median": median([r["ready_s"] for r in results]),
        "ready_s_max": max(r["ready_s"] for r in results),
        "idle_rss_mib_median": median([r["idle_kib"]["VmRSS"] / 1024 for r in results]),
        "idle_anon_mib_median": median([r["idle_kib"]["RssAnon"] / 1024 for r in results]),
        "after_200_rss_mib_median": median([r["after_200_kib"]["VmRSS"] / 1024 for r in results]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None, help="also write every figure here")
    args = parser.parse_args()
    data = measure(args.runs)
    print(json.dumps(data["summary"], indent=2))
    if args.json:
        args.json.write_text(json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    main()
