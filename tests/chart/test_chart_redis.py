"""The gateway's Redis from the chart: a small one it installs (``redis.enabled``), or an existing one
(``redis.url`` and a password Secret), wired into the base config, the gateway pods and the
operator; neither: no Redis anywhere. Rendered by the real helm; the CI scenarios
``redis-installed`` and ``redis-existing`` are also validated against the Kubernetes schemas and
the pod security rules (test_chart_render.py, test_chart_security.py)."""

from __future__ import annotations

import base64
from typing import Any

import yaml

from chart_helm import CHART, find, kinds, render, render_fails
from modelgate_gateway.config import validate_data

INSTALLED = CHART / "ci" / "redis-installed-values.yaml"
EXISTING = CHART / "ci" / "redis-existing-values.yaml"
PASSWORD_FILE = "/etc/modelgate/redis/password"


def _base(objects: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(
        find(objects, "ConfigMap", "modelgate-operator-base-config")["data"]["base.yaml"]
    )
    return document


def _gateway_pod(objects: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    spec: dict[str, Any] = find(objects, "Deployment", "modelgate-gateway")["spec"]["template"]["spec"]
    return spec


def _operator_env(objects: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    container = find(objects, "Deployment", "modelgate-operator")["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def _password_volume(objects: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    pod = _gateway_pod(objects)
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "redis-password")
    assert mount == {"name": "redis-password", "mountPath": "/etc/modelgate/redis", "readOnly": True}
    volume: dict[str, Any] = next(v for v in pod["volumes"] if v["name"] == "redis-password")["secret"]
    return volume


def test_installed_redis_is_one_locked_down_pod_behind_a_service_with_a_generated_password() -> None:
    objects = render((INSTALLED,))
    deployment = find(objects, "Deployment", "modelgate-redis")
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    container = pod["containers"][0]
    args = container["args"]
    assert args[args.index("--requirepass") + 1] == "$(REDIS_PASSWORD)"  # expanded by the kubelet
    assert args[args.index("--maxmemory-policy") + 1] == "noeviction"
    assert args[args.index("--save") + 1] == "" and args[args.index("--appendonly") + 1] == "no"
    assert container["env"] == [
        {"name": "REDIS_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "modelgate-redis", "key": "password"}}}
    ]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsUser"] == 999  # the image's redis user, not root
    assert {"name": "data", "mountPath": "/data"} in container["volumeMounts"]  # its only writable place
    assert container["readinessProbe"]["tcpSocket"] == {"port": "redis"}
    service = find(objects, "Service", "modelgate-redis")
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert service["spec"]["ports"] == [{"name": "redis", "port": 6379, "targetPort": "redis", "protocol": "TCP"}]
    secret = find(objects, "Secret", "modelgate-redis")
    assert len(base64.b64decode(secret["data"]["password"])) == 40
    url = "redis://modelgate-redis.modelgate.svc:6379/0"
    state = _base(objects)["spec"]["state"]
    assert state == {"redisUrl": url, "redisPassword": {"file": PASSWORD_FILE}}
    assert _password_volume(objects)["secretName"] == "modelgate-redis"
    assert _password_volume(objects)["items"] == [{"key": "password", "path": "password"}]
    env = _operator_env(objects)
    assert env["MODELGATE_OPERATOR_REDIS_URL"] == url
    assert env["MODELGATE_OPERATOR_REDIS_PASSWORD"] == {"secretKeyRef": {"name": "modelgate-redis", "key": "password"}}


def test_existing_redis_is_named_with_its_password_secret_and_nothing_is_installed() -> None:
    objects = render((EXISTING,))
    assert not [o for o in objects if o["metadata"]["name"] == "modelgate-redis"]
    state = _base(objects)["spec"]["state"]
    assert state == {"redisUrl": "rediss://redis.platform.svc:6380/2", "redisPassword": {"file": PASSWORD_FILE}}
    volume = _password_volume(objects)
    assert volume["secretName"] == "platform-redis"
    assert volume["items"] == [{"key": "redis-password", "path": "password"}]
    env = _operator_env(objects)
    assert env["MODELGATE_OPERATOR_REDIS_URL"] == "rediss://redis.platform.svc:6380/2"
    assert env["MODELGATE_OPERATOR_REDIS_PASSWORD"] == {
        "secretKeyRef": {"name": "platform-redis", "key": "redis-password"}
    }
    # The gateway accepts the document (limits need a Redis: a key with limits is valid now).
    document = _base(objects)
    document["spec"]["auth"] = {"keys": [{"name": "k", "sha256": "a" * 64, "limits": {"requestsPerMinute": 5}}]}
    assert validate_data(document, source="base.yaml").spec.state.redis_url == state["redisUrl"]


def test_an_existing_redis_without_password_gets_no_secret_mount() -> None:
    objects = render(sets=("redis.url=redis://redis.platform.svc:6379/0",))
    assert _base(objects)["spec"]["state"] == {"redisUrl": "redis://redis.platform.svc:6379/0"}
    assert not any(v["name"] == "redis-password" for v in _gateway_pod(objects)["volumes"])
    assert "MODELGATE_OPERATOR_REDIS_PASSWORD" not in _operator_env(objects)


def test_no_redis_by_default() -> None:
    objects = render()
    assert "state" not in _base(objects)["spec"]
    assert not [o for o in objects if "redis" in o["metadata"]["name"]]
    assert "MODELGATE_OPERATOR_REDIS_URL" not in _operator_env(objects)
    assert not kinds(objects, "StatefulSet")


def test_keys_redis_url_still_overrides_what_the_operator_reads() -> None:
    objects = render((INSTALLED,), sets=("keys.redisUrl=redis://elsewhere:6379/0", "keys.redisPasswordSecret=other"))
    env = _operator_env(objects)
    assert env["MODELGATE_OPERATOR_REDIS_URL"] == "redis://elsewhere:6379/0"
    assert env["MODELGATE_OPERATOR_REDIS_PASSWORD"] == {"secretKeyRef": {"name": "other", "key": "password"}}


def test_installing_a_redis_and_naming_another_is_refused() -> None:
    error = render_fails(values=(INSTALLED,), sets=("redis.url=redis://other:6379/0",))
    assert "url" in error
