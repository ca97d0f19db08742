"""Memory encoder: turns a frame's features and predicted mask into a memory.

The full-resolution mask is shrunk to the stride-16 grid by a small conv
stack, added to a 1x1 projection of the frame's (un-conditioned) stride-16
features, mixed by two ConvNeXt-style blocks and projected to the narrow
memory width. A sine position encoding of the result comes along with it.

Parameter names follow the official checkpoints' ``memory_encoder.*`` entries.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .common import ChannelLayerNorm
from .position import SineGridEncoding


class MaskDownsampler(nn.Module):
    """Mask (B, 1, S, S) -> (B, out_dim, S/total_stride, S/total_stride).

    ``log2(total_stride)`` stages of [3x3 conv, stride 2, padding 1 ->
    channel LayerNorm -> GELU], each multiplying the channels by 4
    (1 -> 4 -> 16 -> 64 -> 256 for total stride 16, whatever ``out_dim``),
    then a 1x1 conv to ``out_dim``. Kept as one ``encoder`` Sequential so the
    checkpoint indices (``encoder.0`` ... ``encoder.12``) line up.
    """

    def __init__(self, out_dim: int, total_stride: int = 16) -> None:
        super().__init__()
        num_stages = total_stride.bit_length() - 1
        if total_stride < 2 or 2**num_stages != total_stride:
            raise ValueError(f"total_stride must be a power of 2, got {total_stride}")
        blocks: list[nn.Module] = []
        channels = 1
        for _ in range(num_stages):
            blocks += [
                nn.Conv2d(channels, channels * 4, kernel_size=3, stride=2, padding=1),
                ChannelLayerNorm(channels * 4),
                nn.GELU(),
            ]
            channels *= 4
        blocks.append(nn.Conv2d(channels, out_dim, kernel_size=1))
        self.encoder = nn.Sequential(*blocks)

    def forward(self, mask: Tensor) -> Tensor:
        """(B, 1, S, S) -> (B, out_dim, S / total_stride, S / total_stride)."""
        return self.encoder(mask)


class ConvNeXtBlock(nn.Module):
    """Residual block: 7x7 depthwise conv -> channel LayerNorm -> Linear dim->4dim
    -> GELU -> Linear 4dim->dim -> per-channel scale ``gamma``. (B, C, H, W) in and out."""

    def __init__(self, dim: int, kernel_size: int = 7) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = ChannelLayerNorm(dim)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), 1e-6))  # layer scale

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        h = self.norm(self.dwconv(x)).permute(0, 2, 3, 1)  # channels last for the Linears
        h = self.gamma * self.pwconv2(self.act(self.pwconv1(h)))
        return x + h.permute(0, 3, 1, 2)


class Fuser(nn.Module):
    """A chain of :class:`ConvNeXtBlock` s stored as ``layers.N``; (B, C, H, W) in and out."""

    def __init__(self, dim: int, num_blocks: int = 2) -> None:
        super().__init__()
        self.layers = nn.ModuleList(ConvNeXtBlock(dim) for _ in range(num_blocks))

    def forward(self, x: Tensor) -> Tensor:
        for block in self.layers:
            x = block(x)
        return x


class MemoryEncoder(nn.Module):
    """Encode a frame's stride-16 features and its mask into a spatial memory.

    Official SAM 2 / 2.1 settings: d_model 256, mem_dim 64, 2 fuser blocks,
    mask stride 16 (1024-pixel masks onto the 64 x 64 grid).
    """

    def __init__(
        self,
        d_model: int = 256,
        mem_dim: int = 64,
        num_fuser_blocks: int = 2,
        mask_stride: int = 16,
    ) -> None:
        super().__init__()
        self.mask_downsampler = MaskDownsampler(d_model, mask_stride)
        self.pix_feat_proj = nn.Conv2d(d_model, d_model, kernel_size=1)
        self.fuser = Fuser(d_model, num_fuser_blocks)
        # the reference has no projection (and no parameters) when the widths agree
        self.out_proj = (
            nn.Conv2d(d_model, mem_dim, kernel_size=1) if mem_dim != d_model else nn.Identity()
        )
        self.position_encoding = SineGridEncoding(mem_dim)

    def forward(self, pix_feat: Tensor, masks: Tensor) -> tuple[Tensor, Tensor]:
        """Build one memory per batch item.

        Args:
            pix_feat: (B, d_model, H, W) stride-16 image features of the frame
                (the raw backbone features, not the memory-conditioned ones).
            masks: (B, 1, H * mask_stride, W * mask_stride) mask values already
                mapped by the caller (SAM 2: ``sigmoid(logits) * 20 - 10``, or
                the binarised mask ``* 20 - 10``); no sigmoid is applied here.
                Cast to ``pix_feat``'s dtype.
        Returns:
            (features, pos): both (B, mem_dim, H, W); ``pos`` is the sine
            position encoding of the grid in the features' dtype.
        """
        mask_feat = self.mask_downsampler(masks.to(pix_feat.dtype))
        if mask_feat.shape[-2:] != pix_feat.shape[-2:]:
            raise ValueError(
                f"mask {tuple(masks.shape)} does not downsample to the feature grid "
                f"{tuple(pix_feat.shape[-2:])}"
            )
        x = self.fuser(self.pix_feat_proj(pix_feat) + mask_feat)
        x = self.out_proj(x)
        return x, self.position_encoding(x)
