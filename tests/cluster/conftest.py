"""The cluster layer: tests against a real kube-apiserver (+ etcd, kube-controller-manager).

One control plane per test session (started on first use, ~3 s), the repository's CRDs applied
once; each test gets a fresh namespace. Every test here skips when ``$KUBEBUILDER_ASSETS`` is unset
(``.ci/run`` and ``make test`` install the assets and set it).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

import envtest
from kube_cluster import Cluster


@pytest.fixture(autouse=True)
def _requires_envtest_assets() -> None:
    if envtest.assets_dir() is None:
        if os.environ.get("MODELGATE_REQUIRE_ENVTEST") == "1":  # .ci/run: never skip silently
            pytest.fail(envtest.INSTALL_HINT)
        pytest.skip(envtest.INSTALL_HINT)


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """The session's control plane with the repository's CRDs (ModelRoute, kopf peerings) established."""
    assets = envtest.assets_dir()
    if assets is None:
        pytest.skip(envtest.INSTALL_HINT)
    plane = envtest.start(assets)
    kube = Cluster(plane)
    try:
        kube.apply_crds()
        yield kube
    finally:
        kube.close()
        plane.stop()


@pytest.fixture()
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace named after the test; deleted (not waited for) afterwards."""
    name = cluster.create_namespace(request.node.name)
    yield name
    cluster.delete_namespace(name)


@pytest.fixture()
def platform_and_teams(cluster: Cluster) -> Iterator[tuple[str, ...]]:
    """Sidecar mode: the operator's (platform) namespace and two team namespaces, fresh."""
    from sidecar_cluster import fresh_namespaces

    with fresh_namespaces(cluster, "platform", "team-a", "team-b") as names:
        yield names
