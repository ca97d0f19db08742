"""RepViT-M1, EdgeTAM's image trunk: a mobile convolutional network with four stages.

A stride-4 stem of two 3x3 convolutions, then four stages at strides 4, 8,
16 and 32. Every block mixes space with a depth-wise 3x3 convolution plus a
depth-wise 1x1 one plus the identity ("token mixer"), optionally rescales
channels by squeeze-excite (every other block of a stage, starting with the
first), and mixes channels with a residual 1x1 -> GELU -> 1x1 bottleneck.
Stages 2-4 open with a downsampling unit: one block, a stride-2 depth-wise
convolution, a 1x1 widening and a residual channel mixer.

Every convolution but the squeeze-excite ones is followed by a BatchNorm in
inference mode (running statistics). The modules keep the checkpoint's
``c``/``bn`` entries as they are; each forward folds the BatchNorm into its
convolution (and the token mixer's three branches into one depth-wise
convolution), so the network runs one convolution where the checkpoint
describes up to three convolutions, two BatchNorms and two additions. The
folded weights are computed in float32 (a few thousand numbers per layer,
negligible next to the convolutions) and cast to the layer's dtype. Parameter names follow EdgeTAM's
``image_encoder.trunk.body.*`` entries (timm's feature-extraction layout:
``stem``, ``stages_0`` ... ``stages_3``).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .config import RepViTConfig


def se_width(channels: int, ratio: float, divisor: int = 8) -> int:
    """Bottleneck width of a squeeze-excite unit: ``channels * ratio`` rounded to the nearest
    multiple of ``divisor`` (halves up), at least ``divisor`` (48 -> 16, 96 -> 24, 192 -> 48)."""
    target = channels * ratio
    return max(divisor, int(target + divisor / 2) // divisor * divisor)


def _like_input(weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A folded (cout, cin/groups, k, k) weight in ``x``'s dtype and, for a channels-last ``x``, memory
    layout (oneDNN then runs the convolution without reordering the weight)."""
    if x.is_contiguous(memory_format=torch.channels_last):
        return weight.to(x.dtype, memory_format=torch.channels_last)
    return weight.to(x.dtype)


class ConvBN(nn.Module):
    """Bias-free convolution ``c`` followed by BatchNorm ``bn`` (inference statistics)."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.c = nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def folded(self) -> tuple[torch.Tensor, torch.Tensor]:
        """float32 (weight (cout, cin/groups, k, k), bias (cout,)) of the convolution with the BatchNorm
        folded in: ``bn(c(x)) = conv(x, w * s) + (beta - mean * s)`` with ``s = gamma / sqrt(var + eps)``."""
        bn = self.bn
        mean, var = bn.running_mean, bn.running_var
        if mean is None or var is None:  # (BatchNorm2d always tracks them here)
            raise RuntimeError("RepViT BatchNorm without running statistics")
        scale = bn.weight.float() * torch.rsqrt(var.float() + bn.eps)
        weight = self.c.weight.float() * scale[:, None, None, None]
        return weight, bn.bias.float() - mean.float() * scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.folded()
        c = self.c
        return F.conv2d(x, _like_input(weight, x), bias.to(x.dtype), c.stride, c.padding, c.dilation, c.groups)


class SpatialMixer(nn.Module):
    """Depth-wise k x k conv + depth-wise 1x1 conv + identity (``token_mixer``), run as one
    depth-wise k x k convolution: the 1x1 kernel and the identity add to the k x k kernel's centre."""

    def __init__(self, dim: int, kernel: int) -> None:
        super().__init__()
        self.conv = ConvBN(dim, dim, kernel, groups=dim)
        self.conv1 = ConvBN(dim, dim, 1, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.conv.folded()  # (dim, 1, k, k)
        weight_1, bias_1 = self.conv1.folded()  # (dim, 1, 1, 1)
        centre = weight.shape[-1] // 2
        weight = weight.clone()
        weight[:, :, centre, centre] += weight_1[:, :, 0, 0] + 1.0  # + the identity
        c = self.conv.c
        return F.conv2d(x, _like_input(weight, x), (bias + bias_1).to(x.dtype), 1, c.padding, 1, c.groups)


class ChannelMixer(nn.Module):
    """1x1 widen by ``ratio`` -> GELU -> 1x1 back (the residual is added by the caller)."""

    def __init__(self, dim: int, ratio: int) -> None:
        super().__init__()
        self.conv1 = ConvBN(dim, dim * ratio)
        self.conv2 = ConvBN(dim * ratio, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.gelu(self.conv1(x)))


class SqueezeExcite(nn.Module):
    """Channel gates from the global mean: 1x1 conv -> ReLU -> 1x1 conv -> sigmoid."""

    def __init__(self, dim: int, ratio: float) -> None:
        super().__init__()
        hidden = se_width(dim, ratio)
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.fc2(F.relu(self.fc1(x.mean((2, 3), keepdim=True))))
        return x * torch.sigmoid(gate)


class RepViTBlock(nn.Module):
    """Spatial mixer, optional squeeze-excite, residual channel mixer; keeps shape."""

    def __init__(self, dim: int, cfg: RepViTConfig, squeeze_excite: bool) -> None:
        super().__init__()
        self.token_mixer = SpatialMixer(dim, cfg.kernel_size)
        self.se = SqueezeExcite(dim, cfg.se_ratio) if squeeze_excite else nn.Identity()
        self.channel_mixer = ChannelMixer(dim, cfg.mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.se(self.token_mixer(x))
        return x + self.channel_mixer(x)


class Downsample(nn.Module):
    """(B, cin, H, W) -> (B, cout, H/2, W/2): block, stride-2 depth-wise conv, 1x1 widening, residual FFN."""

    def __init__(self, cin: int, cout: int, cfg: RepViTConfig) -> None:
        super().__init__()
        self.pre_block = RepViTBlock(cin, cfg, squeeze_excite=False)
        self.spatial_downsample = ConvBN(cin, cin, cfg.kernel_size, stride=2, groups=cin)
        self.channel_downsample = ConvBN(cin, cout)
        self.ffn = ChannelMixer(cout, cfg.mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.channel_downsample(self.spatial_downsample(self.pre_block(x)))
        return x + self.ffn(x)


class Stage(nn.Module):
    """Optional :class:`Downsample`, then ``depth`` blocks with squeeze-excite on blocks 0, 2, 4, ..."""

    def __init__(self, cin: int, cout: int, depth: int, cfg: RepViTConfig, downsample: bool) -> None:
        super().__init__()
        if downsample:
            self.downsample = Downsample(cin, cout, cfg)
        elif cin != cout:
            raise ValueError("a stage without downsampling keeps its width")
        self.blocks = nn.Sequential(*(RepViTBlock(cout, cfg, squeeze_excite=i % 2 == 0) for i in range(depth)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "downsample"):
            x = self.downsample(x)
        return self.blocks(x)


class Stem(nn.Module):
    """Two stride-2 3x3 ConvBN with a GELU between: (B, 3, S, S) -> (B, dim, S/4, S/4)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv1 = ConvBN(3, dim // 2, 3, stride=2)
        self.conv2 = ConvBN(dim // 2, dim, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.gelu(self.conv1(x)))


class _Body(nn.Module):
    """The network itself, under the checkpoint's ``body`` names."""

    def __init__(self, cfg: RepViTConfig) -> None:
        super().__init__()
        dims = cfg.embed_dims
        self.stem = Stem(dims[0])
        cin = dims[0]
        for i, (dim, depth) in enumerate(zip(dims, cfg.depths)):
            setattr(self, f"stages_{i}", Stage(cin, dim, depth, cfg, downsample=i > 0))
            cin = dim
        self.num_stages = len(dims)


class RepViT(nn.Module):
    """(B, 3, S, S) normalised images -> four maps (B, C_i, S/s, S/s) at strides s = 4, 8, 16, 32
    (finest first; C_i = ``cfg.embed_dims``), the layout the FPN neck takes from Hiera."""

    def __init__(self, cfg: RepViTConfig) -> None:
        super().__init__()
        self.body = _Body(cfg)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        body = self.body
        # Channels-last: oneDNN's depth-wise and 1x1 convolutions run without layout copies (measured 2.1x
        # faster in bfloat16 on a 2-core Sapphire Rapids VM at 1024^2: 0.31 -> 0.14 s). The maps stay
        # channels-last: the neck's 1x1 convolutions take them as they are.
        x = body.stem(images.contiguous(memory_format=torch.channels_last))
        outs = []
        for i in range(body.num_stages):
            x = getattr(body, f"stages_{i}")(x)
            outs.append(x)
        return outs
