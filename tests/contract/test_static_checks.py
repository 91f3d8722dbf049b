"""The code base stays lint-clean and type-checks strictly (the same commands as `make lint`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)


def test_ruff_finds_nothing() -> None:
    result = _run(str(BIN / "ruff"), "check", "gateway/src", "operator/src", "tests", "bench")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_passes_on_both_source_roots() -> None:
    result = _run(str(BIN / "mypy"), "gateway/src/modelgate_gateway", "operator/src/modelgate_operator")
    assert result.returncode == 0, result.stdout + result.stderr
