"""Project hygiene: lint clean, typed, one version, runtime dependencies = what src/ imports."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "napari_sam2"
# import name -> distribution name, where they differ
DIST = {"PIL": "pillow", "yaml": "pyyaml"}


def test_ruff_passes_with_the_project_configuration():
    ruff = subprocess.run([sys.executable, "-m", "ruff", "check", str(ROOT)], capture_output=True, text=True)
    if ruff.returncode and "No module named ruff" in ruff.stderr:
        pytest.fail("ruff is not installed: pip install -e '.[testing]'")
    assert ruff.returncode == 0, ruff.stdout[-3000:]


def test_package_is_typed_and_has_one_version():
    import napari_sam2

    assert (SRC / "py.typed").is_file()
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject and "\nversion =" not in pyproject.split("[project]")[1][:400]
    from importlib.metadata import version

    assert version("napari-sam2") == napari_sam2.__version__


# The parts of src/ that only an extra makes importable (path prefixes relative to SRC) -> that extra. Everything
# else is the core install: the engine, the Python API and `napari-sam2 segment/info/download`.
EXTRA_PARTS = {"napari": ("gui/", "demo.py"), "batch": ("cli/batch", "cli/workers")}


def _third_party_imports(path: Path) -> set[str]:
    """Distribution names (lower case) of the top-level modules ``path`` imports, anywhere in the file."""
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module.split(".")[0])
    return {DIST.get(m, m).lower() for m in imported
            if m not in sys.stdlib_module_names and m not in ("napari_sam2", "__future__")}


def _names(requirements: list[str]) -> set[str]:
    """The distribution names of PEP 508 requirement strings (lower case; extras, versions, markers dropped)."""
    return {re.match(r"[A-Za-z0-9_.-]+", r.strip()).group(0).lower() for r in requirements}


def _project() -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: pytest depends on tomli there
        import tomli as tomllib
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _imports_by_part() -> tuple[set[str], dict[str, set[str]]]:
    core: set[str] = set()
    parts: dict[str, set[str]] = {extra: set() for extra in EXTRA_PARTS}
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).as_posix()
        extra = next((e for e, prefixes in EXTRA_PARTS.items() if rel.startswith(prefixes)), None)
        (core if extra is None else parts[extra]).update(_third_party_imports(path))
    return core, parts


def test_runtime_dependencies_are_what_the_code_imports():
    """The core dependencies are exactly what src/ imports outside the parts behind an extra."""
    core, _ = _imports_by_part()
    assert core == _names(_project()["dependencies"])


@pytest.mark.parametrize("extra", sorted(EXTRA_PARTS))
def test_each_extra_is_what_its_part_of_the_code_adds(extra):
    """`napari` = what gui/ and demo.py import beyond the core; `batch` = what cli/batch* and cli/workers* import
    beyond it."""
    core, parts = _imports_by_part()
    assert parts[extra] - core == _names(_project()["optional-dependencies"][extra])


def test_the_all_extra_installs_every_runtime_extra():
    extras = _project()["optional-dependencies"]
    (everything,) = extras["all"]
    wanted = set(re.fullmatch(r"napari-sam2\[([a-z,]+)\]", everything).group(1).split(","))
    assert wanted == set(extras) - {"all", "testing"}


def test_mypy_passes_with_the_project_configuration(monkeypatch):
    """mypy over src/napari_sam2 with [tool.mypy] of pyproject.toml (files, strictness, overrides) reports nothing.
    About 15 s without a cache (.mypy_cache in the repository root), under 1 s with one."""
    api = pytest.importorskip("mypy.api", reason="mypy is not installed: pip install -e '.[testing]'")
    monkeypatch.chdir(ROOT)  # [tool.mypy] files are relative to the repository root
    stdout, stderr, status = api.run(["--config-file", str(ROOT / "pyproject.toml"), "--no-error-summary"])
    assert status == 0, (stdout + stderr)[-6000:]
