"""Connected components of masks, 8-connected (as SAM 2 and OpenCV count them), by ``scipy.ndimage.label``.

Used by the automatic mask generator (filling small holes and removing small specks of low-resolution
masks) and by automatic division detection (a mask that split into parts).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import ndimage

#: 8-connectivity: pixels touching by an edge or a corner belong to one component.
EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def label_components(mask: npt.ArrayLike) -> tuple[np.ndarray, int]:
    """(H, W) bool -> ((H, W) int32 labels 1..n in the row-major order of each component's first pixel,
    0 outside; n)."""
    labels, n = ndimage.label(np.asarray(mask, dtype=bool), structure=EIGHT_CONNECTED)
    return labels, int(n)


def component_areas(masks: npt.ArrayLike) -> np.ndarray:
    """(N, H, W) bool -> (N, H, W) int64: per True pixel, the pixel count of its component (0 where False)."""
    masks = np.asarray(masks, dtype=bool)
    out = np.zeros(masks.shape, dtype=np.int64)
    for i, mask in enumerate(masks):
        labels, n = label_components(mask)
        if n:
            areas = np.bincount(labels.ravel(), minlength=n + 1)
            areas[0] = 0
            out[i] = areas[labels]
    return out


def components(mask: npt.ArrayLike, min_area: int = 1) -> list[np.ndarray]:
    """The components of an (H, W) bool mask with at least ``min_area`` pixels, as (H, W) bool masks, in the
    row-major order of their first pixel."""
    labels, n = label_components(mask)
    if n == 0:
        return []
    areas = np.bincount(labels.ravel(), minlength=n + 1)
    return [labels == k for k in range(1, n + 1) if areas[k] >= min_area]
