"""Resizing to the model frame and back, and prompt coordinate mapping.

SAM 2 squashes every image to ``S`` x ``S`` (1024) without keeping the aspect
ratio, so rows and columns scale independently.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from ...model.tracker import MASK_LOGIT

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def image_to_tensor(rgb01: np.ndarray, size: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(H, W, 3) float RGB in [0, 1] -> normalised (1, 3, size, size) tensor.

    Bilinear, antialiased resize on the float image, then ImageNet
    normalisation: the order and filter of Meta's image predictor.
    """
    x = torch.from_numpy(np.ascontiguousarray(rgb01, dtype=np.float32)).permute(2, 0, 1)[None].to(device)
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return normalize(x, dtype)


def normalize(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, 3, S, S) RGB in [0, 1] -> ImageNet-normalised tensor of ``dtype``."""
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return ((x - mean) / std).to(dtype)


def rc_to_model_xy(rc: np.ndarray, hw: tuple[int, int], size: int) -> np.ndarray:
    """(N, 2) (row, col) pixel positions of an (H, W) image -> (N, 2) (x, y) in the model frame."""
    rc = np.asarray(rc, dtype=np.float32).reshape(-1, 2)
    scale = np.array([size / hw[1], size / hw[0]], dtype=np.float32)
    return rc[:, ::-1] * scale


def mask_to_lowres_logits(mask: np.ndarray, side: int) -> torch.Tensor:
    """An (H, W) mask prompt -> (1, 1, side, side) logits for the prompt encoder.

    Boolean or 0/1 masks become logits of +10 inside and -10 outside; any
    other float array is taken as logits already (e.g. ``result.logits[0]``
    of an earlier prediction). Then an antialiased bilinear resize.
    """
    m = np.asarray(mask)
    if m.dtype == bool or (np.issubdtype(m.dtype, np.number) and np.isin(m, (0, 1)).all()):
        logits = np.where(m.astype(bool), MASK_LOGIT, -MASK_LOGIT).astype(np.float32)
    else:
        logits = m.astype(np.float32)
    t = torch.from_numpy(logits)[None, None]
    return F.interpolate(t, size=(side, side), mode="bilinear", align_corners=False, antialias=True)


def upscale_logits(lowres: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """(B, K, h, w) low-res logits -> (B, K, H, W) float32, one bilinear resize."""
    return F.interpolate(lowres.float(), size=hw, mode="bilinear", align_corners=False)
