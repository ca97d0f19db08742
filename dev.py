#!/usr/bin/env python3
"""One entry point for a fresh clone: set up .venv, then run the demo or the tests.

    python3 dev.py demo     # set up (first time), open napari with the plugin on sample data
    python3 dev.py test     # set up (first time), run the whole test suite
    python3 dev.py setup    # only set up

Set-up creates ./.venv with the Python running this script (3.10+), installs
torch==2.13.0 first (so pip never swaps in a different build), then the
project in editable mode with every extra: `napari` and `qt` (the widget),
`batch` (dask.distributed) and `testing`. It is redone only when pyproject.toml
or this file change.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("NAPARI_SAM2_VENV", ROOT / ".venv"))
TORCH = "torch==2.13.0"
EXTRAS = ".[napari,qt,batch,testing]"  # everything: the `all` extra plus `testing`


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def run(*cmd: str | os.PathLike) -> None:
    print("+", " ".join(map(str, cmd)), flush=True)
    subprocess.run(list(map(str, cmd)), check=True, cwd=ROOT)


def setup() -> Path:
    if sys.version_info < (3, 10):  # noqa: UP036 - dev.py may be started by an older Python
        sys.exit(f"napari-sam2 needs Python 3.10 or newer; this is {sys.version.split()[0]}.")
    stamp_file = VENV / ".napari-sam2-setup"
    stamp = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + Path(__file__).read_bytes()).hexdigest()
    py = venv_python()
    if py.exists() and stamp_file.exists() and stamp_file.read_text() == stamp:
        return py
    if not py.exists():
        print(f"Creating {VENV} ...", flush=True)
        venv.create(VENV, with_pip=True)
    run(py, "-m", "pip", "install", "--quiet", TORCH)
    run(py, "-m", "pip", "install", "--quiet", "-e", EXTRAS)
    stamp_file.write_text(stamp)
    return py


def main(argv: list[str]) -> int:
    task, rest = (argv[0], argv[1:]) if argv else ("help", [])
    if task not in {"setup", "test", "demo"}:
        print(__doc__)
        return 0 if task in {"help", "-h", "--help"} else 2
    py = setup()
    if task == "test":
        return subprocess.run([str(py), "-m", "pytest", *rest], cwd=ROOT).returncode
    if task == "demo":
        return subprocess.run([str(py), "-m", "napari_sam2", "demo", *rest], cwd=ROOT).returncode  # napari-sam2 demo
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
