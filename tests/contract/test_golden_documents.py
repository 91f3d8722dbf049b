"""Golden rendered documents: what each example ModelRoute becomes in the gateway's config.

Every manifest file of ModelRoutes in ``examples/`` (and ``crds/examples/``, if it exists) is
rendered by the operator's pure renderer as if applied with ``kubectl apply -f`` into namespace
``default`` (all its routes together, generation 1), on a fixed base config (``golden/base.yaml``,
the chart's default) with fixed Secret values. The output is compared with two checked-in files:

- ``golden/<manifest>.config.json``: the config document, pretty-printed (the operator writes the
  same data as canonical JSON into the gateway's ConfigMap);
- ``golden/<manifest>.upstream-keys.json``: the keys the operator copies into the gateway's
  upstream-keys Secret, each with a placeholder naming the Secret key its value comes from.

A change to rendering, to the examples or to the config seam shows up here as a diff a reader can
review. ``UPDATE_GOLDEN=1`` rewrites the files (and removes stale ones); read the diff before
committing it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelgate_gateway.config import SecretKeyRef, canonical_json, load_config, parse_config

# The operator's public renderer and route parser: if they move, this is the line to change.
from modelgate_operator.rendering.render import Rendered, SecretLookup, render
from modelgate_operator.rendering.resources import ModelRoute, parse_route

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"
BASE = GOLDEN / "base.yaml"
GATEWAY = "modelgate"
NAMESPACE = "default"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


def _manifest_files() -> list[Path]:
    candidates = sorted((ROOT / "examples").glob("*.yaml")) + sorted((ROOT / "crds" / "examples").glob("*.yaml"))
    return [p for p in candidates if any(d.get("kind") == "ModelRoute" for d in _documents(p))]


def _documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]


MANIFESTS = _manifest_files()


def _routes(path: Path) -> list[ModelRoute]:
    """The file's ModelRoutes as the API server would hand them to the operator after an apply."""
    routes = []
    for manifest in (d for d in _documents(path) if d.get("kind") == "ModelRoute"):
        metadata = manifest["metadata"]
        body = {
            **manifest,
            "metadata": {
                **metadata,
                "namespace": metadata.get("namespace", NAMESPACE),
                "generation": 1,
                "uid": f"uid-{metadata['name']}",
                # one apply: the API server stamps whole seconds, so age ties break on namespace/name
                "creationTimestamp": "2026-01-01T00:00:00Z",
            },
        }
        routes.append(parse_route(body, GATEWAY))
    return routes


def _secret_value(namespace: str, name: str, key: str) -> str:
    return f"<Secret {namespace}/{name}, key {key}>"


def _secrets(routes: list[ModelRoute]) -> SecretLookup:
    """Every referenced Secret exists and holds the referenced key, with a placeholder value."""
    found: dict[tuple[str, str], dict[str, bytes]] = {}
    for route in routes:
        for dep in route.deployments:
            if dep.api_key is not None:
                data = found.setdefault((route.namespace, dep.api_key.name), {})
                data[dep.api_key.key] = _secret_value(route.namespace, dep.api_key.name, dep.api_key.key).encode()
    return found


def _render(path: Path) -> Rendered:
    routes = _routes(path)
    base = parse_config(BASE.read_bytes(), "yaml", str(BASE))
    rendered = render(routes, _secrets(routes), base, gateway=GATEWAY, generation=1)
    verdicts = {key: v for key, v in rendered.verdicts.items() if not v.included}
    assert not verdicts, f"{path.name}: an example route is left out: {verdicts}"
    return rendered


def _pretty(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _golden_texts(rendered: Rendered) -> dict[str, str]:
    keys = {k: v.decode() for k, v in sorted(rendered.secret_data.items())}
    return {"config.json": _pretty(json.loads(rendered.document)), "upstream-keys.json": _pretty(keys)}


def _golden_path(manifest: Path, suffix: str) -> Path:
    return GOLDEN / f"{manifest.stem}.{suffix}"


@pytest.mark.parametrize("manifest", MANIFESTS, ids=[p.stem for p in MANIFESTS])
def test_example_renders_to_its_golden_document(manifest: Path) -> None:
    rendered = _render(manifest)
    for suffix, text in _golden_texts(rendered).items():
        path = _golden_path(manifest, suffix)
        if UPDATE:
            path.write_text(text)
        assert path.exists(), f"no golden {path.name}: run UPDATE_GOLDEN=1 pytest {__file__}"
        assert path.read_text() == text, f"{path.name} differs from what the operator renders now"
    # The pretty-printed golden is the very document the operator publishes, byte for byte.
    golden = _golden_path(manifest, "config.json")
    assert canonical_json(json.loads(golden.read_text())) == rendered.document


@pytest.mark.parametrize("manifest", MANIFESTS, ids=[p.stem for p in MANIFESTS])
def test_golden_document_loads_in_the_gateway(manifest: Path) -> None:
    golden = _golden_path(manifest, "config.json")
    config = load_config(golden)
    served = sorted(r.model for r in _routes(manifest))
    assert sorted(m.name for m in config.spec.models) == served
    assert config.metadata.checksum is not None and config.metadata.checksum.startswith("sha256:")
    keys = json.loads(_golden_path(manifest, "upstream-keys.json").read_text())
    referenced = {d.credentials.secret_key for d in config.spec.deployments if isinstance(d.credentials, SecretKeyRef)}
    assert referenced == set(keys), "every secretKey the document names is in the upstream-keys Secret, and only those"


def test_no_stale_golden_files() -> None:
    expected = {_golden_path(m, s).name for m in MANIFESTS for s in ("config.json", "upstream-keys.json")}
    present = {p.name for p in GOLDEN.glob("*.json")}
    if UPDATE:
        for name in present - expected:
            (GOLDEN / name).unlink()
        present = {p.name for p in GOLDEN.glob("*.json")}
    assert present == expected
