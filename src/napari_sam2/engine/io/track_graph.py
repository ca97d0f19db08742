"""The tracking graph of a label stack, built one frame at a time: one node per object and frame, edges along
each object (across gaps) and from a parent's last node to each daughter's first. Shared by the GEFF and
TrackMate exports (:mod:`.geff`, :mod:`.trackmate`).
"""

from __future__ import annotations

import numpy as np

from .label_scan import Runs, check_non_negative, record_presence


class TrackGraph:
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
        ids, areas, centroids = frame_objects(frame, t)
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
        roots = {obj: lineage_root(obj, lineage, self.runs) for obj in self.runs}
        return np.array([roots[obj] for obj in objects.tolist()], dtype=np.uint64)


def lineage_root(obj: int, lineage: dict[int, int], runs: Runs) -> int:
    """Follow ``lineage`` from ``obj`` to its earliest present ancestor (each step goes back in time)."""
    while obj in lineage and lineage[obj] in runs:
        obj = lineage[obj]
    return obj


def frame_objects(frame: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ids, areas, centroids)`` of the objects in ``frame``: sorted non-zero ids, pixel counts, and the
    (n, frame.ndim) mean pixel coordinates (axis order of ``frame``)."""
    flat = frame.reshape(-1)
    foreground = np.flatnonzero(flat)
    if foreground.size == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty((0, frame.ndim), np.float64)
    check_non_negative(frame, t)
    ids, inverse = unique_inverse(flat[foreground])
    areas = np.bincount(inverse, minlength=len(ids))
    coords = np.unravel_index(foreground, frame.shape)
    sums = [np.bincount(inverse, weights=c, minlength=len(ids)) for c in coords]
    return ids, areas, np.stack(sums, axis=1) / areas[:, None]


def unique_inverse(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
