"""Static checks of the two images' Dockerfiles (no container engine needed): pinned slim base,
multi-stage, dependencies from the lock files, non-root numeric user, contract ports, entrypoint."""

import re
from pathlib import Path

import pytest

from chart_helm import ROOT

IMAGES = {"gateway": "modelgate-gateway", "operator": "modelgate-operator"}


def _instructions(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", path.read_text())
    result = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


@pytest.mark.parametrize("component", IMAGES)
def test_dockerfile_is_pinned_multi_stage_and_non_root(component: str) -> None:
    steps = _instructions(ROOT / component / "Dockerfile")
    bases = [rest.split()[0] for word, rest in steps if word == "FROM"]
    assert len(bases) >= 2, "multi-stage build expected"
    for base in bases:
        if base in {"builder", "wheel", "deps"} or "$" in base:
            continue
        assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", base), base
    users = [rest for word, rest in steps if word == "USER"]
    assert users and re.fullmatch(r"\d+(:\d+)?", users[-1]), users
    assert not users[-1].startswith("0")
    runs = " ".join(rest for word, rest in steps if word == "RUN")
    copies = [rest.split() for word, rest in steps if word == "COPY"]
    lock = next(c[-1] for c in copies if c[0] == f"requirements/{component}.txt")
    assert f"-r {lock}" in runs
    assert "--require-hashes" not in runs or "--hash" in (ROOT / f"requirements/{component}.txt").read_text()
    assert "--no-deps" in runs
    entrypoint = [rest for word, rest in steps if word == "ENTRYPOINT"]
    assert entrypoint and IMAGES[component] in entrypoint[-1]
    exposed = " ".join(rest for word, rest in steps if word == "EXPOSE").split()
    if component == "gateway":
        assert exposed == ["4000", "9090"]
    text = (ROOT / component / "Dockerfile").read_text()
    assert not re.search(r"(?i)(api[_-]?key|password|token|secret)\s*[=:]", text)


@pytest.mark.parametrize("component", IMAGES)
def test_lock_files_pin_every_dependency(component: str) -> None:
    lines = [
        line
        for line in (ROOT / f"requirements/{component}.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines
    for line in lines:
        assert re.fullmatch(r"[A-Za-z0-9_.-]+==[A-Za-z0-9_.+!-]+", line), line
    names = {line.split("==")[0].lower().replace("_", "-") for line in lines}
    assert "modelgate" not in names
    needed = {
        "gateway": {"aiohttp", "prometheus-client", "pydantic", "pyyaml", "tiktoken"},
        "operator": {"kopf", "kubernetes", "pydantic", "pyyaml", "redis", "cryptography"},
    }[component]
    assert needed <= names


def test_dockerignore_keeps_the_build_context_small_and_secret_free() -> None:
    patterns = (ROOT / ".dockerignore").read_text().split()
    for pattern in (".git", ".venv", ".tools", "tests", "**/__pycache__"):
        assert pattern in patterns
