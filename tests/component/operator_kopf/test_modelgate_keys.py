"""ModelGateKeys rendered by the whole operator (kopf) against kmock's Kubernetes emulator: the
key's hash (never the key) in the published config, tenant per namespace, limits, generated
Secrets, conflicts and missing Secrets in the status, and the key served by a real gateway."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from kube_emulator import CONFIGMAP, GATEWAY_NS, KEYS, api, create_core, obj, running_operator, wait_for
from kube_routes import secret
from kube_volume import KubeletVolume
from modelgate_operator.settings import OperatorSettings

BASE = """apiVersion: config.modelgate.dev/v1alpha1
kind: GatewayConfig
spec:
  auth:
    keys:
    - name: team-a/taken
      sha256: "%s"
  state:
    redisUrl: redis://redis.modelgate:6379/0
""" % ("0" * 64)


def modelgate_key(name: str, namespace: str = "team-a", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "modelgate.dev/v1alpha1", "kind": "ModelGateKey",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"secretRef": {"name": f"{name}-key"}, **spec}}


async def create_key(emulator: Any, body: dict[str, Any]) -> None:
    ns = body["metadata"]["namespace"]
    await api(emulator, "POST", f"/apis/modelgate.dev/v1alpha1/namespaces/{ns}/modelgatekeys", body)


def published_keys(emulator: Any) -> dict[str, dict[str, Any]]:
    cm = obj(emulator, "v1/configmaps", GATEWAY_NS, CONFIGMAP)
    if cm is None:
        return {}
    return {k["name"]: k for k in json.loads(cm["data"]["config.json"])["spec"]["auth"].get("keys", [])}


def ready(emulator: Any, namespace: str, name: str) -> dict[str, Any]:
    status = (obj(emulator, KEYS, namespace, name) or {}).get("status") or {}
    return next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), {})


async def test_keys_are_rendered_with_their_hash_tenant_and_limits(
        emulator: Any, operator_settings: OperatorSettings, tmp_path: Path) -> None:
    settings = dataclasses.replace(operator_settings, base_config=KubeletVolume(tmp_path, BASE).path)
    async with running_operator(settings):
        await create_core(emulator, "secrets", secret("ci-key", {"api-key": "sk-team-a-ci-0123456789\n"}, "team-a"))
        await create_key(emulator, modelgate_key(
            "ci", models=["gpt-4o*"], tenant="ci", expiresAt="2030-01-01T00:00:00Z",
            limits={"requestsPerMinute": 60, "budget": {"usd": 25, "window": "daily"}}))
        await create_key(emulator, modelgate_key("bot", namespace="team-b", generateSecret=True))
        keys = await wait_for(lambda: (found := published_keys(emulator)) and len(found) == 3 and found,
                              what="both keys published")
        ci = keys["team-a/ci"]
        assert ci == {"name": "team-a/ci", "sha256": hashlib.sha256(b"sk-team-a-ci-0123456789").hexdigest(),
                      "models": ["gpt-4o*"], "tenant": "team-a/ci", "expiresAt": "2030-01-01T00:00:00Z",
                      "limits": {"requestsPerMinute": 60, "budget": {"usd": 25.0, "window": "daily"}}}
        cm = obj(emulator, "v1/configmaps", GATEWAY_NS, CONFIGMAP)
        assert cm is not None and "sk-team-a-ci" not in cm["data"]["config.json"]
        # The generated Secret holds the key whose hash was published; it belongs to the ModelGateKey.
        generated = obj(emulator, "v1/secrets", "team-b", "bot-key")
        assert generated is not None
        value = base64.b64decode(generated["data"]["api-key"])
        assert value.startswith(b"sk-mg-") and len(value) > 40
        assert keys["team-b/bot"]["sha256"] == hashlib.sha256(value).hexdigest()
        assert keys["team-b/bot"]["tenant"] == "team-b"
        assert generated["metadata"]["ownerReferences"][0]["kind"] == "ModelGateKey"
        await wait_for(lambda: ready(emulator, "team-a", "ci").get("status") == "True", what="ci Ready")
        status = (obj(emulator, KEYS, "team-a", "ci") or {})["status"]
        assert (status["keyName"], status["tenant"]) == ("team-a/ci", "team-a/ci")


async def test_unservable_keys_say_why_and_the_others_are_served(
        emulator: Any, operator_settings: OperatorSettings, tmp_path: Path) -> None:
    settings = dataclasses.replace(operator_settings, base_config=KubeletVolume(tmp_path, BASE).path)
    async with running_operator(settings):
        await create_key(emulator, modelgate_key("missing"))
        await create_core(emulator, "secrets", secret("taken-key", {"api-key": "sk-0123456789abcdefgh"}, "team-a"))
        await create_key(emulator, modelgate_key("taken"))
        await create_core(emulator, "secrets", secret("short-key", {"api-key": "sk-short"}, "team-a"))
        await create_key(emulator, modelgate_key("short"))
        await create_core(emulator, "secrets", secret("good-key", {"api-key": "sk-good-0123456789abc"}, "team-a"))
        await create_key(emulator, modelgate_key("good"))
        await wait_for(lambda: "team-a/good" in published_keys(emulator), what="the good key published")
        for name, reason in (("missing", "SecretNotFound"), ("taken", "KeyNameConflict"), ("short", "WeakKey")):
            await wait_for(lambda n=name, r=reason: ready(emulator, "team-a", n).get("reason") == r,  # type: ignore[misc]
                           what=f"{name}: {reason}")
            assert ready(emulator, "team-a", name)["status"] == "False"
        assert set(published_keys(emulator)) == {"team-a/taken", "team-a/good"}  # the base's own and the good one
        # The missing Secret appears: the key is served without touching the ModelGateKey.
        await create_core(emulator, "secrets", secret("missing-key", {"api-key": "sk-late-0123456789abc"}, "team-a"))
        await wait_for(lambda: "team-a/missing" in published_keys(emulator), what="the late Secret picked up")
        await wait_for(lambda: ready(emulator, "team-a", "missing").get("status") == "True", what="missing Ready")
