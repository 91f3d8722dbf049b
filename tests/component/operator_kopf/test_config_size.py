"""A rendered config past 1 MiB, through kopf and kmock's API emulator.

Sixteen routes with a 64 KiB mock text each (the CRD's maxLength) render to about 1.05 MB, more
than a ConfigMap may hold (kmock's server refuses such a request body with 413). By default the
operator spreads it over shards and a gateway following the API serves every route; with one
shard allowed (``MODELGATE_OPERATOR_MAX_SHARDS=1``) it does not fit, nothing is written and
every route says why.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
from typing import Any

import pytest

import kube_emulator as kube
from kube_emulator import CONFIGMAP, GATEWAY_NS, ROUTES, SECRET, api, create_core, create_route, obj, wait_for
from kube_gateway import KubeGatewayApp
from kube_routes import deployment, mock_deployment, route, secret
from modelgate_gateway.config import parse_config
from modelgate_operator.settings import OperatorSettings

BIG_TEXT = "x" * 65536  # the CRD's maxLength of deployments[].mock.text
ROUTES_PATH = "/apis/modelgate.dev/v1alpha1/namespaces/default/modelroutes"


def _big(name: str, *extra: dict[str, Any]) -> dict[str, Any]:
    return route(name, f"model-{name}", deployments=[*extra, mock_deployment("big", BIG_TEXT)])


def _models(emulator: Any) -> list[str]:
    document = kube.published_document(emulator)
    return [m.name for m in parse_config(document, "json").spec.models] if document else []


def _ready(emulator: Any, name: str) -> dict[str, Any]:
    conditions = ((obj(emulator, ROUTES, "default", name) or {}).get("status") or {}).get("conditions")
    return next((c for c in conditions or [] if c["type"] == "Ready"), {})


def _all_ready(emulator: Any, names: list[str], status: str, reason: str) -> bool:
    return all((_ready(emulator, n).get("status"), _ready(emulator, n).get("reason")) == (status, reason)
               for n in names)


def _configmap_writes(emulator: Any) -> int:
    return sum(1 for r in emulator if r.method.value in {"POST", "PATCH", "PUT"}
               and "/configmaps" in str(r.url.path))


def _route_lists(emulator: Any) -> int:
    """Reconcile passes: each lists every route once (kopf's own requests are watches)."""
    return sum(1 for r in emulator if r.method.value == "GET"
               and str(r.url.path) == "/apis/modelgate.dev/v1alpha1/modelroutes"
               and not r.params.get("watch"))


def _warnings(emulator: Any, reason: str) -> list[str]:
    return sorted((o.raw.get("involvedObject") or {}).get("name", "")
                  for key, o in emulator.objects.items()
                  if key[0].plural == "events" and not o.deleted and o.raw.get("reason") == reason
                  and o.raw.get("type") == "Warning")


@pytest.fixture()
def operator_settings(operator_settings: OperatorSettings, base_config_file: str,
                      request: pytest.FixtureRequest) -> OperatorSettings:
    return dataclasses.replace(operator_settings, base_config=base_config_file,
                               max_shards=getattr(request, "param", 32))


async def test_a_config_past_one_mib_is_sharded_and_served(
        operator_running: Any, gateway: KubeGatewayApp) -> None:
    emulator = operator_running
    await create_core(emulator, "secrets", secret("openai", {"api-key": "sk-test"}))
    names = [f"r{i:02d}" for i in range(15)]
    await asyncio.gather(*(create_route(emulator, _big(name)) for name in names))
    await create_route(emulator, _big("keyed", deployment()))
    names.append("keyed")
    await gateway.wait(lambda g: len(g.models()) == 16, timeout=20, what="16 big routes")
    document = kube.published_document(emulator)
    assert document is not None and len(document) > 1_048_576
    shards = [key[2] for key, o in emulator.objects.items()
              if key[0].plural == "configmaps" and not o.deleted and key[2].startswith(f"{CONFIGMAP}-")]
    assert len(shards) >= 4
    assert all(len(str(v)) <= 1_000_000 for key, o in emulator.objects.items()
               if key[0].plural == "configmaps" and not o.deleted for v in (o.raw.get("data") or {}).values())
    await wait_for(lambda: _all_ready(emulator, names, "True", "Published"), what="Ready", timeout=10)
    answer = await gateway.client().responses.create(model="model-r07", input="hi")
    assert answer.output_text == BIG_TEXT
    assert gateway.failures == 0


@pytest.mark.parametrize("operator_settings", [1], indirect=True)
async def test_oversized_config_is_refused_reported_and_recovers(operator_running: Any) -> None:
    emulator = operator_running
    await create_core(emulator, "secrets", secret("openai", {"api-key": "sk-test"}))
    first = [f"r{i:02d}" for i in range(15)]  # 986,667 bytes: just fits one shard
    await asyncio.gather(*(create_route(emulator, _big(name)) for name in first))
    await wait_for(lambda: len(_models(emulator)) == 15, what="15 routes published", timeout=10)
    await wait_for(lambda: _all_ready(emulator, first, "True", "Published"), what="15 routes Ready")
    last_good = copy.deepcopy(obj(emulator, "v1/configmaps", GATEWAY_NS, CONFIGMAP))
    writes = _configmap_writes(emulator)

    # One more route, with an API key: 1,052,6xx bytes, over what one shard holds.
    await create_route(emulator, _big("keyed", deployment()))
    names = [*first, "keyed"]
    await wait_for(lambda: _all_ready(emulator, names, "False", "ConfigTooLarge"),
                   what="ConfigTooLarge on every route", timeout=10)
    message = _ready(emulator, "keyed")["message"]
    for text in ("does not fit in 1 shards of at most 1,000,000", "1,048,576", "This route adds",
                 "keep serving the last published config", "Delete or shrink routes"):
        assert text in message, (text, message)
    # Nothing was written: the gateways keep the last good document and its keys.
    assert obj(emulator, "v1/configmaps", GATEWAY_NS, CONFIGMAP) == last_good
    assert _configmap_writes(emulator) == writes
    keys = obj(emulator, "v1/secrets", GATEWAY_NS, SECRET) or {}
    assert "default.keyed.main" not in (keys.get("data") or {})
    await wait_for(lambda: _warnings(emulator, "ConfigTooLarge") == sorted(names),
                   what="one ConfigTooLarge Warning per route")

    # No tight loop: with nothing changing, no pass runs until the resync (30 s); our own status
    # writes and Events do not wake the loop.
    passes = _route_lists(emulator)
    await asyncio.sleep(0.6)  # three debounce periods
    assert _route_lists(emulator) == passes
    assert _warnings(emulator, "ConfigTooLarge") == sorted(names)  # still one per route

    # Two old routes go: 14 routes, under the budget again, published, Ready.
    for name in ("r00", "r01"):
        await api(emulator, "DELETE", f"{ROUTES_PATH}/{name}")
    remaining = names[2:]
    await wait_for(lambda: sorted(_models(emulator)) == sorted(f"model-{n}" for n in remaining),
                   what="the remaining routes published", timeout=10)
    await wait_for(lambda: _all_ready(emulator, remaining, "True", "Published"),
                   what="Ready again", timeout=10)
    cm = obj(emulator, "v1/configmaps", GATEWAY_NS, CONFIGMAP) or {}
    generation = int(cm["metadata"]["annotations"]["modelgate.dev/config-generation"])
    assert generation == int(last_good["metadata"]["annotations"]["modelgate.dev/config-generation"]) + 1
    keys = obj(emulator, "v1/secrets", GATEWAY_NS, SECRET) or {}
    assert "default.keyed.main" in (keys.get("data") or {})


async def test_a_failing_configmap_write_is_retried_after_a_delay_not_in_a_loop(
        operator_running: Any) -> None:
    emulator = operator_running
    await wait_for(lambda: obj(emulator, "v1/configmaps", GATEWAY_NS, CONFIGMAP), what="the initial config")
    failures = emulator["patch", f"/api/v1/namespaces/{GATEWAY_NS}/configmaps/{CONFIGMAP}"] << 500
    await create_route(emulator, route("m", "m", deployments=[mock_deployment()]))
    await wait_for(lambda: len(failures) == 1, what="the first failed write")
    await asyncio.sleep(1.0)
    assert len(failures) == 1  # the next attempt waits for the error's delay (5 s)
    # (kmock stores the patch even though it answers 500, so the ConfigMap is not checked here.)
