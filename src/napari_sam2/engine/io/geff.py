"""Export a tracked label stack as a GEFF graph.

:func:`write_geff` writes a (T, row, col) or (T, Z, row, col) label stack and its ``{child: parent}`` lineage
(the same input as :func:`~.ctc.write_ctc`) as a graph in the GEFF format (graph exchange file format, spec 1.1:
a zarr v2 group with ``nodes/ids``, ``nodes/props/<name>/values``, ``edges/ids`` and the metadata
under the ``geff`` attribute). It is written with zarr alone -- the ``geff`` package is not needed to write, the
tests check the output with geff's own validator and reader. One node per object and frame, with the node
properties ``t``, (``z``,) ``y``, ``x`` (centroid, pixels), ``area`` (pixel/voxel count), ``label`` (object id)
and ``lineage_id`` (the object id at the root of the object's lineage, declared as geff's lineage property).
Edges join each object's successive appearances (across a gap too: no relabelling is needed in a graph) and a
parent's last node to each child's first node.

The stack is read once, one frame at a time (``labels[t]``); the checks and the frame-by-frame reading are
shared with the CTC export in :mod:`.label_scan`. Like the CTC export, the graph goes to a hidden sibling
folder renamed to ``path`` only once complete.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from ..storage.zarr_format import ZARR_V2
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

#: GEFF spec version :func:`write_geff` writes (checked against geff-spec 1.1 in the tests).
GEFF_VERSION = "1.1"

_SPACE_AXES = ("z", "y", "x")


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
        parents: ``{child object id: parent object id}``, with the same rules as in :func:`~.ctc.write_ctc`.
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
            fit the labels (as in :func:`~.ctc.write_ctc`). Nothing is written then; any error while writing
            removes the temporary folder and is re-raised.
    """
    path = Path(path)
    shape = check_stack(labels)
    check_target(path, overwrite)
    lineage = normalise_parents(parents)
    counter = Counter(progress, shape[0])
    graph = _GraphBuilder(len(shape) - 1)
    for t in range(shape[0]):
        graph.add_frame(t, read_frame(labels, t, shape))
        counter.advance()
    check_lineage(graph.runs, lineage)
    with staged(path) as tmp:
        _write_geff_group(tmp, graph, lineage)
        refuse_occupied(path, overwrite)  # filled while we were writing
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
        record_presence(self.runs, ids, t)
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
    check_non_negative(frame, t)
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
