"""Outputs that appear complete or not at all: write under a hidden sibling name, rename at the end
(:func:`staged`); and the progress count every writer reports (:class:`Counter`).

Used by every writer of napari-sam2 (label images, CTC / GEFF tracks,
prompt files, track tables): an interrupted run never leaves a file or folder
under the final name that looks complete, and an existing output is replaced
only at the last step.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ...errors import NapariSam2Error, OutputError, WriteError

#: ``progress(done, total)``, called by writers after each plane or frame.
Progress = Callable[[int, int], Any]


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


def require_parent(path: Path, what: str = "path") -> None:
    """OutputError unless the folder that ``path`` goes into exists; ``what`` ("path", "folder") names the
    output in the message. Writers call it before computing anything."""
    if not path.parent.is_dir():
        raise OutputError(f"The folder {path.parent} does not exist; create it or choose another output {what}.")


def remove(path: Path) -> None:
    """Delete a file or folder if it is there; never raises (used while cleaning up)."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.lexists(path):
            path.unlink()
    except OSError:
        pass


@contextmanager
def staged(path: Path, ext: str = "") -> Iterator[Path]:
    """Yield a hidden temporary name next to ``path`` to write the output to; when the block ends without an
    error the output is moved into place (:func:`move_into_place`), otherwise it is removed and the error
    re-raised; an ``OSError`` (full disk, no permission, name too long) as :class:`~napari_sam2.errors.WriteError`
    that names ``path`` and keeps the system's message. A check that must pass before replacing ``path`` goes at
    the end of the block."""
    tmp = sibling(path, "partial", ext)
    try:
        yield tmp
        move_into_place(tmp, path, ext)
    except OSError as exc:
        remove(tmp)
        if isinstance(exc, NapariSam2Error):
            raise
        raise WriteError(f"Cannot write {path} ({exc.strerror or exc}); check the free space and permissions of "
                         f"{path.parent}, or choose another output path. Nothing was written.") from exc
    except BaseException:
        remove(tmp)
        raise


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8, line endings as given) to ``path`` atomically."""
    path = Path(path)
    with staged(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="")
    return path


class Counter:
    """Reports ``progress(done, total)`` once per unit (plane, frame) a writer finishes."""

    def __init__(self, progress: Progress | None, total: int) -> None:
        self.progress, self.total, self.done = progress, total, 0

    def advance(self) -> None:
        """One more unit is done."""
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total)

    def finish(self) -> None:
        """Report the units a writer consumed but did not confirm one by one (e.g. the last TIFF page)."""
        while self.done < self.total:
            self.advance()
