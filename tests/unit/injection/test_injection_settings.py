"""Sidecar-mode settings from the environment; a broken template stops the operator at start."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelgate_operator.injection.settings import InjectionSettings
from modelgate_operator.main import main
from modelgate_operator.settings import SettingsError


def test_sidecar_mode_is_off_without_a_template() -> None:
    assert InjectionSettings.from_env({}, "modelgate", "modelgate") is None


def test_defaults_follow_the_gateway_name_and_the_service_names_go_into_the_certificate() -> None:
    settings = InjectionSettings.from_env(
        {
            "MODELGATE_OPERATOR_SIDECAR_TEMPLATE": "/etc/t.json",
            "MODELGATE_OPERATOR_WEBHOOK_EXTRA_NAMES": "127.0.0.1, x",
        },
        "mg",
        "platform",
    )
    assert settings is not None
    assert (settings.configuration, settings.tls_secret, settings.service, settings.port) == (
        "mg-sidecar-injector",
        "mg-webhook-tls",
        "mg-webhook",
        9443,
    )
    assert settings.names == ("mg-webhook.platform.svc", "mg-webhook.platform.svc.cluster.local", "127.0.0.1", "x")
    assert settings.cert_dir is None
    assert (settings.cluster_role, settings.sharing_namespaces) == ("mg-sidecar", frozenset({"platform"}))


def test_sharing_namespaces_can_be_listed() -> None:
    settings = InjectionSettings.from_env(
        {
            "MODELGATE_OPERATOR_SIDECAR_TEMPLATE": "t",
            "MODELGATE_OPERATOR_SIDECAR_SHARING_NAMESPACES": "platform, shared-models",
        },
        "mg",
        "ops",
    )
    assert settings is not None and settings.sharing_namespaces == frozenset({"platform", "shared-models"})


def test_a_bad_port_is_named() -> None:
    with pytest.raises(SettingsError, match="MODELGATE_OPERATOR_WEBHOOK_PORT: 'https'"):
        InjectionSettings.from_env(
            {"MODELGATE_OPERATOR_SIDECAR_TEMPLATE": "t", "MODELGATE_OPERATOR_WEBHOOK_PORT": "https"}, "mg", "ns"
        )


def test_the_operator_refuses_to_start_with_a_broken_template(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "sidecar.json").write_text('{"image": ""}')
    monkeypatch.setenv("MODELGATE_OPERATOR_SIDECAR_TEMPLATE", str(tmp_path / "sidecar.json"))
    assert main() == 2
    assert "sidecar template: 'image' must be a non-empty string" in capsys.readouterr().err
