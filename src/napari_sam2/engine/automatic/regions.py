"""Filling small holes and removing small specks of low-resolution masks (``min_mask_region_area``)."""

from __future__ import annotations

import torch
from torch.nn import functional as F

#: The logits given to a filled hole / a removed speck (the threshold is 0).
FILL_LOGIT = 10.0


def component_areas(pixels: torch.Tensor) -> torch.Tensor:
    """(N, h, w) bool -> (N, h, w) int64: the area of the 8-connected component each True pixel belongs to
    (0 where False). Exact: labels spread by 3 x 3 maxima and pointer jumping until nothing changes."""
    n, h, w = pixels.shape
    # float64 labels: max_pool2d has no integer kernel; exact for any h * w below 2**53
    index = torch.arange(1, h * w + 1, device=pixels.device, dtype=torch.float64).view(1, h, w)
    labels = torch.where(pixels, index, 0.0)
    while True:
        spread = F.max_pool2d(labels[:, None], 3, stride=1, padding=1)[:, 0]
        spread = torch.where(pixels, spread, 0.0)
        flat = spread.view(n, -1)
        for _ in range(4):  # jump: take the label of the pixel a label points to
            target = (flat.long() - 1).clamp(min=0)
            flat = torch.where(flat > 0, torch.gather(flat, 1, target), 0.0)
        spread = flat.view(n, h, w)
        if torch.equal(spread, labels):
            break
        labels = spread
    ids = labels.long().view(n, -1)
    offsets = torch.arange(n, device=pixels.device).view(n, 1) * (h * w + 1)
    counts = torch.bincount((ids + offsets).view(-1), minlength=n * (h * w + 1)).view(n, -1)
    areas = torch.gather(counts, 1, ids).view(n, h, w)
    return torch.where(pixels, areas, 0)


def fill_small_regions(lowres: torch.Tensor, max_area: int) -> torch.Tensor:
    """(N, K, h, w) logits with every background component (logit <= 0) of at most ``max_area`` pixels set
    to +:data:`FILL_LOGIT` and every foreground component (> 0) that small to -:data:`FILL_LOGIT`
    (8-connectivity; both found on the input, as SAM 2's image predictor does)."""
    if max_area <= 0 or lowres.numel() == 0:
        return lowres
    flat = lowres.float().flatten(0, 1)
    inside = flat > 0
    holes = component_areas(~inside)
    specks = component_areas(inside)
    out = torch.where((holes > 0) & (holes <= max_area), FILL_LOGIT, flat)
    out = torch.where((specks > 0) & (specks <= max_area), -FILL_LOGIT, out)
    return out.view(lowres.shape)
