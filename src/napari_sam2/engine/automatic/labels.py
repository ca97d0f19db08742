"""Found objects as one label image: each pixel to one object (the object's seeds in a session)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .options import FoundObject


def objects_to_labels(objects: Sequence[FoundObject], hw: tuple[int, int],
                      min_area: int = 0) -> tuple[np.ndarray, list[int]]:
    """An (H, W) int64 label image of ``objects`` and the indices of the objects in it.

    Overlaps: objects are painted best first (higher predicted IoU, then higher stability, then the
    order given) and a pixel belongs to the first object that claims it; an object left with fewer than
    ``min_area`` pixels (or none) is dropped. Label k (1, 2, ...) is the k-th object kept in that order,
    so ``objects[kept[k - 1]]`` is label k.
    """
    order = sorted(range(len(objects)), key=lambda i: (-objects[i].score, -objects[i].stability, i))
    labels = np.zeros(hw, np.int64)
    kept: list[int] = []
    for i in order:
        free = objects[i].mask & (labels == 0)
        if free.any() and int(free.sum()) >= min_area:
            kept.append(i)
            labels[free] = len(kept)
    return labels, kept
