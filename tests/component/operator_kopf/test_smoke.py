"""Smoke: the operator starts against the emulator and publishes a (still empty) config."""

from __future__ import annotations

import json
from typing import Any

from kube_emulator import CONFIGMAP, GATEWAY_NS, obj, wait_for
from modelgate_gateway.config import parse_config


async def test_publishes_an_empty_config_first(operator_running: Any) -> None:
    cm = await wait_for(
        lambda: obj(operator_running, "v1/configmaps", GATEWAY_NS, CONFIGMAP), what="the gateway ConfigMap"
    )
    config = parse_config(cm["data"]["config.json"], "json")
    assert config.spec.models == []
    assert json.loads(cm["data"]["config.json"])["metadata"]["generation"] == 1
