"""Image encoder: Hiera trunk (SAM 2) or RepViT trunk (EdgeTAM) + feature-pyramid neck.

Produces the three feature levels SAM 2 uses, all with ``d_model`` channels:
strides 4 and 8 ("high-resolution" features for the mask decoder) and
stride 16 (the image embedding). The stride-32 level is computed by the neck
and then dropped, as in the released models.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .config import Sam2Config
from .hiera import Hiera
from .position import SineGridEncoding
from .repvit import RepViT


@dataclass
class ImageFeatures:
    """Backbone output for a batch of B images.

    ``levels`` are (B, C, H_i, W_i) maps at strides 4, 8, 16 (finest first);
    ``positions`` are their sine position encodings, same shapes.
    """

    levels: list[torch.Tensor]
    positions: list[torch.Tensor]


class _Lateral(nn.Module):
    """1x1 convolution stored as ``<i>.conv`` like the checkpoints."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class FpnNeck(nn.Module):
    """Lateral 1x1 projections with a top-down path into the coarse levels.

    ``convs[0]`` projects the coarsest (stride-32) trunk output. Only the
    levels listed in ``top_down_levels`` (2 and 3: strides 16 and 32) receive
    the nearest-upsampled coarser level; strides 4 and 8 are lateral only.
    """

    def __init__(self, trunk_dims: tuple[int, ...], d_model: int, top_down_levels: tuple[int, ...]) -> None:
        super().__init__()
        self.convs = nn.ModuleList(_Lateral(c, d_model) for c in reversed(trunk_dims))
        self.top_down_levels = set(top_down_levels)
        self.position_encoding = SineGridEncoding(d_model)

    def forward(self, trunk_out: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        n = len(trunk_out)
        feats: list[torch.Tensor] = [None] * n  # type: ignore[list-item]
        coarser = None
        for level in range(n - 1, -1, -1):
            lateral = self.convs[n - 1 - level](trunk_out[level])
            if level in self.top_down_levels and coarser is not None:
                up = F.interpolate(coarser.float(), scale_factor=2.0, mode="nearest")
                lateral = lateral + up.to(lateral.dtype)
            coarser = lateral
            feats[level] = lateral
        return feats, [self.position_encoding(f) for f in feats]


class ImageEncoder(nn.Module):
    """(B, 3, S, S) normalised image -> :class:`ImageFeatures` (3 levels)."""

    def __init__(self, cfg: Sam2Config) -> None:
        super().__init__()
        self.trunk = RepViT(cfg.repvit) if cfg.repvit is not None else Hiera(cfg.hiera)
        self.neck = FpnNeck(cfg.trunk_dims, cfg.d_model, cfg.fpn_top_down_levels)

    def forward(self, images: torch.Tensor) -> ImageFeatures:
        feats, pos = self.neck(self.trunk(images))
        # drop the stride-32 level ("scalp")
        return ImageFeatures(levels=feats[:-1], positions=pos[:-1])
