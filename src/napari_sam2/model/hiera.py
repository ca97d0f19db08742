"""Hiera: the hierarchical vision transformer that is SAM 2's image trunk.

Four stages at strides 4, 8, 16 and 32 of the input. The first block of
stages 2-4 halves the resolution by max-pooling its queries and doubles the
channel width. Most blocks attend inside square windows; a few attend
globally. Tensors inside the trunk are channels-last: (B, H, W, C).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from .common import FeedForward, attention
from .config import HieraConfig


def _pool(x: torch.Tensor, stride: tuple[int, int] | None) -> torch.Tensor:
    """Max-pool a (B, H, W, C) map by ``stride`` (no-op for None)."""
    if stride is None:
        return x
    return F.max_pool2d(x.permute(0, 3, 1, 2), stride, stride).permute(0, 2, 3, 1)


def to_windows(x: torch.Tensor, size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Split (B, H, W, C) into (B * nWin, size, size, C) windows.

    The map is zero-padded at the bottom/right to a multiple of ``size``;
    padded tokens take part in attention like any other (no mask), exactly
    as in the released models. Returns the windows and the padded (H, W).
    """
    b, h, w, c = x.shape
    ph, pw = -h % size, -w % size
    if ph or pw:
        x = F.pad(x, (0, 0, 0, pw, 0, ph))
    hp, wp = h + ph, w + pw
    x = x.view(b, hp // size, size, wp // size, size, c).transpose(2, 3)
    return x.reshape(-1, size, size, c), (hp, wp)


def from_windows(win: torch.Tensor, size: int, padded: tuple[int, int], hw: tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`to_windows`: (B * nWin, size, size, C) -> (B, H, W, C)."""
    hp, wp = padded
    nh, nw = hp // size, wp // size
    b = win.shape[0] // (nh * nw)
    x = win.view(b, nh, nw, size, size, -1).transpose(2, 3).reshape(b, hp, wp, -1)
    return x[:, : hw[0], : hw[1]]


class PooledAttention(nn.Module):
    """Multi-head self-attention whose queries may be max-pooled.

    Input (B, H, W, dim); output (B, H', W', dim_out) where (H', W') is
    (H, W) divided by ``q_stride`` when pooling, else unchanged.
    """

    def __init__(self, dim: int, dim_out: int, heads: int, q_stride: tuple[int, int] | None) -> None:
        super().__init__()
        self.heads = heads
        self.q_stride = q_stride
        self.qkv = nn.Linear(dim, 3 * dim_out)
        self.proj = nn.Linear(dim_out, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, _ = x.shape
        q, k, v = self.qkv(x).view(b, h * w, 3, self.heads, -1).unbind(2)
        if self.q_stride is not None:
            q = _pool(q.reshape(b, h, w, -1), self.q_stride)
            h, w = q.shape[1:3]
            q = q.reshape(b, h * w, self.heads, -1)
        out = attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return self.proj(out.transpose(1, 2).reshape(b, h, w, -1))


class HieraBlock(nn.Module):
    """Pre-norm transformer block (window or global attention + MLP).

    ``window`` 0 means global attention. A block that changes width projects
    and pools its shortcut; a block with ``q_stride`` pools its queries.
    """

    def __init__(
        self, dim: int, dim_out: int, heads: int, window: int, q_stride: tuple[int, int] | None
    ) -> None:
        super().__init__()
        self.dim, self.dim_out, self.window, self.q_stride = dim, dim_out, window, q_stride
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = PooledAttention(dim, dim_out, heads, q_stride)
        self.norm2 = nn.LayerNorm(dim_out, eps=1e-6)
        self.mlp = FeedForward(dim_out, 4 * dim_out, dim_out, 2, activation=nn.GELU)
        if dim != dim_out:
            self.proj = nn.Linear(dim, dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_norm = self.norm1(x)
        shortcut = _pool(self.proj(x_norm), self.q_stride) if self.dim != self.dim_out else x
        if self.window > 0:
            windows, _ = to_windows(x_norm, self.window)
            out = self.attn(windows)
            # pooled queries shrink every window by the query stride
            win_out = self.window // self.q_stride[0] if self.q_stride else self.window
            hw = (int(shortcut.shape[1]), int(shortcut.shape[2]))
            padded = (hw[0] + (-hw[0] % win_out), hw[1] + (-hw[1] % win_out))
            out = from_windows(out, win_out, padded, hw)
        else:
            out = self.attn(x_norm)
        x = shortcut + out
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    """7x7 stride-4 convolution: (B, 3, H, W) -> (B, H/4, W/4, C)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=7, stride=4, padding=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)


class Hiera(nn.Module):
    """The Hiera trunk.

    ``forward(x)`` takes a normalised (B, 3, S, S) image and returns the
    four stage outputs, finest first, each (B, C_i, S/4/2^i, S/4/2^i).
    """

    def __init__(self, cfg: HieraConfig) -> None:
        super().__init__()
        dim = cfg.embed_dim
        self.patch_embed = PatchEmbed(dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, dim, *cfg.pos_embed_bkg_size))
        win0 = cfg.window_spec[0]
        self.pos_embed_window = nn.Parameter(torch.zeros(1, dim, win0, win0))

        ends = [sum(cfg.stages[: i + 1]) - 1 for i in range(len(cfg.stages))]
        pool_blocks = [e + 1 for e in ends[:-1]][: cfg.q_pool]
        self.stage_ends = ends

        heads, stage = cfg.num_heads, 0
        blocks = []
        for i in range(sum(cfg.stages)):
            dim_out = dim
            # The window size lags one block behind the stage: the first
            # block of a stage still uses the previous stage's window.
            window = 0 if i in cfg.global_att_blocks else cfg.window_spec[stage]
            if i - 1 in ends:
                dim_out = int(dim * cfg.dim_mul)
                heads = int(heads * cfg.head_mul)
                stage += 1
            q_stride = (cfg.q_stride[0], cfg.q_stride[1]) if i in pool_blocks else None
            blocks.append(HieraBlock(dim, dim_out, heads, window, q_stride))
            dim = dim_out
        self.blocks = nn.ModuleList(blocks)
        self._position_cache: dict = {}

    def _position(self, h: int, w: int) -> torch.Tensor:
        """Background embedding resized to (h, w) plus the tiled window embedding.

        It depends only on the weights and (h, w), so it is computed once per
        size (and again after the weights are loaded or moved) while gradients are off.
        """
        key = (h, w, self.pos_embed.dtype, self.pos_embed.data_ptr(), self.pos_embed_window.data_ptr())
        if torch.is_grad_enabled() or self._position_cache.get("key") != key:
            bkg = F.interpolate(self.pos_embed, size=(h, w), mode="bicubic")
            win = self.pos_embed_window
            reps = (h // win.shape[2], w // win.shape[3])
            pos = (bkg + win.tile(1, 1, *reps)).permute(0, 2, 3, 1)
            if torch.is_grad_enabled():
                return pos
            self._position_cache = {"key": key, "value": pos.clone()}
        return self._position_cache["value"]

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        self._position_cache = {}  # new weights, new position embedding
        return super()._load_from_state_dict(*args, **kwargs)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.patch_embed(x)
        x = x + self._position(x.shape[1], x.shape[2])
        outs = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.stage_ends:
                outs.append(x.permute(0, 3, 1, 2))
        return outs
