"""The base document is re-read when its file changes: kubelet's symlink swap, a broken version
kept out (logged once) and the fix picked up, and what one reconcile pass publishes meanwhile."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from kube_fake import FakeKube
from kube_routes import mock_deployment, route
from kube_volume import KubeletVolume
from modelgate_operator.errors import BaseConfigError
from modelgate_operator.reconciling import reconciler as reconciler_module
from modelgate_operator.reconciling.reconciler import Reconciler, load_base
from modelgate_operator.rendering.basefile import BaseFile
from modelgate_operator.settings import OperatorSettings


def _base(limit: int | str) -> str:
    return ("apiVersion: config.modelgate.dev/v1alpha1\nkind: GatewayConfig\n"
            f"spec:\n  limits:\n    maxRequestBodyBytes: {limit}\n")


def _limit(base: BaseFile) -> int | None:
    return base.config.spec.limits.max_request_body_bytes if base.config else None


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_symlink_swap_is_picked_up_and_an_unchanged_file_is_not_reparsed(tmp_path: Path) -> None:
    volume = KubeletVolume(tmp_path, _base(4096))
    base = BaseFile(volume.path)
    assert _limit(base) is None
    base.load()
    assert _limit(base) == 4096
    first = base.digest
    assert base.refresh() is False and base.digest == first  # nothing changed
    volume.update(_base(8192))
    assert base.refresh() is True and _limit(base) == 8192
    assert base.refresh() is False
    volume.update(_base(8192))  # a new version directory with the same bytes: no reload
    assert base.refresh() is False and _limit(base) == 8192


def test_in_place_edit_is_picked_up(tmp_path: Path) -> None:
    path = tmp_path / "base.yaml"
    path.write_text(_base(4096))
    base = BaseFile(str(path))
    base.load()
    path.write_text(_base(65536))
    assert base.refresh() is True and _limit(base) == 65536


def test_bad_version_keeps_the_last_good_one_logs_once_and_recovers(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    volume = KubeletVolume(tmp_path, _base(4096))
    base = BaseFile(volume.path)
    base.load()
    good = base.digest
    with caplog.at_level(logging.INFO, "modelgate_operator"):
        volume.update(_base(5))
        assert base.refresh() is False
        assert base.refresh() is False
        volume.update(_base(5))  # the same broken bytes again (a re-apply): still one line
        assert base.refresh() is False
        volume.update("spec: [unclosed")  # another broken version: one more line
        assert base.refresh() is False
    assert _limit(base) == 4096 and base.digest == good
    errors = _errors(caplog)
    assert len(errors) == 2, errors
    assert "maxRequestBodyBytes: Input should be greater than or equal to 1024" in errors[0]
    assert "keeping the last good one (sha256:" in errors[0]
    assert base.rejected is not None

    caplog.clear()
    with caplog.at_level(logging.INFO, "modelgate_operator"):
        volume.update(_base(16384))
        assert base.refresh() is True
    assert _limit(base) == 16384 and base.rejected is None
    assert not _errors(caplog) and "is valid again" in caplog.text


def test_reverting_a_bad_edit_to_the_good_bytes_counts_as_recovery(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    volume = KubeletVolume(tmp_path, _base(4096))
    base = BaseFile(volume.path)
    base.load()
    volume.update(_base(1))
    assert base.refresh() is False and base.rejected is not None
    with caplog.at_level(logging.INFO, "modelgate_operator"):
        volume.update(_base(4096))
        assert base.refresh() is False  # same bytes as the current good version
    assert base.rejected is None and "is valid again" in caplog.text


def test_missing_file_keeps_the_last_good_version(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "base.yaml"
    path.write_text(_base(4096))
    base = BaseFile(str(path))
    base.load()
    path.unlink()
    with caplog.at_level(logging.INFO, "modelgate_operator"):
        assert base.refresh() is False
        assert base.refresh() is False
    assert _limit(base) == 4096 and len(_errors(caplog)) == 1
    path.write_text(_base(4096))
    assert base.refresh() is False and base.rejected is None


def test_start_up_with_a_bad_base_still_fails_loudly(tmp_path: Path) -> None:
    path = tmp_path / "base.yaml"
    path.write_text(_base(5))
    with pytest.raises(BaseConfigError, match=r"MODELGATE_OPERATOR_BASE_CONFIG: .*1024"):
        load_base(OperatorSettings(base_config=str(path)))
    with pytest.raises(BaseConfigError, match="cannot read"):
        load_base(OperatorSettings(base_config=str(tmp_path / "absent.yaml")))
    assert load_base(OperatorSettings()) is None


def _published_limit(kube: FakeKube) -> int:
    config = kube.config()
    assert config is not None
    return int(config["spec"]["limits"]["maxRequestBodyBytes"])


def _published_models(kube: FakeKube) -> list[str]:
    config = kube.config()
    assert config is not None
    return [m["name"] for m in config["spec"]["models"]]


def _reconciler(tmp_path: Path) -> tuple[Reconciler, FakeKube, KubeletVolume]:
    volume = KubeletVolume(tmp_path, _base(4096))
    kube = FakeKube()
    kube.routes = [route("m", "m", deployments=[mock_deployment()])]
    base = load_base(OperatorSettings(base_config=volume.path))
    reconciler = Reconciler(OperatorSettings(), kube, base, now=lambda: "t")  # type: ignore[arg-type]
    return reconciler, kube, volume


def test_pass_publishes_a_changed_base_and_never_a_broken_one(tmp_path: Path) -> None:
    reconciler, kube, volume = _reconciler(tmp_path)
    assert reconciler.reconcile().published and _published_limit(kube) == 4096
    assert not reconciler.reconcile().published

    volume.update(_base(8192))
    assert reconciler.reconcile().published and _published_limit(kube) == 8192

    # A broken base: route changes keep being published, on the last good base.
    volume.update(_base(7))
    kube.routes.append(route("n", "n", deployments=[mock_deployment()]))
    assert reconciler.reconcile().published
    assert _published_limit(kube) == 8192 and _published_models(kube) == ["m", "n"]

    volume.update(_base(32768))
    assert reconciler.reconcile().published and _published_limit(kube) == 32768


def test_base_that_fails_only_with_the_routes_falls_back_to_the_previous_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    reconciler, kube, volume = _reconciler(tmp_path)
    assert reconciler.reconcile().published
    real_render = reconciler_module.render

    def render(routes, secrets, base, **kwargs):  # type: ignore[no-untyped-def]
        if base is not None and base.spec.limits.max_request_body_bytes == 9999:
            raise BaseConfigError("the base config is not valid: clash with the routes")
        return real_render(routes, secrets, base, **kwargs)
    monkeypatch.setattr(reconciler_module, "render", render)

    volume.update(_base(9999))
    with caplog.at_level(logging.INFO, "modelgate_operator"):
        result = reconciler.reconcile()
        assert not reconciler.reconcile().published  # the same file: not retried, not re-logged
    assert not result.published and _published_limit(kube) == 4096
    assert [e for e in _errors(caplog) if "clash with the routes" in e] == _errors(caplog)
    assert len(_errors(caplog)) == 1

    volume.update(_base(2048))
    assert reconciler.reconcile().published and _published_limit(kube) == 2048
