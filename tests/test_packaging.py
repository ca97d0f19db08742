"""The core install: without napari, Qt or dask.distributed the library and the command line still work.

Nothing is uninstalled: each check runs in a new Python process whose first act is to put an import hook in
front of ``sys.meta_path`` that refuses the optional packages the way a missing package is refused
(``ModuleNotFoundError``), so the process behaves as a core install (``pip install napari-sam2``) would.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import napari_sam2
from napari_sam2.engine.io.stack_files import read_stack

#: Run first in every process: the optional packages (and every Qt binding) cannot be imported.
REFUSE_EXTRAS = """
import importlib.abc
import sys

class RefuseExtras(importlib.abc.MetaPathFinder):
    OPTIONAL = ("napari", "qtpy", "distributed", "magicgui", "vispy")

    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top in self.OPTIONAL or top.startswith(("PyQt", "PySide")):
            raise ModuleNotFoundError(f"No module named {top!r}", name=top)
        return None

sys.meta_path.insert(0, RefuseExtras())
"""
CLI = REFUSE_EXTRAS + "import runpy\nrunpy.run_module('napari_sam2', run_name='__main__', alter_sys=True)\n"


def core_python(code: str, *args: object) -> subprocess.CompletedProcess:
    """Run ``code`` (after REFUSE_EXTRAS) in a new process with ``args`` as sys.argv[1:]."""
    return subprocess.run([sys.executable, "-c", REFUSE_EXTRAS + code, *map(str, args)], capture_output=True,
                          text=True, timeout=300)


def core_cli(*args: object) -> subprocess.CompletedProcess:
    """``napari-sam2 ARGS`` in a process that cannot import the optional packages."""
    return subprocess.run([sys.executable, "-c", CLI, *map(str, args)], capture_output=True, text=True, timeout=300)


def test_the_hook_refuses_the_optional_packages():
    """The hook works: napari, qtpy, a Qt binding and distributed cannot be imported behind it."""
    proc = core_python("""
for name in ("napari", "qtpy", "PyQt6.QtCore", "PySide6", "distributed", "magicgui", "vispy"):
    try:
        __import__(name)
    except ModuleNotFoundError:
        continue
    raise SystemExit(f"{name} was imported")
""")
    assert proc.returncode == 0, proc.stderr


def test_library_works_without_the_extras(tiny_checkpoint):
    """``import napari_sam2``, the engine, load_model and a prediction, without napari, Qt or distributed."""
    proc = core_python("""
import numpy as np
import napari_sam2
import napari_sam2.engine
import napari_sam2.cli
import napari_sam2.sample_data
import napari_sam2.demo

model = napari_sam2.load_model(sys.argv[1], device="cpu", dtype="float32")
image = np.random.default_rng(0).integers(0, 255, (40, 48), dtype=np.uint8)
result = model.predict_image(image, points=[[20, 24]], labels=[1])
print(result.masks.shape)
""", tiny_checkpoint)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "(1, 40, 48)"


@pytest.fixture(scope="module")
def clicked(tmp_path_factory, tiny_checkpoint):
    """A (5, 40, 48) uint16 stack as .npy and the prompt file of one click on frame 0."""
    folder = tmp_path_factory.mktemp("core")
    data = np.full((5, 40, 48), 900, np.uint16)
    yy, xx = np.ogrid[:40, :48]
    for t in range(5):
        data[t][(yy - 18 - t) ** 2 + (xx - 22) ** 2 < 49] += 2500
    np.save(folder / "cells.npy", data)
    session = napari_sam2.load_model(tiny_checkpoint, device="cpu", dtype="float32").open_stack(data)
    session.set_prompts(0, 1, points=[[18, 22]])
    prompts = session.save_prompts(folder / "cells.json")
    session.close()
    return folder / "cells.npy", prompts


def test_segment_runs_without_the_extras(clicked, tiny_checkpoint, tmp_path):
    stack, prompts = clicked
    out = tmp_path / "cells.labels.ome.tif"
    proc = core_cli("segment", stack, "--prompts", prompts, "-o", out, "--model", tiny_checkpoint,
                    "--device", "cpu", "--dtype", "float32", "--quiet")
    assert proc.returncode == 0, proc.stderr
    written = np.asarray(read_stack(out).data)
    assert written.shape == (5, 40, 48)


def test_info_and_download_run_without_the_extras():
    proc = core_cli("info")
    assert proc.returncode == 0, proc.stderr
    assert "torch " in proc.stdout and "checkpoint cache:" in proc.stdout
    proc = core_cli("download", "sam3_giant")  # the downloader's imports load; no network needed for a wrong name
    assert proc.returncode == 1 and "Unknown SAM 2 checkpoint 'sam3_giant'" in proc.stderr, proc.stderr


def test_demo_headless_runs_without_napari(tiny_checkpoint):
    proc = core_cli("demo", "--headless", "--model", tiny_checkpoint)
    assert proc.returncode == 0, proc.stderr
    assert "frame 0: mask of" in proc.stdout


@pytest.mark.parametrize(("command", "extra"), [("batch", "batch"), ("demo", "napari,qt")])
def test_a_command_without_its_extra_says_which_to_install(command, extra, clicked, tmp_path):
    """``batch`` without distributed and ``demo`` without napari: one line naming the pip extra, status 1."""
    stack, prompts = clicked
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(f"stack,prompts\n{stack},{prompts}\n")
    args = {"batch": ("batch", manifest, "-o", tmp_path / "out"), "demo": ("demo",)}[command]
    proc = core_cli(*args)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"napari-sam2: error: 'napari-sam2 {command}' needs ")
    assert lines[0].endswith(f"pip install 'napari-sam2[{extra}]'")
    assert not (tmp_path / "out").exists()
