"""Greedy box non-maximum suppression, exact to torchvision's ``batched_nms`` for one category."""

from __future__ import annotations

import numpy as np
import torch


def box_nms(boxes: np.ndarray, scores: np.ndarray, iou_thresh: float) -> np.ndarray:
    """The indices of the boxes kept, best score first.

    Args:
        boxes: (N, 4) (row0, col0, row1, col1); the area is (row1 - row0) * (col1 - col0), so a box of
            inclusive pixel bounds (as the search uses) counts its last row and column as having no width.
        scores: (N,) float32; equal scores keep their input order.
        iou_thresh: a box whose IoU with a kept, better box is above this is dropped.

    Returns:
        (K,) int64 indices into ``boxes``, in descending score (ties: lower index first).

    All arithmetic is float32 in torchvision's order (inter / (area_a + area_b - inter)), so the same
    boxes are kept, including at exact ties of scores or IoUs.
    """
    n = len(scores)
    if n == 0:
        return np.zeros(0, np.int64)
    order = torch.sort(torch.as_tensor(np.asarray(scores, np.float32)), stable=True, descending=True).indices.numpy()
    b = np.asarray(boxes, np.float32)[order]
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    alive = np.ones(n, bool)
    keep = []
    zero = np.float32(0)
    for i in range(n):
        if not alive[i]:
            continue
        keep.append(order[i])
        rest = np.arange(i + 1, n)[alive[i + 1:]]
        if rest.size == 0:
            break
        high = np.minimum(b[i, 2:], b[rest, 2:])
        low = np.maximum(b[i, :2], b[rest, :2])
        ext = np.maximum(zero, high - low)
        inter = ext[:, 0] * ext[:, 1]
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = inter / (area[i] + area[rest] - inter)
        alive[rest[iou.astype(np.float64) > float(iou_thresh)]] = False  # float vs double, as torchvision
    return np.asarray(keep, np.int64)
