"""House rules of the repository that no linter checks for us.

Import rules (the seam, the operator, http1, pure modules, layers, cycles) are import-linter
contracts in `.importlinter`, run by `make lint` (which .ci/run runs before the tests).
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE_ROOTS = [ROOT / "gateway" / "src", ROOT / "operator" / "src"]
MAX_MODULE_LINES = 600
# Reviewed exemptions: path relative to ROOT -> reason.
LINE_EXEMPTIONS: dict[str, str] = {}


def test_operator_folder_never_shadows_the_standard_library() -> None:
    out = subprocess.run(
        [sys.executable, "-S", "-c", "import operator; print(operator.__file__)"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert not out.startswith(str(ROOT)), out
    assert not (ROOT / "operator" / "__init__.py").exists()


def test_no_init_files_under_tests() -> None:
    assert list((ROOT / "tests").rglob("__init__.py")) == []


def test_no_catch_all_module_names() -> None:
    banned = {"utils.py", "helpers.py", "common.py", "misc.py"}
    found = [p for root in SOURCE_ROOTS for p in root.rglob("*.py") if p.name in banned]
    assert found == []


def test_source_modules_stay_small() -> None:
    big = []
    for root in SOURCE_ROOTS:
        for path in root.rglob("*.py"):
            rel = str(path.relative_to(ROOT))
            lines = len(path.read_text().splitlines())
            if lines > MAX_MODULE_LINES and rel not in LINE_EXEMPTIONS:
                big.append(f"{rel}: {lines}")
    assert big == []
