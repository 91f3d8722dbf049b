"""ModelGateKeys on the real API server: the operator (kopf) generates the key's Secret, publishes
its hash and writes its status; the chart's RBAC allows exactly these calls in both scopes."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from typing import Any

import pytest

from chart_helm import render
from cluster_operator import eventually, operator_on, operator_settings
from kube_cluster import ApiError, Cluster
from modelgate_operator.keys.client import KeyClient
from modelgate_operator.keys.resources import parse_key
from modelgate_operator.kube.client import KubeClient

KEY_API = "modelgate.dev/v1alpha1"
RBAC_KINDS = {"ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}


def _key(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": KEY_API, "kind": "ModelGateKey", "metadata": {"name": name},
            "spec": {"secretRef": {"name": f"{name}-key"}, **spec}}


def _get(cluster: Cluster, api: str, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
    try:
        return dict(cluster.get(api, kind, name, namespace))
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise


def _published_keys(cluster: Cluster, namespace: str, configmap: str) -> dict[str, Any] | None:
    """The published config's keys by name; None before anything was published."""
    found = _get(cluster, "v1", "ConfigMap", configmap, namespace)
    if found is None:
        return None
    return {k["name"]: k for k in json.loads(found["data"]["config.json"])["spec"].get("auth", {}).get("keys", [])}


async def test_generated_key_is_published_as_its_hash_with_a_ready_status(
        cluster: Cluster, namespace: str, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = operator_settings(namespace)
    cluster.apply(_key("ci", generateSecret=True, models=["gpt-4o*"], limits={"requestsPerMinute": 5}), namespace)
    async with operator_on(cluster, settings, monkeypatch):
        status = await eventually(
            lambda: ((_get(cluster, KEY_API, "ModelGateKey", "ci", namespace) or {}).get("status") or {}),
            what="the key's status")
        [keys] = await eventually(lambda: (found,) if (found := _published_keys(cluster, namespace,
                                                                                 settings.configmap)) is not None
                                  else None, what="the published config")
    assert status["conditions"][0]["reason"] == "LimitsUnavailable"  # no Redis in this gateway's base config
    assert f"{namespace}/ci" not in keys
    secret = _get(cluster, "v1", "Secret", "ci-key", namespace)
    assert secret is not None and secret["metadata"]["ownerReferences"][0]["kind"] == "ModelGateKey"
    value = base64.b64decode(secret["data"]["api-key"])
    assert value.startswith(b"sk-mg-")

    cluster.apply(_key("ci", secretRef={"name": "ci-key"}, models=["gpt-4o*"]), namespace)  # no limits now
    async with operator_on(cluster, settings, monkeypatch):
        keys = await eventually(lambda: (found := _published_keys(cluster, namespace, settings.configmap))
                                and f"{namespace}/ci" in found and found, what="the key published")
        await eventually(lambda: ((_get(cluster, KEY_API, "ModelGateKey", "ci", namespace) or {}).get("status")
                                  or {}).get("conditions", [{}])[0].get("status") == "True", what="Ready")
    assert keys[f"{namespace}/ci"]["sha256"] == hashlib.sha256(value).hexdigest()
    assert keys[f"{namespace}/ci"]["tenant"] == namespace


@pytest.mark.parametrize("scope", ["all-namespaces", "watch-namespaces"])
def test_chart_rbac_allows_the_key_calls(cluster: Cluster, namespace: str, scope: str) -> None:
    release = f"k{namespace[-6:]}"
    sets = (f"operator.watchNamespaces={{{namespace}}}",) if scope == "watch-namespaces" else ()
    objects = render(sets=sets, release=release, namespace=namespace)
    ours = [copy.deepcopy(o) for o in objects if o["kind"] in RBAC_KINDS and "operator" in o["metadata"]["name"]]
    cluster.apply_all(ours, namespace)
    account = next(o for o in ours if o["kind"] == "ServiceAccount")["metadata"]["name"]
    token = cluster.service_account_token(namespace, account, create=False)
    created = cluster.apply(_key("bot", generateSecret=True), namespace)
    client = KeyClient(KubeClient(operator_settings(namespace), cluster.api_client(token=token)))
    [body] = [b for b in client.list_keys() if b["metadata"]["name"] == "bot"]
    key = parse_key(body, "modelgate")
    assert key.uid == created["metadata"]["uid"]
    data = client.generate_secret(key)
    assert data["api-key"].startswith(b"sk-mg-")
    client.patch_status(namespace, "bot", {"keyName": key.key_name})
    assert cluster.get(KEY_API, "ModelGateKey", "bot", namespace)["status"]["keyName"] == f"{namespace}/bot"
