"""Deleting a fallback model degrades its users instead of taking them down (issue 19, item 4).

The operator runs against kmock's emulator and a real gateway app follows the ConfigMap and
Secret through the API (KubeSource); requests go through the official SDK.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from kube_emulator import ROUTES, api, create_route, obj, wait_for
from kube_gateway import KubeGatewayApp
from kube_routes import mock_deployment, route
from modelgate_operator.settings import OperatorSettings

ROUTES_PATH = "/apis/modelgate.dev/v1alpha1/namespaces/default/modelroutes"


@pytest.fixture()
def operator_settings(operator_settings: OperatorSettings, base_config_file: str) -> OperatorSettings:
    return dataclasses.replace(operator_settings, base_config=base_config_file, debounce_seconds=0.1,
                               debounce_max_seconds=0.5, rollout_poll_seconds=0.1)


def _condition(emulator: Any, name: str, ctype: str) -> tuple[str, str]:
    conditions = ((obj(emulator, ROUTES, "default", name) or {}).get("status") or {}).get("conditions")
    found = next((c for c in conditions or [] if c["type"] == ctype), {})
    return found.get("status", ""), found.get("reason", "")


def _warnings(emulator: Any, name: str) -> list[str]:
    return sorted(o.raw.get("reason", "") for key, o in emulator.objects.items()
                  if key[0].plural == "events" and not o.deleted and o.raw.get("type") == "Warning"
                  and (o.raw.get("involvedObject") or {}).get("name") == name)


async def test_deleting_a_fallback_model_degrades_its_users(
        operator_running: Any, gateway: KubeGatewayApp) -> None:
    emulator = operator_running
    await create_route(emulator, route("assistant", "assistant", fallbacks=["gpt-4o-mini"],
                                       deployments=[mock_deployment(text="assistant answers")]))
    await create_route(emulator, route("gpt-4o-mini", "gpt-4o-mini",
                                       deployments=[mock_deployment(text="mini answers")]))
    await gateway.wait(lambda g: g.models() == ["assistant", "gpt-4o-mini"], what="both models")
    assert gateway.fallbacks("assistant") == ("gpt-4o-mini",)
    await wait_for(lambda: _condition(emulator, "assistant", "Ready") == ("True", "Published"),
                   what="assistant Ready")

    await api(emulator, "DELETE", f"{ROUTES_PATH}/gpt-4o-mini")
    await gateway.wait(lambda g: g.models() == ["assistant"], what="gpt-4o-mini gone")
    assert gateway.fallbacks("assistant") == ()
    answer = await gateway.client().responses.create(model="assistant", input="hi")
    assert answer.output_text == "assistant answers"
    await wait_for(lambda: _condition(emulator, "assistant", "Ready") == ("True", "Degraded"),
                   what="assistant Ready=True, Degraded")
    assert _condition(emulator, "assistant", "ResolvedRefs") == ("False", "FallbackUnavailable")
    await wait_for(lambda: _warnings(emulator, "assistant") == ["Degraded", "FallbackUnavailable"],
                   what="Warning Events on assistant")

    # The fallback comes back: the route uses it again and is healthy.
    await create_route(emulator, route("gpt-4o-mini", "gpt-4o-mini",
                                       deployments=[mock_deployment(text="mini answers")]))
    await gateway.wait(lambda g: g.fallbacks("assistant") == ("gpt-4o-mini",), what="fallback back")
    await wait_for(lambda: _condition(emulator, "assistant", "Ready") == ("True", "Published"),
                   what="assistant healthy again")
    assert _condition(emulator, "assistant", "ResolvedRefs") == ("True", "ResolvedRefs")
    assert gateway.failures == 0

