"""Prompted segmentation of a single image."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..model.mask_decoder import select_masks
from ..model.sam2 import ImageEmbedding, Sam2Model
from .coords.transforms import upscale_logits
from .prompts import Prompts


@dataclass
class ImagePrediction:
    """Masks for one prompt set on one (H, W) image.

    ``masks`` (K, H, W) bool, ``scores`` (K,) predicted IoU, ``logits``
    (K, H, W) float32 at the image's resolution (mask = logits > 0),
    ``lowres_logits`` (K, 4G, 4G) the decoder's own output, ``object_score``
    the logit that the object is present. K = 3 with multimask, else 1.
    """

    masks: np.ndarray
    scores: np.ndarray
    logits: np.ndarray
    lowres_logits: np.ndarray
    object_score: float


@torch.inference_mode()
def predict_from_embedding(
    net: Sam2Model, emb: ImageEmbedding, hw: tuple[int, int], prompts: Prompts, multimask: bool
) -> ImagePrediction:
    """Decode ``prompts`` against one image embedding, as Meta's image predictor does."""
    cfg = net.cfg
    pts = prompts.model_points(hw, cfg.image_size, net.device)
    mask = prompts.mask_logits(4 * cfg.feat_size, net.device)
    if mask is not None:
        mask = mask.to(net.dtype)
    out = net.decode(net.image_embed_without_memory(emb), emb.high_res, pts, mask)
    lowres, scores = select_masks(out, multimask, cfg.stability_delta, cfg.stability_thresh)
    logits = upscale_logits(lowres, hw)[0].cpu().numpy()
    return ImagePrediction(
        masks=logits > 0,
        scores=scores[0].float().cpu().numpy(),
        logits=logits,
        lowres_logits=lowres[0].float().cpu().numpy(),
        object_score=float(out.object_score[0, 0]),
    )
