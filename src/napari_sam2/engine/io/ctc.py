"""Export a tracked label stack as a Cell Tracking Challenge (CTC) result folder.

:func:`write_ctc` turns a (T, row, col) -- or (T, Z, row, col) -- label stack plus a ``{child: parent}``
lineage into the CTC "RES" layout::

    folder/
        mask000.tif  mask001.tif  ...   one uint16 TIFF per frame, frames numbered from 0
        res_track.txt                   one line "L B E P" per track

``mask`` is followed by the frame number zero-padded to 3 digits, or to 4 digits when the stack has more than
1000 frames (the CTC naming convention; the CTC evaluation software is told the digit count, traccuracy sorts
the file names). Beyond 10000 frames the width grows further so that names keep sorting by frame.

Each line of ``res_track.txt`` is ``L B E P``: the track's label in the masks, its first and last frame
(inclusive) and the label of its parent track, 0 for none. CTC requires a track's label to be present in every
frame from ``B`` to ``E``. An object that is absent for some frames and then present again is therefore split
into one track per unbroken run of frames ("segment"): the first segment keeps the object id, each later segment
gets a new label above every object id in use, and its parent is the segment before it. A parent with a single
child is how CTC itself represents such a gap (an object leaving the field of view and coming back). A child
object of the lineage links to the *last* segment of its parent. Frames without objects are written as empty
masks (the CTC evaluation software complains about empty result frames by default; traccuracy does not).

The masks are uint16 because the CTC evaluation software reads only 16-bit images; labels above 65535 are
refused with a ValueError. Masks are zlib-compressed by default (read by tifffile, and so by traccuracy, without
extra codecs); pass ``compression=None`` for uncompressed TIFFs.

The stack is read twice, one frame at a time (``labels[t]``) and never whole, so it may be larger than memory:
the first pass records in which frames each object is present, the second writes the relabelled masks. Nothing
is written before the lineage and the label range are checked. The export goes to a hidden sibling folder
(``.<name>.partial-<random>``) that is renamed to ``folder`` only once complete, as the label writers in
:mod:`napari_sam2.engine.io.label_files` do.

The checks and the frame-by-frame reading are shared with the GEFF export (:mod:`.geff`) in
:mod:`.label_scan`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from ...errors import LabelFormatError
from .atomic import Counter, Progress, staged
from .label_scan import (
    Runs,
    check_lineage,
    check_non_negative,
    check_stack,
    check_target,
    normalise_parents,
    read_frame,
    record_presence,
    refuse_occupied,
)

#: Name of the track file in a CTC result folder.
TRACK_FILE = "res_track.txt"

#: Largest label a CTC mask (uint16) can hold.
MAX_CTC_LABEL = int(np.iinfo(np.uint16).max)


@dataclass(frozen=True)
class CtcSummary:
    """What :func:`write_ctc` wrote.

    Attributes:
        folder: the CTC result folder.
        tracks: the lines of ``res_track.txt`` as ``(label, first frame, last frame, parent label or 0)``,
            sorted by label.
        relabelled: every object id found in the labels -> the labels of its segments in time order
            (``[object id]`` for an object without gaps; ``[object id, new label, ...]`` otherwise).
    """

    folder: Path
    tracks: list[tuple[int, int, int, int]]
    relabelled: dict[int, list[int]]


def ctc_mask_name(t: int, n_frames: int) -> str:
    """File name of frame ``t`` in a CTC result of ``n_frames`` frames: ``mask007.tif``, or ``mask0007.tif``
    when ``n_frames > 1000`` (wider still beyond 10000 frames)."""
    width = max(3, len(str(max(n_frames - 1, 0))))
    return f"mask{t:0{width}d}.tif"


def write_ctc(
    folder: str | os.PathLike,
    labels: Any,
    parents: Mapping[int, int] | None = None,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
    compression: str | None = "zlib",
) -> CtcSummary:
    """Write ``labels`` and their lineage to ``folder`` in the CTC result layout (see the module docstring).

    Args:
        folder: output folder; its parent must exist. An existing empty folder is replaced.
        labels: (T, row, col) or (T, Z, row, col) integer label stack -- numpy array or memmap, zarr or dask
            array, anything with ``.shape``, ``.dtype`` and ``labels[t]`` returning one frame. 0 is background,
            any other value an object id (at most 65535). It is read one frame at a time, twice.
        parents: ``{child object id: parent object id}``. A division is two children of one parent; each child
            must start after its parent's last frame. A parent of 0 means no parent; entries whose child never
            appears in ``labels`` are ignored.
        overwrite: replace an existing non-empty ``folder`` (only once the new export is complete).
        progress: called as ``progress(done, total)`` after each frame of each pass; ``total`` is ``2 * T``.
        compression: TIFF compression of the masks (tifffile name), or None.

    Returns:
        A :class:`CtcSummary` with the tracks written and the labels of every object's segments.

    Raises:
        OutputError: the parent folder is missing, or ``folder`` exists, is not empty and ``overwrite`` is False.
        LabelFormatError (a ValueError): ``labels`` is not a 3-D/4-D integer stack, holds negative values or
            ids above 65535 (also after splitting gaps into new labels), or the lineage names a parent that never
            appears or that is still present when its child starts. Nothing is written in these cases; any error
            while writing removes the temporary folder and is re-raised.
    """
    folder = Path(folder)
    shape = check_stack(labels)
    check_target(folder, overwrite)
    lineage = normalise_parents(parents)
    counter = Counter(progress, 2 * shape[0])
    runs = _scan_presence(labels, shape, counter)
    check_lineage(runs, lineage)
    relabelled = _segment_labels(runs)
    tracks = _tracks(runs, relabelled, lineage)
    with staged(folder) as tmp:
        tmp.mkdir()
        _write_masks(tmp, labels, shape, _segment_starts(runs, relabelled), counter, compression)
        _write_track_file(tmp / TRACK_FILE, tracks)
        refuse_occupied(folder, overwrite)  # filled while we were writing
    return CtcSummary(folder=folder, tracks=tracks, relabelled=relabelled)


# --- pass 1: presence -----------------------------------------------------------------------------------


def _scan_presence(labels: Any, shape: tuple[int, ...], counter: Counter) -> Runs:
    """For every object id, the runs of consecutive frames it is present in; reads one frame at a time."""
    runs: Runs = {}
    for t in range(shape[0]):
        record_presence(runs, _frame_ids(read_frame(labels, t, shape), t), t)
        counter.advance()
    return runs


def _frame_ids(frame: np.ndarray, t: int) -> np.ndarray:
    """Sorted non-zero ids in ``frame`` (any integer dtype), checked to lie in 0..65535."""
    if frame.size == 0:
        return np.empty(0, dtype=np.intp)
    high = check_non_negative(frame, t)
    if high > MAX_CTC_LABEL:
        raise LabelFormatError(
            f"Frame {t} holds object id {high}, above {MAX_CTC_LABEL}, the largest label a CTC mask (uint16, the "
            "only type the CTC evaluation software reads) can hold; renumber the objects first."
        )
    counts = np.bincount(frame.reshape(-1).astype(np.uint16, copy=False), minlength=high + 1)
    return np.flatnonzero(counts[1:]) + 1


# --- relabelling ----------------------------------------------------------------------------------------


def _segment_labels(runs: Runs) -> dict[int, list[int]]:
    """Object id -> the label of each of its segments: the id itself, then new labels above every id in use.

    New labels are handed out in order of object id, then time. ValueError if one exceeds 65535.
    """
    next_label = max(runs, default=0) + 1
    relabelled: dict[int, list[int]] = {}
    for obj in sorted(runs):
        extra = len(runs[obj]) - 1
        relabelled[obj] = [obj, *range(next_label, next_label + extra)]
        next_label += extra
    if next_label - 1 > MAX_CTC_LABEL:
        split = sum(len(v) > 1 for v in relabelled.values())
        raise LabelFormatError(
            f"Splitting the {split} objects that have gaps into CTC tracks needs labels up to {next_label - 1}, "
            f"above {MAX_CTC_LABEL}, the largest label a CTC mask (uint16) can hold; renumber the objects with "
            "smaller ids first (nothing was written)."
        )
    return relabelled


def _tracks(runs: Runs, relabelled: dict[int, list[int]], lineage: dict[int, int]) -> list[tuple[int, int, int, int]]:
    """``(label, first frame, last frame, parent label)`` per segment, sorted by label.

    A later segment's parent is the segment before it; a first segment's parent is the last segment of the
    object's lineage parent (0 without one).
    """
    tracks = []
    for obj, segments in runs.items():
        labels_of = relabelled[obj]
        parent = lineage.get(obj)
        previous = relabelled[parent][-1] if parent else 0
        for (first, last), label in zip(segments, labels_of):
            tracks.append((label, first, last, previous))
            previous = label
    return sorted(tracks)


def _segment_starts(runs: Runs, relabelled: dict[int, list[int]]) -> dict[int, list[tuple[int, int]]]:
    """Frame -> ``(object id, new label)`` of the later segments (those with a new label) starting there."""
    starts: dict[int, list[tuple[int, int]]] = {}
    for obj, segments in runs.items():
        for (first, _), label in zip(segments[1:], relabelled[obj][1:]):
            starts.setdefault(first, []).append((obj, label))
    return starts


# --- pass 2: writing ------------------------------------------------------------------------------------


def _write_masks(
    tmp: Path,
    labels: Any,
    shape: tuple[int, ...],
    starts: dict[int, list[tuple[int, int]]],
    counter: Counter,
    compression: str | None,
) -> None:
    """One uint16 TIFF per frame, each object id mapped to the label of its current segment.

    The mapping is a 65536-entry lookup table: a later segment's label is entered when the segment starts and
    stays until the object's next segment starts (the object is absent in between, so the entry is unused).
    """
    lut = np.arange(MAX_CTC_LABEL + 1, dtype=np.uint16)
    for t in range(shape[0]):
        for obj, label in starts.get(t, ()):
            lut[obj] = label
        frame = read_frame(labels, t, shape)
        mask = np.take(lut, frame.astype(np.intp, copy=False)) if starts else frame.astype(np.uint16, copy=False)
        tifffile.imwrite(tmp / ctc_mask_name(t, shape[0]), mask, photometric="minisblack", compression=compression)
        counter.advance()


def _write_track_file(path: Path, tracks: list[tuple[int, int, int, int]]) -> None:
    """``res_track.txt``: one ``L B E P`` line per track."""
    path.write_text("".join(f"{label} {first} {last} {parent}\n" for label, first, last, parent in tracks))
