"""A changed base config reaches the published ConfigMap without restarting the operator.

The base file is a kubelet-style ConfigMap volume (symlink swap of ``..data``); the resync is
1 s, so a change is seen within about a second of the swap, as it would be within the 30 s
default in a cluster. A broken version in between never reaches the ConfigMap.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from kube_emulator import CONFIGMAP, GATEWAY_NS, create_route, obj, running_operator, wait_for
from kube_routes import mock_deployment, route
from kube_volume import KubeletVolume
from modelgate_operator.settings import OperatorSettings


def _base(limit: int) -> str:
    return (
        "apiVersion: config.modelgate.dev/v1alpha1\nkind: GatewayConfig\n"
        f"spec:\n  limits:\n    maxRequestBodyBytes: {limit}\n"
    )


def _published(emulator: Any) -> tuple[int, list[str]] | None:
    cm = obj(emulator, "v1/configmaps", GATEWAY_NS, CONFIGMAP)
    if cm is None:
        return None
    spec = json.loads(cm["data"]["config.json"])["spec"]
    return spec["limits"]["maxRequestBodyBytes"], [m["name"] for m in spec["models"]]


async def test_changed_base_is_published_without_a_restart(
    emulator: Any, operator_settings: OperatorSettings, tmp_path: Path
) -> None:
    volume = KubeletVolume(tmp_path, _base(4096))
    settings = dataclasses.replace(operator_settings, base_config=volume.path, resync_seconds=1.0)
    async with running_operator(settings) as memo:
        await wait_for(lambda: _published(emulator) == (4096, []), what="the first publish")
        runtime = memo["modelgate_runtime"]

        volume.update(_base(8192))
        await wait_for(lambda: _published(emulator) == (8192, []), what="the new base published")

        # A broken version: the next route is published on the last good base.
        volume.update(_base(5))
        await create_route(emulator, route("m", "m", deployments=[mock_deployment()]))
        await wait_for(lambda: _published(emulator) == (8192, ["m"]), what="m on the good base")
        assert runtime.reconciler.base.rejected is not None

        volume.update(_base(16384))
        await wait_for(lambda: _published(emulator) == (16384, ["m"]), what="the fixed base")
        assert memo["modelgate_runtime"] is runtime  # the same operator, never restarted
        assert runtime.reconciler.base.rejected is None
