"""Filling small holes and removing small specks of low-resolution masks (``min_mask_region_area``)."""

from __future__ import annotations

import torch

from ..components import component_areas

#: The logits given to a filled hole / a removed speck (the threshold is 0).
FILL_LOGIT = 10.0


def fill_small_regions(lowres: torch.Tensor, max_area: int) -> torch.Tensor:
    """(N, K, h, w) logits with every background component (logit <= 0) of at most ``max_area`` pixels set
    to +:data:`FILL_LOGIT` and every foreground component (> 0) that small to -:data:`FILL_LOGIT`
    (8-connectivity; both found on the input, as SAM 2's image predictor does)."""
    if max_area <= 0 or lowres.numel() == 0:
        return lowres
    flat = lowres.float().flatten(0, 1)
    inside = flat > 0
    pixels = inside.cpu().numpy()
    holes = torch.from_numpy(component_areas(~pixels)).to(flat.device)
    specks = torch.from_numpy(component_areas(pixels)).to(flat.device)
    out = torch.where((holes > 0) & (holes <= max_area), FILL_LOGIT, flat)
    out = torch.where((specks > 0) & (specks <= max_area), -FILL_LOGIT, out)
    return out.view(lowres.shape)
