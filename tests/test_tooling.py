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


def test_runtime_dependencies_are_what_the_code_imports():
    imported = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = {DIST.get(m, m).lower() for m in imported
                   if m not in sys.stdlib_module_names and m not in ("napari_sam2", "__future__")}
    block = re.search(r"^dependencies = \[(.*?)\]", (ROOT / "pyproject.toml").read_text(), re.S | re.M).group(1)
    declared = {re.split(r"[<>=!\[ ]", d.strip().strip('",'))[0].lower() for d in block.splitlines()
                if d.strip().startswith('"')}
    assert third_party == declared
