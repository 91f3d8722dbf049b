"""The operator while its API server is unreachable: one short warning per attempt, backing off,
no traceback, and back to work when the server returns (a TCP relay in front of the real API
server is cut and restored)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from cluster_operator import eventually, mock_deployment, operator_on, operator_settings, route, route_status
from kube_cluster import Cluster
from tcp_relay import TcpRelay


def _ours(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("modelgate_operator")]


def _failures(caplog: pytest.LogCaptureFixture, count: int) -> list[logging.LogRecord] | None:
    found = [r for r in _ours(caplog) if r.getMessage().startswith("reconcile failed")]
    return found if len(found) >= count else None


async def test_unreachable_api_server_is_a_transient_error(
        cluster: Cluster, namespace: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    relay = TcpRelay("127.0.0.1", cluster.plane.port)
    await relay.start()
    kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig", server=f"https://127.0.0.1:{relay.port}")
    settings = operator_settings(namespace, resync_seconds=1.0, retry_seconds=0.2, retry_max_seconds=0.8)
    cluster.apply(route("r", "m", mock_deployment("a")), namespace)
    caplog.set_level(logging.INFO, "modelgate_operator")
    try:
        async with operator_on(cluster, settings, monkeypatch, kubeconfig):
            await eventually(lambda: route_status(cluster, namespace, "r").get("observedGeneration") == 1,
                             what="the route reconciled through the relay")
            await relay.cut()
            cut_at = time.monotonic()
            failures = await eventually(lambda: _failures(caplog, 3), what="three failed attempts")
            failed_for = time.monotonic() - cut_at
            await relay.restore()
            # A change made meanwhile (directly, not through the relay) is picked up on recovery.
            cluster.apply(route("r", "m", mock_deployment("a"), mock_deployment("b")), namespace)
            await eventually(lambda: route_status(cluster, namespace, "r").get("deploymentNames") == "a,b",
                             what="the change reconciled after the outage")
    finally:
        await relay.stop()

    for record in failures:
        message = record.getMessage()
        assert record.levelno == logging.WARNING and record.exc_info is None, message
        assert "\n" not in message and len(message) < 300, message
        assert "API server unreachable" in message, message
    assert "retrying in 0.2s" in failures[0].getMessage() and "retrying in 0.4s" in failures[1].getMessage()
    assert failed_for >= 0.2 + 0.4  # backed off between attempts, no spin
    assert not [r for r in _ours(caplog) if "unexpectedly" in r.getMessage() or r.exc_info]
    assert any(r.getMessage().startswith("reconcile succeeded again after") for r in _ours(caplog))
