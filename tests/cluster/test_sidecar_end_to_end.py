"""End to end on a real API server: a pod created through the webhook, and a gateway process
started exactly as its sidecar container is (tests/support/sidecar_process.py), serving its
namespace's config to the official openai SDK at the OPENAI_BASE_URL injected into the app
container; following `kubectl apply` within 2 s; counted in the route's status once it runs."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from cluster_operator import route, route_status
from kube_cluster import Cluster
from sidecar_cluster import SidecarOperator, injected_sidecar, sidecar_operator, wait_until
from sidecar_process import SidecarProcess


def _mock(text: str) -> dict[str, Any]:
    return {"name": "mock", "provider": "mock", "upstreamModel": "canned", "mock": {"text": text}}


@pytest.fixture()
def namespaces(platform_and_teams: tuple[str, ...]) -> tuple[str, ...]:
    return platform_and_teams


@pytest.fixture()
def injector(cluster: Cluster, namespaces: tuple[str, ...], tmp_path: Path) -> Iterator[SidecarOperator]:
    platform, team_a, team_b = namespaces
    cluster.apply(
        route("shared", "shared-model", _mock("shared by the platform"), sidecars={"shareWith": [team_a]}), platform
    )
    cluster.apply(route("a-chat", "gpt-4o", _mock("hello from team a"), sidecars={"attach": True}), team_a)
    cluster.apply(route("b-chat", "b-model", _mock("team b only"), sidecars={"attach": True}), team_b)
    with sidecar_operator(cluster, platform, namespaces, tmp_path) as running:
        yield running


@pytest.fixture()
def sidecar(
    cluster: Cluster, namespaces: tuple[str, ...], injector: SidecarOperator, tmp_path: Path
) -> Iterator[tuple[SidecarProcess, dict[str, Any]]]:
    with injected_sidecar(cluster, namespaces[1], tmp_path) as running:
        yield running


def _client(pod: dict[str, Any]) -> openai.OpenAI:
    """The app's SDK, configured only by what the webhook injected (any key: pod-local trust)."""
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    return openai.OpenAI(base_url=env["OPENAI_BASE_URL"], api_key="anything", max_retries=0, timeout=10)


def test_the_sidecar_serves_its_namespace_config_to_the_sdk(
    cluster: Cluster, namespaces: tuple[str, ...], sidecar: tuple[SidecarProcess, dict[str, Any]]
) -> None:
    process, pod = sidecar
    process.wait_ready()
    client = _client(pod)
    first = client.responses.create(model="gpt-4o", input="hi")
    assert first.output_text == "hello from team a"
    streamed = [e.type for e in client.responses.create(model="shared-model", input="hi", stream=True)]
    assert streamed[0] == "response.created" and streamed[-1] == "response.completed"
    # Response ids work as on the shared gateway: a follow-up and a retrieve reach the deployment.
    follow_up = client.responses.create(model="gpt-4o", input="again", previous_response_id=first.id)
    assert client.responses.retrieve(follow_up.id).id == follow_up.id
    with pytest.raises(openai.NotFoundError):  # team b's model is not in team a's document
        client.responses.create(model="b-model", input="hi")
    assert {m.id for m in client.models.list()} == {"gpt-4o", "shared-model"}
    # The request log goes to the sidecar's stdout (written off the request path: poll for it).
    wait_until(
        lambda: (
            {json.loads(line).get("model") for line in process.stdout().splitlines() if line.startswith("{")}
            >= {"gpt-4o", "shared-model"}
        ),
        10,
        "request log lines on stdout",
    )


def test_the_sidecar_follows_kubectl_apply_within_two_seconds(
    cluster: Cluster, namespaces: tuple[str, ...], sidecar: tuple[SidecarProcess, dict[str, Any]]
) -> None:
    process, pod = sidecar
    process.wait_ready()
    client = _client(pod)
    assert client.responses.create(model="gpt-4o", input="hi").output_text == "hello from team a"
    applied = time.monotonic()
    cluster.apply(route("a-chat", "gpt-4o", _mock("team a, second version"), sidecars={"attach": True}), namespaces[1])
    wait_until(
        lambda: client.responses.create(model="gpt-4o", input="hi").output_text == "team a, second version",
        10,
        "the sidecar serving the new version",
    )
    elapsed = time.monotonic() - applied
    assert elapsed < 2.0, f"{elapsed:.2f} s from kubectl apply to the sidecar serving it"


def test_a_running_sidecar_is_counted_in_the_route_status(
    cluster: Cluster, namespaces: tuple[str, ...], sidecar: tuple[SidecarProcess, dict[str, Any]]
) -> None:
    platform, team_a, _ = namespaces
    process, pod = sidecar
    process.wait_ready()
    # No kubelet here: the test reports the pod running at the address its sidecar listens on.
    cluster.request(
        "PATCH",
        f"/api/v1/namespaces/{team_a}/pods/{pod['metadata']['name']}/status",
        {"status": {"phase": "Running", "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}]}},
        content_type="application/merge-patch+json",
    )
    for namespace, name in ((team_a, "a-chat"), (platform, "shared")):
        wait_until(
            lambda ns=namespace, n=name: route_status(cluster, ns, n).get("sidecars") == "1/1",
            20,
            f"{name} counts the sidecar",
        )
    ready = next(c for c in route_status(cluster, team_a, "a-chat")["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "Serving")
    assert "1/1 sidecars" in ready["message"]
