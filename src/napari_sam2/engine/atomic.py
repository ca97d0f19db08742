"""Outputs that appear complete or not at all: write under a hidden sibling name, rename at the end.

Used by every writer of napari-sam2 (label images, CTC / GEFF tracks,
prompt files, track tables): an interrupted run never leaves a file or folder
under the final name that looks complete, and an existing output is replaced
only at the last step.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path


def sibling(path: Path, tag: str, ext: str = "") -> Path:
    """An unused hidden name next to ``path``: ``.<name without ext>.<tag>-<random><ext>`` (``ext`` kept
    so that format libraries that look at the extension still recognise the file)."""
    stem = path.name[: len(path.name) - len(ext)] if ext else path.name
    while True:
        candidate = path.with_name(f".{stem}.{tag}-{secrets.token_hex(4)}{ext}")
        if not os.path.lexists(candidate):
            return candidate


def move_into_place(tmp: Path, path: Path, ext: str = "") -> None:
    """Rename the complete ``tmp`` to ``path``; an existing ``path`` (other than a file replaced by a file,
    which ``os.replace`` swaps atomically) is set aside first and removed last."""
    if not os.path.lexists(path) or (tmp.is_file() and not path.is_dir()):
        os.replace(tmp, path)
        return
    backup = sibling(path, "old", ext)
    os.replace(path, backup)
    try:
        os.replace(tmp, path)
    except BaseException:
        os.replace(backup, path)
        raise
    remove(backup)


def remove(path: Path) -> None:
    """Delete a file or folder if it is there; never raises (used while cleaning up)."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.lexists(path):
            path.unlink()
    except OSError:
        pass


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    path = Path(path)
    tmp = sibling(path, "partial")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        remove(tmp)
        raise
    return path
