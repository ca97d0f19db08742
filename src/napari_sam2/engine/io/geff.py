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
    check_lineage,
    check_stack,
    check_target,
    normalise_parents,
    read_frame,
    refuse_occupied,
)
from .track_graph import TrackGraph

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
    graph = TrackGraph(len(shape) - 1)
    for t in range(shape[0]):
        graph.add_frame(t, read_frame(labels, t, shape))
        counter.advance()
    check_lineage(graph.runs, lineage)
    with staged(path) as tmp:
        _write_geff_group(tmp, graph, lineage)
        refuse_occupied(path, overwrite)  # filled while we were writing
    return path


def _write_geff_group(tmp: Path, graph: TrackGraph, lineage: dict[int, int]) -> None:
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
