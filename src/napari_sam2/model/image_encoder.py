"""Image encoder: Hiera trunk (SAM 2) or RepViT trunk (EdgeTAM) + feature-pyramid neck.

Produces the three feature levels SAM 2 uses, all with ``d_model`` channels:
strides 4 and 8 ("high-resolution" features for the mask decoder) and
stride 16 (the image embedding). The stride-32 level is computed by the neck
and then dropped, as in the released models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

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

    ``levels`` are (B, C_i, H_i, W_i) maps at strides 4, 8, 16 (finest first): the neck's
    ``d_model``-channel maps, or, for the fine levels given a projection, that projection of them
    (see :meth:`ImageEncoder.forward`). ``position`` is the sine position encoding of the stride-16
    level, (B, d_model, H_2, W_2) -- the only level whose positions SAM 2 uses.
    """

    levels: list[torch.Tensor]
    position: torch.Tensor


class _Lateral(nn.Module):
    """1x1 convolution stored as ``<i>.conv`` like the checkpoints."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def fused_1x1(x: torch.Tensor, first: nn.Conv2d, then: nn.Conv2d) -> torch.Tensor:
    """``then(first(x))`` for two 1x1 convolutions, as one 1x1 convolution in ``then``'s dtype.

    (B, C_in, H, W) -> (B, C_out, H, W). The composed weight is ``W_then @ W_first`` and the bias
    ``W_then @ b_first + b_then``: mathematically the same map, without the (B, C_mid, H, W)
    intermediate (256 channels at stride 4: 64 MiB per 1024² frame in float32).
    """
    dt = then.weight.dtype
    w1, w2 = first.weight.to(dt).flatten(1), then.weight.to(dt).flatten(1)  # (mid, in), (out, mid)
    bias = None if first.bias is None else w2 @ first.bias.to(dt)
    if then.bias is not None:
        bias = then.bias if bias is None else bias + then.bias
    return F.conv2d(x.to(dt), (w2 @ w1)[:, :, None, None], bias)


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

    def forward(self, trunk_out: list[torch.Tensor],
                project: dict[int, nn.Conv2d] | None = None) -> list[torch.Tensor]:
        """Trunk maps (finest first) -> one ``d_model``-channel map per level, finest first.

        ``project`` maps a level to a 1x1 convolution applied to that level's output; a level
        without top-down input then runs lateral + projection as one fused convolution.
        """
        n = len(trunk_out)
        project = project or {}
        feats: list[torch.Tensor] = [None] * n  # type: ignore[list-item]
        coarser = None
        for level in range(n - 1, -1, -1):
            lateral_conv = cast(_Lateral, self.convs[n - 1 - level]).conv
            top_down = level in self.top_down_levels and coarser is not None
            if level in project and not top_down:
                feats[level] = fused_1x1(trunk_out[level], lateral_conv, project[level])
                continue  # a projected fine level feeds no finer level (top-down stops at stride 16)
            lateral = lateral_conv(trunk_out[level])
            if top_down and coarser is not None:
                up = F.interpolate(coarser.float(), scale_factor=2.0, mode="nearest")
                lateral = lateral + up.to(lateral.dtype)
            coarser = lateral
            feats[level] = lateral if level not in project else project[level](lateral.to(project[level].weight.dtype))
        return feats


class ImageEncoder(nn.Module):
    """(B, 3, S, S) normalised image -> :class:`ImageFeatures` (3 levels)."""

    def __init__(self, cfg: Sam2Config) -> None:
        super().__init__()
        self.trunk = RepViT(cfg.repvit) if cfg.repvit is not None else Hiera(cfg.hiera)
        self.neck = FpnNeck(cfg.trunk_dims, cfg.d_model, cfg.fpn_top_down_levels)

    def forward(self, images: torch.Tensor, fine_projections: tuple[nn.Conv2d, nn.Conv2d] | None = None
                ) -> ImageFeatures:
        """``fine_projections``: 1x1 convolutions applied to the stride-4 and stride-8 levels (the mask
        decoder's ``conv_s0``/``conv_s1``), fused with the neck's lateral ones; ``levels[0:2]`` are then
        their outputs, in those convolutions' dtype."""
        project = {} if fine_projections is None else dict(enumerate(fine_projections))
        feats = self.neck(self.trunk(images), project)
        # drop the stride-32 level ("scalp")
        return ImageFeatures(levels=feats[:-1], position=self.neck.position_encoding(feats[2]))
