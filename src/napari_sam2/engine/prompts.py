"""Validated prompts in numpy/napari conventions: the one prompt type of napari-sam2.

:func:`make_prompts` checks raw input once and returns :class:`Prompts`; the
session, the prompt file and the widget's layers all use that type.

Points are (N, 2) (row, col) pixel positions (pixel centres at integers, as
in napari); labels 1 = positive, 0 = negative; a box is (row0, col0, row1,
col1) in any corner order; a mask prompt is an (H, W) array.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

from ..errors import LabelDtypeError, PromptError
from .coords.transforms import mask_to_lowres_logits, rc_to_model_xy
from .storage.labels import LABEL_DTYPES

#: The largest object id: the widest label image (uint32) holds it.
MAX_OBJ_ID = int(np.iinfo(LABEL_DTYPES[-1]).max)
#: How :func:`seed_ids` numbers objects made from a label image.
SEED_IDS = ("labels", "fresh", "merge")


class CroppedMask:
    """An (H, W) bool mask stored as its bounding box: what seeding hundreds of objects from a label
    image keeps per object (a 2048² frame would otherwise cost 4 MiB per object). Behaves as an
    (H, W) bool array wherever numpy converts it (``np.asarray(mask)``)."""

    __slots__ = ("shape", "offset", "crop")
    dtype = np.dtype(bool)
    ndim = 2

    def __init__(self, shape: tuple[int, int], offset: tuple[int, int], crop: np.ndarray) -> None:
        self.shape = (int(shape[0]), int(shape[1]))
        self.offset = (int(offset[0]), int(offset[1]))
        self.crop = np.ascontiguousarray(crop, dtype=bool)

    @classmethod
    def of(cls, mask: np.ndarray) -> CroppedMask:
        """The bounding-box form of an (H, W) bool mask (an empty mask keeps a 0 x 0 crop)."""
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        if rows.size == 0:
            return cls(mask.shape, (0, 0), np.zeros((0, 0), bool))
        r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        return cls(mask.shape, (r0, c0), mask[r0:r1, c0:c1])

    def __array__(self, dtype: npt.DTypeLike | None = None, copy: bool | None = None) -> np.ndarray:
        full = np.zeros(self.shape, bool)
        r0, c0 = self.offset
        full[r0:r0 + self.crop.shape[0], c0:c0 + self.crop.shape[1]] = self.crop
        return full if dtype is None else full.astype(dtype)


def label_prompts(labels: npt.ArrayLike, hw: tuple[int, int]) -> dict[int, Prompts]:
    """Every non-zero label of an (H, W) integer label image as a mask-only :class:`Prompts` (the mask kept
    as its bounding box), ``{label: Prompts}`` in ascending order; one pass over the image to find the boxes.
    Raises :class:`PromptError` for a wrong shape or dtype, negative labels or no labels at all."""
    labels = np.asarray(labels)
    if labels.shape != tuple(hw):
        raise PromptError(f"the label image has shape {labels.shape}; the frames are {tuple(hw)}.")
    if labels.dtype.kind not in "iub":
        raise LabelDtypeError(f"a label image must hold integer labels; got {labels.dtype}.")
    rows, cols = np.nonzero(labels)
    if rows.size == 0:
        raise PromptError("the label image has no labels (every pixel is 0).")
    values = labels[rows, cols]
    if values.min() < 0:
        raise PromptError("a label image cannot hold negative labels.")
    ids, which = np.unique(values, return_inverse=True)
    top, left = np.full(len(ids), hw[0]), np.full(len(ids), hw[1])
    bottom, right = np.zeros(len(ids), int), np.zeros(len(ids), int)
    np.minimum.at(top, which, rows)
    np.minimum.at(left, which, cols)
    np.maximum.at(bottom, which, rows + 1)
    np.maximum.at(right, which, cols + 1)
    out = {}
    for i, oid in enumerate(ids.tolist()):
        r0, c0, r1, c1 = int(top[i]), int(left[i]), int(bottom[i]), int(right[i])
        crop = CroppedMask(hw, (r0, c0), labels[r0:r1, c0:c1] == oid)
        out[int(oid)] = Prompts(np.zeros((0, 2), np.float32), np.zeros(0, np.int32), None, crop,
                                (int(hw[0]), int(hw[1])))
    return out


def seed_ids(labels: Iterable[int], taken: Collection[int], ids: str = "labels") -> dict[int, int]:
    """The object id of each label of a label image that becomes objects, ``{label: obj_id}`` in the order
    of ``labels``; ``taken``: the ids already in use (objects with prompts or results).

    ``ids``: ``"labels"``: each label value is its object id; a label that is already an object, or above
    :data:`MAX_OBJ_ID` (what a uint32 label image holds), raises :class:`PromptError` (nothing merges).
    ``"fresh"``: a label keeps its value where that id is free and fits; the others get new ids, counting
    up from the largest id in use. ``"merge"``: each label value is its id, and a label that is already an
    object becomes a correction of it (e.g. one tracked label image seeded on several frames).
    """
    if ids not in SEED_IDS:
        raise PromptError(f"ids must be one of {SEED_IDS}; got {ids!r}.")
    labels = [int(v) for v in labels]
    taken = {int(v) for v in taken}
    too_large = [v for v in labels if v > MAX_OBJ_ID]
    clash = [v for v in labels if v in taken]
    if ids != "fresh" and too_large:
        raise PromptError(f"label {too_large[0]} is too large for an object id (a label image holds ids up to "
                          f"{MAX_OBJ_ID}); pass ids='fresh' to give such labels new ids.")
    if ids == "labels" and clash:
        raise PromptError(f"label(s) {clash} are already objects; seeding them would merge each label into that "
                          f"object. Pass ids='fresh' to give them new ids (the mapping label -> object id is "
                          f"returned), or ids='merge' to make them corrections of those objects.")
    if ids != "fresh":
        return {v: v for v in labels}
    moved = set(too_large) | set(clash)
    out = {v: v for v in labels if v not in moved}
    top = max([*taken, *out.values()], default=0)
    for v in labels:
        if v in moved:
            top += 1
            out[v] = top
    if top > MAX_OBJ_ID:
        raise PromptError(f"{len(moved)} label(s) need new ids, but the ids in use reach {top - len(moved)}; "
                          f"a label image holds ids up to {MAX_OBJ_ID}. Remove objects or renumber the labels.")
    return {v: out[v] for v in labels}


@dataclass(frozen=True)
class Prompts:
    """The prompts of one object on one image/frame, checked by :func:`make_prompts` for frames of ``hw``."""

    points: np.ndarray  # (N, 2) float32 (row, col)
    labels: np.ndarray  # (N,) int32, 0 or 1
    box: np.ndarray | None  # (4,) float32 (row0, col0, row1, col1), row0 < row1, col0 < col1
    mask: np.ndarray | CroppedMask | None  # (H, W)
    hw: tuple[int, int] | None = None  # the (rows, cols) of the frame they were checked for

    def same_as(self, other: Prompts | None) -> bool:
        """Whether ``other`` holds the very same prompts (so sending it again would change nothing)."""
        if other is None:
            return False

        def same(a: np.ndarray | CroppedMask | None, b: np.ndarray | CroppedMask | None) -> bool:
            return a is b or (a is not None and b is not None and np.array_equal(a, b))

        return (np.array_equal(self.points, other.points) and np.array_equal(self.labels, other.labels)
                and same(self.box, other.box) and same(self.mask, other.mask))

    @property
    def n_clicks(self) -> int:
        """Number of prompt points with a box counted as two (SAM 2's multimask rule)."""
        return len(self.points) + (2 if self.box is not None else 0)

    def model_points(self, hw: tuple[int, int], size: int,
                     device: torch.device) -> tuple[torch.Tensor, torch.Tensor] | None:
        """((1, M, 2) (x, y) in the model frame, (1, M) labels) or None.

        Box corners come first as labels 2 and 3, then the clicks.
        """
        rc, lab = self.points, self.labels
        if self.box is not None:
            corners = self.box.reshape(2, 2)
            rc = np.concatenate([corners, rc])
            lab = np.concatenate([np.array([2, 3], np.int32), lab])
        if len(rc) == 0:
            return None
        xy = torch.from_numpy(rc_to_model_xy(rc, hw, size))[None].to(device)
        return xy, torch.from_numpy(lab.astype(np.int32))[None].to(device)

    def mask_logits(self, side: int, device: torch.device) -> torch.Tensor | None:
        """The mask prompt as (1, 1, side, side) logits, or None."""
        return None if self.mask is None else mask_to_lowres_logits(np.asarray(self.mask), side).to(device)


def make_prompts(
    hw: tuple[int, int],
    points: npt.ArrayLike | None = None,
    labels: npt.ArrayLike | None = None,
    box: npt.ArrayLike | None = None,
    mask: npt.ArrayLike | CroppedMask | None = None,
    allow_empty: bool = False,
) -> Prompts:
    """Check prompts for an image of shape ``hw`` and return :class:`Prompts`.

    Raises :class:`PromptError` with a message that says what to fix.
    """
    h, w = hw
    if points is None:
        if labels is not None and len(np.atleast_1d(labels)) > 0:
            raise PromptError("labels were given without points.")
        pts: np.ndarray = np.zeros((0, 2), np.float32)
        labs = np.zeros((0,), np.int32)
    else:
        pts = np.asarray(points, dtype=np.float64)
        if pts.size == 0:
            pts = pts.reshape(0, 2)
        if pts.ndim == 1 and pts.shape == (2,):
            pts = pts[None]
        if pts.ndim != 2 or pts.shape[1] != 2:
            raise PromptError(f"points must be an (N, 2) array of (row, col); got shape {pts.shape}.")
        if not np.isfinite(pts).all():
            raise PromptError("points contain NaN or infinite coordinates.")
        if labels is None:
            labs = np.ones(len(pts), np.int32)
        else:
            labs = np.atleast_1d(np.asarray(labels))
            if labs.shape != (len(pts),):
                raise PromptError(f"{len(pts)} points but {labs.size} labels: give one label (1 positive, "
                                  f"0 negative) per point.")
            if not np.isin(labs, (0, 1)).all():
                raise PromptError(f"labels must be 1 (positive) or 0 (negative); got {sorted(set(labs.tolist()))}.")
            labs = labs.astype(np.int32)
        outside = (pts[:, 0] < -0.5) | (pts[:, 0] > h - 0.5) | (pts[:, 1] < -0.5) | (pts[:, 1] > w - 0.5)
        if outside.any():
            i = int(np.flatnonzero(outside)[0])
            raise PromptError(f"point {i} at (row, col) = ({pts[i, 0]:g}, {pts[i, 1]:g}) is outside the "
                              f"{h} x {w} image; points are (row, col) pixel positions.")
        pts = pts.astype(np.float32)
    bx = None
    if box is not None:
        b = np.asarray(box, dtype=np.float64).reshape(-1)
        if b.shape != (4,):
            raise PromptError(f"box must be (row0, col0, row1, col1); got {b.size} values.")
        if not np.isfinite(b).all():
            raise PromptError("box contains NaN or infinite coordinates.")
        r0, r1 = sorted((b[0], b[2]))
        c0, c1 = sorted((b[1], b[3]))
        if r1 <= r0 or c1 <= c0:
            raise PromptError(f"box {tuple(float(v) for v in b)} has zero area; draw a rectangle around "
                              f"the object.")
        if min(r1, h - 0.5) <= max(r0, -0.5) or min(c1, w - 0.5) <= max(c0, -0.5):
            raise PromptError(f"box {tuple(float(v) for v in b)} lies outside the {h} x {w} image; boxes "
                              f"are (row0, col0, row1, col1) pixel positions.")
        bx = np.array([r0, c0, r1, c1], np.float32)
    mk: np.ndarray | CroppedMask | None = None
    if isinstance(mask, CroppedMask):
        if mask.shape != (h, w):
            raise PromptError(f"mask prompt must have the image's shape {(h, w)}; got {mask.shape}.")
        mk = mask
    elif mask is not None:
        mk = arr = np.asarray(mask)
        if arr.shape != (h, w):
            raise PromptError(f"mask prompt must have the image's shape {(h, w)}; got {arr.shape}.")
        if arr.dtype != bool and not np.isfinite(arr).all():
            raise PromptError("mask prompt contains NaN or infinite values.")
    if not allow_empty and len(pts) == 0 and bx is None and mk is None:
        raise PromptError("No prompt given: pass points (with labels), a box or a mask.")
    return Prompts(pts, labs, bx, mk, (int(h), int(w)))
