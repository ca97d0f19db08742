"""Tracking in a region of the frames (``open_stack(..., roi=...)``): the region's checks, prompts into it,
results back.

The model sees only the region (row0, col0, row1, col1), scaled to its full
resolution; the caller works in full-frame coordinates.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ...errors import ImageDataError, PromptError
from ...model.tracker import NO_OBJECT_LOGIT
from ..prompts import Prompts, make_prompts

#: Logit given to pixels outside the region: the model's "no object" logit, far below any mask's.
OUTSIDE_LOGIT = NO_OBJECT_LOGIT


def check_roi(roi: Sequence[int], frame_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """A region (row0, col0, row1, col1) as integers inside an (H, W) frame, with at least 8 x 8 pixels."""
    try:
        r0, c0, r1, c1 = (int(round(float(v))) for v in roi)
    except (TypeError, ValueError):
        raise ImageDataError(f"roi must be (row0, col0, row1, col1); got {roi!r}.") from None
    h, w = frame_hw
    r0, r1 = sorted((r0, r1))
    c0, c1 = sorted((c0, c1))
    r0, c0, r1, c1 = max(r0, 0), max(c0, 0), min(r1, h), min(c1, w)
    if r1 - r0 < 8 or c1 - c0 < 8:
        raise ImageDataError(f"The region {tuple(roi)} leaves {max(r1 - r0, 0)} x {max(c1 - c0, 0)} pixels of the "
                             f"{h} x {w} frame; draw a region of at least 8 x 8 pixels inside the frame.")
    return r0, c0, r1, c1


def prompts_in_region(prompts: Prompts, roi: tuple[int, int, int, int]) -> Prompts:
    """Full-frame ``prompts`` in the coordinates of ``roi``: points and boxes shifted (boxes clipped to it),
    a mask cropped. Raises :class:`PromptError` for points or boxes outside the region."""
    r0, c0, r1, c1 = roi
    pts = prompts.points - np.array([r0, c0], np.float32) if len(prompts.points) else None
    box = None
    if prompts.box is not None:
        high = np.array([r1 - r0, c1 - c0, r1 - r0, c1 - c0], np.float32) - 0.5
        box = np.clip(prompts.box - np.array([r0, c0, r0, c0], np.float32), -0.5, high)
    mask = None if prompts.mask is None else np.asarray(prompts.mask)[r0:r1, c0:c1]
    try:
        return make_prompts((r1 - r0, c1 - c0), pts, prompts.labels if pts is not None else None, box, mask,
                            allow_empty=True)
    except PromptError as exc:
        raise PromptError(f"{exc} (The session tracks in the region (row0, col0, row1, col1) = {tuple(roi)}; "
                          f"prompts must lie inside it.)") from None


def place_in_frame(logits: np.ndarray, roi: tuple[int, int, int, int], frame_hw: tuple[int, int]) -> np.ndarray:
    """(H, W) float32 logits of the frame from the region's logits (:data:`OUTSIDE_LOGIT` outside)."""
    r0, c0, r1, c1 = roi
    full = np.full(frame_hw, OUTSIDE_LOGIT, np.float32)
    full[r0:r1, c0:c1] = logits
    return full
