"""Which API the EndpointSlice follower of serviceRef pools uses: the config's, the pod's, a kubeconfig's, or none."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelgate_gateway import main
from modelgate_gateway.settings import parse_settings
from modelgate_gateway.sources.endpointslices import EndpointSliceFollower
from modelgate_gateway.sources.kube import KubeSource
from modelgate_gateway.sources.preferring import PreferringSource


def test_without_any_kubernetes_api_there_is_no_follower(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert main._endpoint_slices(parse_settings(["--config", "x.yaml"], env={}), object()) is None


def test_a_pod_without_a_mounted_token_starts_and_follows_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setattr("modelgate_gateway.sources.kube.SERVICE_ACCOUNT_DIR", Path("/nonexistent-service-account"))
    assert main._endpoint_slices(parse_settings(["--config", "x.yaml"], env={}), object()) is None


def test_the_config_watch_and_the_follower_share_one_api_server(tmp_path: Path) -> None:
    kube = KubeSource("https://api.example:6443", "token-1", "ns/cm")
    for source in (kube, PreferringSource(kube, kube)):
        follower = main._endpoint_slices(parse_settings(["--config", "x.yaml"], env={}), source)
        assert isinstance(follower, EndpointSliceFollower)
        assert follower.server == "https://api.example:6443"
        assert follower._headers() == {"Authorization": "Bearer token-1"}
