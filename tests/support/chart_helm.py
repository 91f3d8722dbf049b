"""Run the real helm binary against charts/modelgate and parse what it renders.

helm is found on PATH or at <repo>/.tools/bin/helm (installed by scripts/bootstrap.sh); a missing
binary fails the chart tests instead of skipping them. Helm's cache, config and data folders
point at a private temp directory so nothing lands in the home directory.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "modelgate"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
RELEASE = "modelgate"
NAMESPACE = "modelgate"


@functools.cache
def helm_binary() -> str:
    found = shutil.which("helm") or (
        str(ROOT / ".tools/bin/helm") if (ROOT / ".tools/bin/helm").is_file() else None
    )
    if found is None:
        pytest.fail("helm not found on PATH or at .tools/bin/helm: run scripts/bootstrap.sh all")
    return found


@functools.cache
def _helm_home() -> str:
    return tempfile.mkdtemp(prefix="modelgate-helm-")


def helm_env() -> dict[str, str]:
    home = _helm_home()
    env = dict(os.environ)
    env.update(
        HELM_CACHE_HOME=f"{home}/cache",
        HELM_CONFIG_HOME=f"{home}/config",
        HELM_DATA_HOME=f"{home}/data",
    )
    return env


def run_helm(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """helm with the given arguments; the caller checks returncode/stdout/stderr."""
    return subprocess.run(
        [helm_binary(), *map(str, args)],
        capture_output=True,
        text=True,
        env=helm_env(),
        timeout=60,
        check=False,
    )


def template_args(
    values: tuple[Path, ...] = (),
    sets: tuple[str, ...] = (),
    api_versions: tuple[str, ...] = (),
    include_crds: bool = False,
    chart: Path = CHART,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
) -> list[str | Path]:
    args: list[str | Path] = ["template", release, chart, "--namespace", namespace]
    for path in values:
        args += ["--values", path]
    for item in sets:
        args += ["--set", item]
    for api in api_versions:
        args += ["--api-versions", api]
    if include_crds:
        args.append("--include-crds")
    return args


@functools.cache
def render(
    values: tuple[Path, ...] = (),
    sets: tuple[str, ...] = (),
    api_versions: tuple[str, ...] = (),
    include_crds: bool = False,
    chart: Path = CHART,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
) -> tuple[dict[str, Any], ...]:
    """Rendered objects of `helm template` (cached: treat them as read-only)."""
    result = run_helm(*template_args(values, sets, api_versions, include_crds, chart, release, namespace))
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def render_fails(*, values: tuple[Path, ...] = (), sets: tuple[str, ...] = ()) -> str:
    """stderr of a `helm template` that must fail."""
    result = run_helm(*template_args(values, sets))
    assert result.returncode != 0, f"helm template accepted the values:\n{result.stdout[:500]}"
    return result.stderr


def find(objects: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: found {len(matches)}"
    return matches[0]


def kinds(objects: tuple[dict[str, Any], ...], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]
