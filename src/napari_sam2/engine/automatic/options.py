"""The settings of an automatic object search (:class:`FindOptions`) and what it finds (:class:`FoundObject`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...errors import PromptError


@dataclass(frozen=True)
class FindOptions:
    """How :func:`~napari_sam2.engine.automatic.find_objects` searches an image: the settings and defaults
    of Meta's ``SAM2AutomaticMaskGenerator`` (sam2 1.1.0), under the same names.

    Attributes:
        points_per_side: a grid of ``points_per_side`` x ``points_per_side`` clicks over the image
            (or over each crop); ``None`` to use ``point_grids`` instead.
        point_grids: one (N, 2) array per crop layer of (row, col) click positions in [0, 1] (fractions of
            the crop's height and width); only when ``points_per_side`` is None.
        points_per_batch: clicks decoded together (memory against speed; results do not depend on it).
        pred_iou_thresh: keep masks whose predicted IoU is above this (0 keeps all).
        stability_score_thresh: keep masks whose stability score is at least this (0 keeps all).
        stability_score_offset: the logit shift of the stability score (IoU of the masks at
            ``mask_threshold`` +- this offset).
        mask_threshold: logit above which a pixel is in a mask.
        box_nms_thresh: box IoU above which the lower-scored of two masks of one crop is dropped.
        crop_n_layers: also search crops of the image: layer i has (2**i)**2 overlapping crops.
        crop_nms_thresh: box IoU above which duplicates between crops are dropped (the smaller crop wins).
        crop_overlap_ratio: overlap of neighbouring crops of the first layer, as a fraction of the shorter side.
        crop_n_points_downscale_factor: crop layer i uses ``points_per_side / factor**i`` points per side.
        min_mask_region_area: if > 0, holes and specks up to this many pixels of the model's low-resolution
            mask (4G x 4G, e.g. 256 x 256) are filled / removed before the masks are scaled to the image.
        use_m2m: refine every mask once more with its own low-resolution logits as the mask prompt.
        multimask_output: three candidate masks per click (else SAM 2's single mask with its fallback).
    """

    points_per_side: int | None = 32
    point_grids: tuple[np.ndarray, ...] | None = field(default=None, compare=False)
    points_per_batch: int = 64
    pred_iou_thresh: float = 0.8
    stability_score_thresh: float = 0.95
    stability_score_offset: float = 1.0
    mask_threshold: float = 0.0
    box_nms_thresh: float = 0.7
    crop_n_layers: int = 0
    crop_nms_thresh: float = 0.7
    crop_overlap_ratio: float = 512 / 1500
    crop_n_points_downscale_factor: int = 1
    min_mask_region_area: int = 0
    use_m2m: bool = False
    multimask_output: bool = True

    def __post_init__(self) -> None:
        def whole(name: str, low: int) -> None:
            value = getattr(self, name)
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < low:
                raise PromptError(f"{name} must be an integer >= {low}; got {value!r}.")
            object.__setattr__(self, name, int(value))

        def real(name: str, low: float, high: float) -> None:
            value = getattr(self, name)
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = float("nan")
            if isinstance(value, (bool, np.bool_)) or not low <= number <= high:
                raise PromptError(f"{name} must be a number in [{low}, {high}]; got {value!r}.")
            object.__setattr__(self, name, number)

        if (self.points_per_side is None) == (self.point_grids is None):
            raise PromptError("Give exactly one of points_per_side (a regular grid of clicks) and point_grids "
                              "(your own click positions, one (N, 2) array per crop layer).")
        for name in ("points_per_batch", "crop_n_points_downscale_factor"):
            whole(name, 1)
        for name in ("crop_n_layers", "min_mask_region_area"):
            whole(name, 0)
        for name in ("pred_iou_thresh", "stability_score_thresh", "box_nms_thresh", "crop_nms_thresh"):
            real(name, 0.0, 1.0)
        real("crop_overlap_ratio", 0.0, 0.99)
        real("stability_score_offset", 0.0, float("inf"))
        real("mask_threshold", -float("inf"), float("inf"))
        for name in ("use_m2m", "multimask_output"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise PromptError(f"{name} must be True or False; got {getattr(self, name)!r}.")
        if self.points_per_side is not None:
            whole("points_per_side", 1)
            smallest = self.points_per_side // self.crop_n_points_downscale_factor ** self.crop_n_layers
            if smallest < 1:
                raise PromptError(f"crop layer {self.crop_n_layers} would get no clicks ({self.points_per_side} "
                                  f"points per side / {self.crop_n_points_downscale_factor}**{self.crop_n_layers}); "
                                  f"use more points_per_side, fewer crop_n_layers or a smaller downscale factor.")
        else:
            grids = tuple(np.asarray(g, dtype=np.float64) for g in self.point_grids or ())
            if len(grids) < self.crop_n_layers + 1:
                raise PromptError(f"point_grids has {len(grids)} grid(s); crop_n_layers={self.crop_n_layers} needs "
                                  f"one per layer ({self.crop_n_layers + 1}).")
            for i, g in enumerate(grids):
                if g.ndim != 2 or g.shape[1] != 2 or len(g) == 0 or not np.all((g >= 0) & (g <= 1)):
                    raise PromptError(f"point_grids[{i}] must be a non-empty (N, 2) array of (row, col) fractions "
                                      f"in [0, 1]; got shape {g.shape}.")
            object.__setattr__(self, "point_grids", grids)

    def replace(self, **changes: Any) -> FindOptions:
        """A copy with ``changes`` (option names as above); an unknown name raises :class:`PromptError`."""
        names = [f.name for f in dataclasses.fields(self)]
        unknown = sorted(set(changes) - set(names))
        if unknown:
            raise PromptError(f"unknown option(s) {unknown} for finding objects; the options are {names}.")
        if "point_grids" in changes and changes["point_grids"] is not None and "points_per_side" not in changes:
            changes["points_per_side"] = None
        return dataclasses.replace(self, **changes)


def resolve_options(options: FindOptions | None, changes: dict[str, Any]) -> FindOptions:
    """``options`` (default: :class:`FindOptions`'s defaults) with ``changes`` applied."""
    if options is not None and not isinstance(options, FindOptions):
        raise PromptError(f"options must be a FindOptions; got {type(options).__name__}.")
    base = options or FindOptions()
    return base.replace(**changes) if changes else base


@dataclass
class FoundObject:
    """One object found on an image.

    ``mask`` (H, W) bool in the image's (row, col) frame; ``score`` the model's predicted IoU;
    ``stability`` the stability score; ``bbox`` (row0, col0, row1, col1) with row1 / col1 one past the
    last row / column of the mask; ``area`` pixels in ``mask``; ``point`` the (row, col) click that gave
    it; ``crop`` (row0, col0, row1, col1) the part of the image the model saw for it (row1, col1 exclusive).
    """

    mask: np.ndarray
    score: float
    stability: float
    bbox: tuple[int, int, int, int]
    area: int
    point: tuple[float, float]
    crop: tuple[int, int, int, int]
