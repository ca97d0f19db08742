"""Mask decoder: prompt + image embeddings -> mask logits, IoU, object score.

Output tokens are, in order: object-score token, IoU token, 4 mask tokens
(token 0 = single-mask output, 1-3 = the three multimask outputs).
Masks come out at 4x the embedding grid (256x256 for 1024-pixel inputs).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .common import ChannelLayerNorm, FeedForward
from .transformer import TwoWayTransformer

NUM_MASK_TOKENS = 4


@dataclass
class DecoderOutput:
    """Raw decoder output for B prompts.

    ``masks`` (B, 4, 4G, 4G) low-res logits of all four mask tokens,
    ``iou`` (B, 4) predicted IoU (sigmoid), ``mask_tokens`` (B, 4, C) the
    mask tokens after the transformer, ``object_score`` (B, 1) logit that
    the object is present.
    """

    masks: torch.Tensor
    iou: torch.Tensor
    mask_tokens: torch.Tensor
    object_score: torch.Tensor


class MaskDecoder(nn.Module):
    """SAM 2's mask decoder, with high-resolution skip features."""

    def __init__(self, dim: int, depth: int, heads: int, mlp_dim: int) -> None:
        super().__init__()
        self.transformer = TwoWayTransformer(depth, dim, heads, mlp_dim)
        self.iou_token = nn.Embedding(1, dim)
        self.mask_tokens = nn.Embedding(NUM_MASK_TOKENS, dim)
        self.obj_score_token = nn.Embedding(1, dim)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(dim, dim // 4, kernel_size=2, stride=2),
            ChannelLayerNorm(dim // 4),
            nn.GELU(),
            nn.ConvTranspose2d(dim // 4, dim // 8, kernel_size=2, stride=2),
            nn.GELU(),
        )
        # applied once per image to the stride-4 and stride-8 features
        self.conv_s0 = nn.Conv2d(dim, dim // 8, kernel_size=1)
        self.conv_s1 = nn.Conv2d(dim, dim // 4, kernel_size=1)
        self.output_hypernetworks_mlps = nn.ModuleList(
            FeedForward(dim, dim, dim // 8, 3) for _ in range(NUM_MASK_TOKENS)
        )
        self.iou_prediction_head = FeedForward(dim, 256, NUM_MASK_TOKENS, 3, sigmoid_output=True)
        self.pred_obj_score_head = FeedForward(dim, dim, 1, 3)

    def forward(
        self,
        image_embed: torch.Tensor,
        image_pe: torch.Tensor,
        sparse: torch.Tensor,
        dense: torch.Tensor,
        high_res: tuple[torch.Tensor, torch.Tensor],
    ) -> DecoderOutput:
        """Decode B prompts against one image embedding each.

        ``image_embed`` (B, C, G, G), ``image_pe`` (1, C, G, G), ``sparse``
        (B, N, C), ``dense`` (B, C, G, G), ``high_res`` the already projected
        stride-4 (B, C/8, 4G, 4G) and stride-8 (B, C/4, 2G, 2G) features.
        """
        b = sparse.shape[0]
        out_tokens = torch.cat([self.obj_score_token.weight, self.iou_token.weight, self.mask_tokens.weight])
        tokens = torch.cat([out_tokens[None].expand(b, -1, -1), sparse], dim=1)
        src = image_embed + dense
        pos = image_pe.expand(b, -1, -1, -1)
        _, c, h, w = src.shape

        hs, src = self.transformer(src, pos, tokens)
        mask_tokens = hs[:, 2 : 2 + NUM_MASK_TOKENS]

        src = src.transpose(1, 2).reshape(b, c, h, w)
        up1, norm, act1, up2, act2 = self.output_upscaling
        feat_s0, feat_s1 = high_res
        x = act1(norm(up1(src) + feat_s1))
        x = act2(up2(x) + feat_s0)

        hyper = torch.stack(
            [mlp(mask_tokens[:, i]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1
        )
        _, cu, hu, wu = x.shape
        masks = (hyper @ x.view(b, cu, hu * wu)).view(b, -1, hu, wu)
        return DecoderOutput(
            masks=masks,
            iou=self.iou_prediction_head(hs[:, 1]),
            mask_tokens=mask_tokens,
            object_score=self.pred_obj_score_head(hs[:, 0]),
        )


def stability_score(logits: torch.Tensor, delta: float) -> torch.Tensor:
    """IoU of the masks thresholded at +delta and -delta; (..., H, W) -> (...)."""
    flat = logits.flatten(-2)
    inner = (flat > delta).sum(-1).float()
    outer = (flat > -delta).sum(-1).float()
    return torch.where(outer > 0, inner / outer, torch.ones_like(outer))


def select_masks(
    out: DecoderOutput, multimask: bool, delta: float, thresh: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Choose the masks a caller sees: (B, K, h, w) logits and (B, K) IoU.

    ``multimask``: the three multimask outputs (K = 3). Otherwise the
    single-mask output (K = 1), unless its stability score is below
    ``thresh``, in which case the multimask output with the best predicted
    IoU replaces it (SAM 2's dynamic fallback).
    """
    if multimask:
        return out.masks[:, 1:], out.iou[:, 1:]
    multi_iou = out.iou[:, 1:]
    best = multi_iou.argmax(dim=-1)
    rows = torch.arange(best.shape[0], device=best.device)
    best_masks = out.masks[:, 1:][rows, best][:, None]
    best_iou = multi_iou[rows, best][:, None]
    single, single_iou = out.masks[:, :1], out.iou[:, :1]
    stable = stability_score(single, delta) >= thresh  # (B, 1)
    masks = torch.where(stable[..., None, None], single, best_masks)
    return masks, torch.where(stable, single_iou, best_iou)
