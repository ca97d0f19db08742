"""Export a tracked label stack as a Cell Tracking Challenge (CTC) result folder or as a GEFF graph.

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

:func:`write_geff` writes the same tracking result as a graph in the GEFF format (graph exchange file format,
spec 1.1: a zarr v2 group with ``nodes/ids``, ``nodes/props/<name>/values``, ``edges/ids`` and the metadata
under the ``geff`` attribute). It is written with zarr alone -- the ``geff`` package is not needed to write, the
tests check the output with geff's own validator and reader. One node per object and frame, with the node
properties ``t``, (``z``,) ``y``, ``x`` (centroid, pixels), ``area`` (pixel/voxel count), ``label`` (object id)
and ``lineage_id`` (the object id at the root of the object's lineage, declared as geff's lineage property).
Edges join each object's successive appearances (across a gap too: no relabelling is needed in a graph) and a
parent's last node to each child's first node.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
import zarr

from ...errors import OutputError
from ..storage.zarr_format import ZARR_V2
from .atomic import Counter, Progress, staged

#: Name of the track file in a CTC result folder.
TRACK_FILE = "res_track.txt"

#: Largest label a CTC mask (uint16) can hold.
MAX_CTC_LABEL = int(np.iinfo(np.uint16).max)

#: GEFF spec version :func:`write_geff` writes (checked against geff-spec 1.1 in the tests).
GEFF_VERSION = "1.1"

Runs = dict[int, list[list[int]]]  # object id -> [[first frame, last frame], ...] in time order

_SPACE_AXES = ("z", "y", "x")


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
        ValueError: ``labels`` is not a 3-D/4-D integer stack, holds negative values or ids above 65535 (also
            after splitting gaps into new labels), or the lineage names a parent that never appears or that is
            still present when its child starts. Nothing is written in these cases; any error while writing
            removes the temporary folder and is re-raised.
    """
    folder = Path(folder)
    shape = _check_stack(labels)
    _check_target(folder, overwrite)
    lineage = _normalise_parents(parents)
    counter = Counter(progress, 2 * shape[0])
    runs = _scan_presence(labels, shape, counter)
    _check_lineage(runs, lineage)
    relabelled = _segment_labels(runs)
    tracks = _tracks(runs, relabelled, lineage)
    with staged(folder) as tmp:
        tmp.mkdir()
        _write_masks(tmp, labels, shape, _segment_starts(runs, relabelled), counter, compression)
        _write_track_file(tmp / TRACK_FILE, tracks)
        if not overwrite and _is_occupied(folder):  # filled while we were writing
            raise OutputError(f"{folder} exists and is not empty; pass overwrite=True to replace it.")
    return CtcSummary(folder=folder, tracks=tracks, relabelled=relabelled)


# --- checks ---------------------------------------------------------------------------------------------


def _check_stack(labels: Any) -> tuple[int, ...]:
    """The shape of ``labels`` as ints, if it is a non-empty (T, row, col) or (T, Z, row, col) integer stack."""
    shape = tuple(int(n) for n in labels.shape)
    if len(shape) not in (3, 4):
        raise ValueError(
            f"CTC export needs a (T, row, col) or (T, Z, row, col) label stack, got shape {shape}; add a time "
            "axis to a single frame with labels[None]."
        )
    if shape[0] == 0:
        raise ValueError("The label stack has no frames (shape[0] == 0); there is nothing to export.")
    dtype = np.dtype(labels.dtype)
    if dtype.kind not in "iu":
        raise ValueError(f"Labels must have an integer dtype, not {dtype}; convert them, e.g. to uint16.")
    return shape


def _check_target(folder: Path, overwrite: bool) -> None:
    """Refuse a folder whose parent is missing, or that holds something and may not be replaced."""
    if not folder.parent.is_dir():
        raise OutputError(f"The folder {folder.parent} does not exist; create it or choose another output folder.")
    if not overwrite and _is_occupied(folder):
        raise OutputError(f"{folder} exists and is not empty; pass overwrite=True to replace it.")


def _is_occupied(folder: Path) -> bool:
    """True if ``folder`` is a non-empty folder, or a file (anything but an empty folder or nothing)."""
    if not os.path.lexists(folder):
        return False
    if not folder.is_dir():
        return True
    with os.scandir(folder) as entries:
        return any(True for _ in entries)


def _normalise_parents(parents: Mapping[int, int] | None) -> dict[int, int]:
    """``parents`` as ``{child: parent}`` of Python ints, without "no parent" (0) entries."""
    lineage: dict[int, int] = {}
    for child, parent in (parents or {}).items():
        child, parent = int(child), int(parent)
        if child <= 0 or parent < 0:
            raise ValueError(f"Lineage entry {child} -> {parent}: object ids must be positive (parent 0 = none).")
        if child == parent:
            raise ValueError(f"Lineage entry {child} -> {parent}: an object cannot be its own parent.")
        if parent:
            lineage[child] = parent
    return lineage


def _check_lineage(runs: Runs, lineage: dict[int, int]) -> None:
    """ValueError listing every child whose parent never appears or is still present when the child starts."""
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
        raise ValueError("The lineage does not fit the labels (nothing was written): " + "; ".join(problems) + ".")


# --- pass 1: presence -----------------------------------------------------------------------------------


def _scan_presence(labels: Any, shape: tuple[int, ...], counter: Counter) -> Runs:
    """For every object id, the runs of consecutive frames it is present in; reads one frame at a time."""
    runs: Runs = {}
    for t in range(shape[0]):
        _record_presence(runs, _frame_ids(_read_frame(labels, t, shape), t), t)
        counter.advance()
    return runs


def _record_presence(runs: Runs, ids: np.ndarray, t: int) -> None:
    """Extend ``runs`` with the objects ``ids`` present in frame ``t`` (frames are visited in order)."""
    for obj in ids.tolist():
        segments = runs.setdefault(obj, [])
        if segments and segments[-1][1] == t - 1:
            segments[-1][1] = t
        else:
            segments.append([t, t])


def _read_frame(labels: Any, t: int, shape: tuple[int, ...]) -> np.ndarray:
    """Frame ``t`` of ``labels`` as a numpy array, checked to have the frame shape ``shape[1:]``."""
    frame = np.asarray(labels[t])
    if frame.shape != shape[1:]:
        raise ValueError(f"Frame {t} of the labels has shape {frame.shape}, expected {shape[1:]}.")
    return frame


def _frame_ids(frame: np.ndarray, t: int) -> np.ndarray:
    """Sorted non-zero ids in ``frame`` (any integer dtype), checked to lie in 0..65535."""
    if frame.size == 0:
        return np.empty(0, dtype=np.intp)
    high = _check_non_negative(frame, t)
    if high > MAX_CTC_LABEL:
        raise ValueError(
            f"Frame {t} holds object id {high}, above {MAX_CTC_LABEL}, the largest label a CTC mask (uint16, the "
            "only type the CTC evaluation software reads) can hold; renumber the objects first."
        )
    counts = np.bincount(frame.reshape(-1).astype(np.uint16, copy=False), minlength=high + 1)
    return np.flatnonzero(counts[1:]) + 1


def _check_non_negative(frame: np.ndarray, t: int) -> int:
    """The largest value of the non-empty ``frame``; ValueError if it holds a negative value."""
    if frame.dtype.kind == "i" and int(frame.min()) < 0:
        raise ValueError(
            f"Frame {t} holds the negative label {int(frame.min())}; labels must be 0 (background) or object ids."
        )
    return int(frame.max())


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
        raise ValueError(
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
        frame = _read_frame(labels, t, shape)
        mask = np.take(lut, frame.astype(np.intp, copy=False)) if starts else frame.astype(np.uint16, copy=False)
        tifffile.imwrite(tmp / ctc_mask_name(t, shape[0]), mask, photometric="minisblack", compression=compression)
        counter.advance()


def _write_track_file(path: Path, tracks: list[tuple[int, int, int, int]]) -> None:
    """``res_track.txt``: one ``L B E P`` line per track."""
    path.write_text("".join(f"{label} {first} {last} {parent}\n" for label, first, last, parent in tracks))


# --- GEFF -----------------------------------------------------------------------------------------------


def write_geff(
    path: str | os.PathLike,
    labels: Any,
    parents: Mapping[int, int] | None = None,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> Path:
    """Write ``labels`` and their lineage as a GEFF graph (zarr v2 folder at ``path``, see the module docstring).

    Args:
        path: output folder (a zarr group; ``.geff`` or ``.zarr`` are the usual extensions); its parent must exist.
        labels: (T, row, col) or (T, Z, row, col) integer label stack, read one frame at a time (``labels[t]``);
            0 is background, any other value an object id (any size: no uint16 limit here).
        parents: ``{child object id: parent object id}``, with the same rules as in :func:`write_ctc`.
        overwrite: replace an existing non-empty ``path`` (only once the new graph is complete).
        progress: called as ``progress(done, T)`` after each frame.

    Returns:
        ``path`` as a Path. Node ids are 0..N-1 in order of frame, then object id. Node properties: ``t``
        (int64), ``z`` (3-D frames only), ``y``, ``x`` (float64 centroid in pixels, axes typed time/space),
        ``area`` (int64 pixel or voxel count), ``label`` (uint64 object id), ``lineage_id`` (uint64). Edges
        (uint64 node id pairs, source earlier in time) have no properties.

    Raises:
        OutputError: the parent folder is missing, or ``path`` exists, is not empty and ``overwrite`` is False.
        ValueError: ``labels`` is not a 3-D/4-D integer stack or holds negative values, or the lineage does not
            fit the labels (as in :func:`write_ctc`). Nothing is written then; any error while writing removes
            the temporary folder and is re-raised.
    """
    path = Path(path)
    shape = _check_stack(labels)
    _check_target(path, overwrite)
    lineage = _normalise_parents(parents)
    counter = Counter(progress, shape[0])
    graph = _GraphBuilder(len(shape) - 1)
    for t in range(shape[0]):
        graph.add_frame(t, _read_frame(labels, t, shape))
        counter.advance()
    _check_lineage(graph.runs, lineage)
    with staged(path) as tmp:
        _write_geff_group(tmp, graph, lineage)
        if not overwrite and _is_occupied(path):  # filled while we were writing
            raise OutputError(f"{path} exists and is not empty; pass overwrite=True to replace it.")
    return path


class _GraphBuilder:
    """Collects nodes and within-object edges frame by frame (one frame in memory at a time)."""

    def __init__(self, n_space: int) -> None:
        self.n_space = n_space
        self.runs: Runs = {}
        self.frames: list[np.ndarray] = []  # per frame: (n,) t
        self.objects: list[np.ndarray] = []  # per frame: (n,) object ids
        self.areas: list[np.ndarray] = []
        self.centroids: list[np.ndarray] = []  # per frame: (n, n_space) in (z,) y, x order
        self.edges: list[tuple[int, int]] = []
        self.first_node: dict[int, int] = {}  # object id -> its first node
        self.last_node: dict[int, int] = {}  # object id -> its latest node so far
        self.n_nodes = 0

    def add_frame(self, t: int, frame: np.ndarray) -> None:
        """Add one node per object in ``frame`` and an edge from each object's previous node."""
        ids, areas, centroids = _frame_objects(frame, t)
        _record_presence(self.runs, ids, t)
        for node, obj in enumerate(ids.tolist(), start=self.n_nodes):
            if obj in self.last_node:
                self.edges.append((self.last_node[obj], node))
            else:
                self.first_node[obj] = node
            self.last_node[obj] = node
        self.n_nodes += len(ids)
        self.frames.append(np.full(len(ids), t, dtype=np.int64))
        self.objects.append(ids.astype(np.uint64))
        self.areas.append(areas.astype(np.int64))
        self.centroids.append(centroids)

    def division_edges(self, lineage: dict[int, int]) -> list[tuple[int, int]]:
        """Parent's last node -> child's first node, for every present child (the lineage is checked)."""
        return [(self.last_node[p], self.first_node[c]) for c, p in sorted(lineage.items()) if c in self.first_node]

    def lineage_ids(self, lineage: dict[int, int]) -> np.ndarray:
        """(N,) uint64: per node, the object id at the root of its object's lineage."""
        objects = np.concatenate(self.objects) if self.objects else np.empty(0, np.uint64)
        roots = {obj: _lineage_root(obj, lineage, self.runs) for obj in self.runs}
        return np.array([roots[obj] for obj in objects.tolist()], dtype=np.uint64)


def _lineage_root(obj: int, lineage: dict[int, int], runs: Runs) -> int:
    """Follow ``lineage`` from ``obj`` to its earliest present ancestor (each step goes back in time)."""
    while obj in lineage and lineage[obj] in runs:
        obj = lineage[obj]
    return obj


def _frame_objects(frame: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ids, areas, centroids)`` of the objects in ``frame``: sorted non-zero ids, pixel counts, and the
    (n, frame.ndim) mean pixel coordinates (axis order of ``frame``)."""
    flat = frame.reshape(-1)
    foreground = np.flatnonzero(flat)
    if foreground.size == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty((0, frame.ndim), np.float64)
    _check_non_negative(frame, t)
    ids, inverse = _unique_inverse(flat[foreground])
    areas = np.bincount(inverse, minlength=len(ids))
    coords = np.unravel_index(foreground, frame.shape)
    sums = [np.bincount(inverse, weights=c, minlength=len(ids)) for c in coords]
    return ids, areas, np.stack(sums, axis=1) / areas[:, None]


def _unique_inverse(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique ``values`` (non-negative ints) and each value's index into them; a lookup table when the
    largest value is not much above the number of values, else a sort."""
    high = int(values.max())
    if high > 4 * values.size + 65536:
        ids, inverse = np.unique(values, return_inverse=True)
        return ids, inverse.reshape(-1)
    present = np.zeros(high + 1, dtype=bool)
    present[values] = True
    ids = np.flatnonzero(present)
    lookup = np.zeros(high + 1, dtype=np.intp)
    lookup[ids] = np.arange(len(ids))
    return ids, lookup[values]


def _write_geff_group(tmp: Path, graph: _GraphBuilder, lineage: dict[int, int]) -> None:
    """The GEFF zarr (format 2) group of ``graph`` at ``tmp``."""
    space = _SPACE_AXES[-graph.n_space :]
    centroids = np.concatenate(graph.centroids) if graph.centroids else np.empty((0, graph.n_space))
    props: dict[str, tuple[np.ndarray, str]] = {
        "t": (_concat(graph.frames, np.int64), "frame index"),
        **{axis: (centroids[:, i], f"centroid {axis} (pixels)") for i, axis in enumerate(space)},
        "area": (_concat(graph.areas, np.int64), "number of pixels (voxels) of the object in the frame"),
        "label": (_concat(graph.objects, np.uint64), "object id (the value in the label image)"),
        "lineage_id": (graph.lineage_ids(lineage), "object id at the root of the object's lineage"),
    }
    edges = np.array(graph.edges + graph.division_edges(lineage), dtype=np.uint64).reshape(-1, 2)
    root = zarr.open_group(str(tmp), mode="w", **ZARR_V2)
    nodes = root.require_group("nodes")
    nodes["ids"] = np.arange(graph.n_nodes, dtype=np.uint64)
    node_props = nodes.require_group("props")
    for name, (values, _) in props.items():
        node_props.require_group(name)["values"] = values
    root.require_group("edges")["ids"] = edges
    root.attrs["geff"] = _geff_metadata(space, props)


def _concat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    """``parts`` joined into one 1-D array of ``dtype`` (empty when there are none)."""
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.empty(0, dtype)


def _geff_metadata(space: tuple[str, ...], props: dict[str, tuple[np.ndarray, str]]) -> dict:
    """The ``geff`` attribute: version, directed, axes (t, then space), property metadata, lineage property."""
    return {
        "geff_version": GEFF_VERSION,
        "directed": True,
        "axes": [{"name": "t", "type": "time"}] + [{"name": axis, "type": "space"} for axis in space],
        "node_props_metadata": {
            name: {"identifier": name, "dtype": values.dtype.name, "description": description}
            for name, (values, description) in props.items()
        },
        "edge_props_metadata": {},
        "track_node_props": {"lineage": "lineage_id"},
    }
