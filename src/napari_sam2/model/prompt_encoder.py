"""Prompt encoder: points, box corners and masks -> decoder inputs.

Coordinates here are in the model's input frame: (x, y) pixels of the
``image_size`` x ``image_size`` resized image. Point labels: 1 positive,
0 negative, 2 box top-left, 3 box bottom-right, -1 padding.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from .common import ChannelLayerNorm
from .position import RandomFourierEncoding

PAD_LABEL = -1


class PromptEncoder(nn.Module):
    """Embeds sparse (point) and dense (mask) prompts.

    Sparse output: (B, N, dim). Dense output: (B, dim, G, G) with G the side of
    the stride-16 grid; a mask prompt is (B, 1, 4G, 4G) logits.
    """

    def __init__(self, dim: int, grid: int, image_size: int, mask_chans: int) -> None:
        super().__init__()
        self.dim, self.grid, self.image_size = dim, grid, image_size
        self.pe_layer = RandomFourierEncoding(dim // 2)
        # labels 0, 1, 2, 3 in that order
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, dim) for _ in range(4))
        self.not_a_point_embed = nn.Embedding(1, dim)
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, mask_chans // 4, kernel_size=2, stride=2),
            ChannelLayerNorm(mask_chans // 4),
            nn.GELU(),
            nn.Conv2d(mask_chans // 4, mask_chans, kernel_size=2, stride=2),
            ChannelLayerNorm(mask_chans),
            nn.GELU(),
            nn.Conv2d(mask_chans, dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, dim)

    def dense_positions(self) -> torch.Tensor:
        """Position encoding of the image-embedding grid, (1, dim, G, G)."""
        return self.pe_layer.dense(self.grid, self.grid)[None]

    def embed_points(self, xy: torch.Tensor, labels: torch.Tensor, pad: bool = True) -> torch.Tensor:
        """(B, N, 2) (x, y) and (B, N) labels -> (B, N(+1), dim).

        With ``pad`` one padding point is appended, as SAM 2 always does
        (its boxes travel as labelled points, never as separate box inputs).
        """
        xy = xy + 0.5  # pixel centres
        if pad:
            b = xy.shape[0]
            xy = torch.cat([xy, xy.new_zeros(b, 1, 2)], dim=1)
            labels = torch.cat([labels, labels.new_full((b, 1), PAD_LABEL)], dim=1)
        emb = self.pe_layer.points(xy, (self.image_size, self.image_size))
        is_pad = (labels == PAD_LABEL)[..., None]
        emb = torch.where(is_pad, torch.zeros_like(emb) + self.not_a_point_embed.weight, emb)
        for value, table in enumerate(self.point_embeddings):
            emb = torch.where((labels == value)[..., None], emb + cast(nn.Embedding, table).weight, emb)
        return emb

    def forward(
        self,
        points: tuple[torch.Tensor, torch.Tensor] | None,
        masks: torch.Tensor | None,
        batch: int = 1,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (sparse (B, N, dim), dense (B, dim, G, G)) embeddings."""
        if points is not None:
            sparse = self.embed_points(*points, pad=True)
            batch = sparse.shape[0]
        else:
            weight = self.no_mask_embed.weight
            sparse = weight.new_empty(masks.shape[0] if masks is not None else batch, 0, self.dim)
        if masks is not None:
            dense = self.mask_downscaling(masks)
        else:
            dense = self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(
                sparse.shape[0], -1, self.grid, self.grid
            )
        return sparse, dense
