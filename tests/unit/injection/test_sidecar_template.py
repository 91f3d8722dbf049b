"""The sidecar template the chart writes: validated field by field, errors name the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from modelgate_operator.injection.template import SidecarTemplate, TemplateError, load_template


def test_a_full_template_is_read_with_the_operator_namespace_excluded(tmp_path: Path) -> None:
    path = tmp_path / "sidecar.json"
    path.write_text(
        json.dumps(
            {
                "image": "registry.example/gateway:1.2",
                "imagePullPolicy": "Always",
                "gateway": "mg",
                "configMap": "mg-sidecar-config",
                "secret": "mg-sidecar-upstream-keys",
                "port": 4100,
                "adminPort": 14100,
                "logLevel": "warning",
                "shutdownGraceSeconds": 3,
                "startupSeconds": 60,
                "resources": {"requests": {"memory": "48Mi"}},
                "securityContext": {"runAsNonRoot": True},
            }
        )
    )
    template = load_template(str(path), frozenset({"modelgate-system"}))
    assert template == SidecarTemplate(
        image="registry.example/gateway:1.2",
        image_pull_policy="Always",
        gateway="mg",
        configmap="mg-sidecar-config",
        secret="mg-sidecar-upstream-keys",
        port=4100,
        admin_port=14100,
        log_level="warning",
        shutdown_grace_seconds=3,
        startup_seconds=60,
        resources={"requests": {"memory": "48Mi"}},
        security_context={"runAsNonRoot": True},
        excluded_namespaces=frozenset({"kube-system", "modelgate-system"}),
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "'image' must be a non-empty string"),
        ({"image": "x", "port": "4000"}, "'port' must be an integer in [1, 65535]"),
        ({"image": "x", "adminPort": True}, "'adminPort' must be an integer in [1, 65535]"),
        ({"image": "x", "port": 5000, "adminPort": 5000}, "'port' and 'adminPort' must differ"),
        ({"image": "x", "imagePullPolicy": "Sometimes"}, "'imagePullPolicy' must be one of"),
        ({"image": "x", "logLevel": "loud"}, "'logLevel' must be one of"),
        ({"image": "x", "resources": []}, "'resources' must be an object"),
        ({"image": "x", "secret": ""}, "'secret' must be a non-empty string"),
    ],
)
def test_a_bad_field_is_named(data: dict[str, Any], message: str) -> None:
    with pytest.raises(TemplateError, match=f"sidecar template: {message}".replace("[", r"\[")):
        SidecarTemplate.from_data(data)


def test_a_missing_or_broken_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="No such file"):
        load_template(str(tmp_path / "absent.json"))
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(TemplateError, match="expected a JSON object"):
        load_template(str(tmp_path / "list.json"))
