"""House rules of the repository that no linter checks for us."""

import ast
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


def _imported_top_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_config_seam_imports_only_stdlib_pydantic_and_yaml() -> None:
    forbidden = {"aiohttp", "prometheus_client", "kopf", "kubernetes", "orjson", "redis"}
    config_dir = ROOT / "gateway/src/modelgate_gateway/config"
    for path in config_dir.rglob("*.py"):
        assert not (_imported_top_modules(path) & forbidden), path


def test_gateway_never_imports_kopf_or_kubernetes() -> None:
    for path in (ROOT / "gateway/src").rglob("*.py"):
        assert not (_imported_top_modules(path) & {"kopf", "kubernetes"}), path


def test_operator_imports_only_the_config_seam_of_the_gateway() -> None:
    for path in (ROOT / "operator/src").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("modelgate_gateway"):
                assert node.module.startswith("modelgate_gateway.config"), (path, node.module)
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("modelgate_gateway"):
                        assert alias.name.startswith("modelgate_gateway.config"), (path, alias.name)


def test_upstream_http_client_imports_nothing_of_the_gateway_and_not_aiohttp() -> None:
    """The client stands alone (only relative imports inside its package), and upstream calls
    never go back to aiohttp's client by accident."""
    package = ROOT / "gateway/src/modelgate_gateway/http1"
    for path in package.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level > 1:
                raise AssertionError(f"{path}: imports from outside its package")
        assert not (_imported_top_modules(path) & {"aiohttp", "modelgate_gateway"}), path
    for path in (ROOT / "gateway/src/modelgate_gateway/upstream").glob("*.py"):
        assert "aiohttp" not in _imported_top_modules(path), path
