"""What the track exports (:mod:`.ctc`, :mod:`.geff`) share: checking a (T, ...) label stack, a lineage and an
output folder, and reading the stack one frame at a time without holding it.

A label stack is a (T, row, col) or (T, Z, row, col) integer array-like (numpy array or memmap, zarr or dask
array: anything with ``.shape``, ``.dtype`` and ``labels[t]`` returning one frame); 0 is background, any other
value an object id. A lineage is ``{child object id: parent object id}``. While a stack is read, the frames
each object is present in are collected as :data:`Runs`: object id -> ``[[first frame, last frame], ...]``,
one entry per unbroken run of frames, in time order.

Every check raises before anything is written, with a message that says what to change.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import LabelFormatError, OutputError
from .atomic import require_parent

#: Object id -> its runs of consecutive frames, ``[[first frame, last frame], ...]`` (inclusive) in time order.
Runs = dict[int, list[list[int]]]


# --- checks ---------------------------------------------------------------------------------------------


def check_stack(labels: Any) -> tuple[int, ...]:
    """The shape of ``labels`` as ints, if it is a non-empty (T, row, col) or (T, Z, row, col) integer stack.

    Raises:
        LabelFormatError (a ValueError): ``labels`` has another number of axes, no frames or a non-integer dtype.
    """
    shape = tuple(int(n) for n in labels.shape)
    if len(shape) not in (3, 4):
        raise LabelFormatError(
            f"CTC export needs a (T, row, col) or (T, Z, row, col) label stack, got shape {shape}; add a time "
            "axis to a single frame with labels[None]."
        )
    if shape[0] == 0:
        raise LabelFormatError("The label stack has no frames (shape[0] == 0); there is nothing to export.")
    dtype = np.dtype(labels.dtype)
    if dtype.kind not in "iu":
        raise LabelFormatError(f"Labels must have an integer dtype, not {dtype}; convert them, e.g. to uint16.")
    return shape


def check_target(folder: Path, overwrite: bool) -> None:
    """Refuse an output folder whose parent is missing, or that holds something and may not be replaced.

    Raises:
        OutputError: the parent folder is missing (:func:`~.atomic.require_parent`), or see
            :func:`refuse_occupied`.
    """
    require_parent(folder, "folder")
    refuse_occupied(folder, overwrite)


def refuse_occupied(folder: Path, overwrite: bool) -> None:
    """OutputError if ``folder`` is occupied (:func:`is_occupied`) and ``overwrite`` is False.

    Called before writing and again at the end of the staged write (the folder may fill in between).
    """
    if not overwrite and is_occupied(folder):
        raise OutputError(f"{folder} exists and is not empty; pass overwrite=True to replace it.")


def is_occupied(folder: Path) -> bool:
    """True if ``folder`` is a non-empty folder, or a file (anything but an empty folder or nothing)."""
    if not os.path.lexists(folder):
        return False
    if not folder.is_dir():
        return True
    with os.scandir(folder) as entries:
        return any(True for _ in entries)


def normalise_parents(parents: Mapping[int, int] | None) -> dict[int, int]:
    """``parents`` (``{child: parent}``, None for none) as ``{child: parent}`` of Python ints, without the
    "no parent" (0) entries.

    Raises:
        ValueError: a child id is not positive, a parent id is negative, or an object is its own parent.
    """
    lineage: dict[int, int] = {}
    for child, parent in (parents or {}).items():
        child, parent = int(child), int(parent)
        if child <= 0 or parent < 0:
            raise LabelFormatError(f"Lineage entry {child} -> {parent}: object ids must be positive (parent 0 = none).")
        if child == parent:
            raise LabelFormatError(f"Lineage entry {child} -> {parent}: an object cannot be its own parent.")
        if parent:
            lineage[child] = parent
    return lineage


def check_lineage(runs: Runs, lineage: dict[int, int]) -> None:
    """Check a normalised ``lineage`` (:func:`normalise_parents`) against the frames in ``runs``.

    Children that never appear are ignored.

    Raises:
        ValueError: listing every child whose parent never appears or is still present when the child starts.
    """
    problems = []
    for child, parent in sorted(lineage.items()):
        if child not in runs:
            continue  # nothing of the child is written
        start = runs[child][0][0]
        if parent not in runs:
            problems.append(f"object {child} (first frame {start}) has parent {parent}, which never appears")
        elif runs[parent][-1][1] >= start:
            problems.append(
                f"object {child} starts at frame {start} but its parent {parent} is present until frame "
                f"{runs[parent][-1][1]}; a child must start after its parent's last frame"
            )
    if problems:
        raise LabelFormatError("The lineage does not fit the labels (nothing was written): " + "; ".join(problems)
                               + ".")


# --- reading frame by frame -----------------------------------------------------------------------------


def record_presence(runs: Runs, ids: np.ndarray, t: int) -> None:
    """Extend ``runs`` in place with the objects ``ids`` ((n,) integer array) present in frame ``t``.

    Frames must be visited in increasing order: an object present in ``t - 1`` extends its last run.
    """
    for obj in ids.tolist():
        segments = runs.setdefault(obj, [])
        if segments and segments[-1][1] == t - 1:
            segments[-1][1] = t
        else:
            segments.append([t, t])


def read_frame(labels: Any, t: int, shape: tuple[int, ...]) -> np.ndarray:
    """Frame ``t`` of ``labels`` as a numpy array (dtype as stored), checked to have the frame shape
    ``shape[1:]`` ((row, col) or (Z, row, col)); ValueError otherwise."""
    frame = np.asarray(labels[t])
    if frame.shape != shape[1:]:
        raise LabelFormatError(f"Frame {t} of the labels has shape {frame.shape}, expected {shape[1:]}.")
    return frame


def check_non_negative(frame: np.ndarray, t: int) -> int:
    """The largest value of the non-empty integer ``frame`` (frame ``t`` of the stack); ValueError if it holds
    a negative value."""
    if frame.dtype.kind == "i" and int(frame.min()) < 0:
        raise LabelFormatError(
            f"Frame {t} holds the negative label {int(frame.min())}; labels must be 0 (background) or object ids."
        )
    return int(frame.max())
