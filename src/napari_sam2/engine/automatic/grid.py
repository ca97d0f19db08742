"""Where the automatic search clicks: point grids and the crops of the image (as Meta's generator lays them)."""

from __future__ import annotations

import math

import numpy as np

from .options import FindOptions

#: A crop (row0, col0, row1, col1) of the searched image, row1 / col1 exclusive.
Crop = tuple[int, int, int, int]


def regular_grid(per_side: int) -> np.ndarray:
    """(per_side**2, 2) (row, col) fractions in (0, 1): the centres of a per_side x per_side tiling,
    row by row (the column varies fastest)."""
    centres = np.linspace(0.5 / per_side, 1 - 0.5 / per_side, per_side)
    rows, cols = np.meshgrid(centres, centres, indexing="ij")
    return np.stack([rows.ravel(), cols.ravel()], axis=-1)


def layer_grids(options: FindOptions) -> list[np.ndarray]:
    """One (N, 2) (row, col) fraction grid per crop layer (0 = the whole image)."""
    if options.point_grids is not None:
        return [np.asarray(g, np.float64) for g in options.point_grids]
    assert options.points_per_side is not None
    factor = options.crop_n_points_downscale_factor
    return [regular_grid(int(options.points_per_side / factor**i)) for i in range(options.crop_n_layers + 1)]


def crop_layout(hw: tuple[int, int], n_layers: int, overlap_ratio: float) -> list[tuple[Crop, int]]:
    """The crops of an (H, W) image with their layer: the whole image (layer 0), then for layer i >= 1 a
    2**i x 2**i set of overlapping crops, column-major (all crops of the first column of crops first)."""
    h, w = hw
    out: list[tuple[Crop, int]] = [((0, 0, h, w), 0)]
    for layer in range(1, n_layers + 1):
        n = 2**layer
        overlap = int(overlap_ratio * min(h, w) * 2 / n)
        side_h = math.ceil((overlap * (n - 1) + h) / n)
        side_w = math.ceil((overlap * (n - 1) + w) / n)
        starts_r = [int((side_h - overlap) * i) for i in range(n)]
        starts_c = [int((side_w - overlap) * i) for i in range(n)]
        for c0 in starts_c:
            for r0 in starts_r:
                out.append(((r0, c0, min(r0 + side_h, h), min(c0 + side_w, w)), layer))
    return out


def grid_pixels(grid: np.ndarray, crop: Crop) -> np.ndarray:
    """(N, 2) float32 (row, col) pixel positions in ``crop`` of a fraction grid."""
    size = np.array([crop[2] - crop[0], crop[3] - crop[1]], np.float64)
    return (grid * size).astype(np.float32)
