"""EdgeTAM's spatial perceiver: a memory frame of G x G tokens compressed to a few hundred.

Two sets of learned latent vectors read the memory encoder's output with the
same stack of layers (cross-attention to the memory, feed-forward, then
self-attention among the latents and another feed-forward, all pre-norm and
residual):

* ``latents`` (256 of them) attend to the whole frame; the frame's sine
  position encoding is added to both keys and values. They carry no position
  afterwards (zeros).
* ``latents_2d`` (one per window of a 16 x 16 grid of square windows; a 4 x 4
  window of the 64 x 64 memory grid at 1024 pixels) each attend only to
  their own window, without positions. They keep the window grid's sine
  position encoding.

Output tokens are the global latents first, then the window latents row by
row; memory attention rotates only the latter (RoPE on the 16 x 16 grid).
Parameter names follow EdgeTAM's ``spatial_perceiver.*`` entries.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .config import PerceiverConfig
from .position import SineGridEncoding


def _feed_forward(dim: int, mult: int) -> nn.Sequential:
    """LayerNorm -> Linear (no bias) -> GELU -> Linear (no bias); entries ``0``, ``1``, ``3``."""
    return nn.Sequential(
        nn.LayerNorm(dim), nn.Linear(dim, dim * mult, bias=False), nn.GELU(), nn.Linear(dim * mult, dim, bias=False)
    )


class _Attention(nn.Module):
    """Bias-free multi-head attention from latents to inputs (``to_q``, ``to_kv``, ``to_out``)."""

    def __init__(self, dim: int, heads: int, dim_head: int) -> None:
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, 2 * inner, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def attend(self, latents: torch.Tensor, x: torch.Tensor, pos: torch.Tensor | None) -> torch.Tensor:
        """(N, L, dim) normalised latents, (N, T, dim) normalised inputs, optional (N, T, inner)
        positions added to keys and values -> (N, L, dim)."""
        q = self.to_q(latents)
        k, v = self.to_kv(x).chunk(2, dim=-1)
        if pos is not None:
            k, v = k + pos, v + pos
        q, k, v = (t.unflatten(-1, (self.heads, -1)).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out(out.transpose(1, 2).flatten(2))


class CrossAttention(_Attention):
    """Latents (queries) read the inputs; both are layer-normalised first."""

    def __init__(self, dim: int, heads: int, dim_head: int) -> None:
        super().__init__(dim, heads, dim_head)
        self.norm_x = nn.LayerNorm(dim)
        self.norm_latents = nn.LayerNorm(dim)

    def forward(self, latents: torch.Tensor, x: torch.Tensor, pos: torch.Tensor | None) -> torch.Tensor:
        return self.attend(self.norm_latents(latents), self.norm_x(x), pos)


class SelfAttention(_Attention):
    """Latents attend to each other (layer-normalised first)."""

    def __init__(self, dim: int, heads: int, dim_head: int) -> None:
        super().__init__(dim, heads, dim_head)
        self.norm = nn.LayerNorm(dim)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        h = self.norm(latents)
        return self.attend(h, h, None)


class PerceiverLayer(nn.Module):
    """Residual cross-attention + FFN, then residual self-attention + FFN, on the latents."""

    def __init__(self, cfg: PerceiverConfig) -> None:
        super().__init__()
        self.attn = CrossAttention(cfg.dim, cfg.heads, cfg.dim_head)
        self.ff = _feed_forward(cfg.dim, cfg.ff_mult)
        self.self_attn = SelfAttention(cfg.dim, cfg.heads, cfg.dim_head)
        self.self_ff = _feed_forward(cfg.dim, cfg.ff_mult)

    def forward(self, latents: torch.Tensor, x: torch.Tensor, pos: torch.Tensor | None) -> torch.Tensor:
        latents = latents + self.attn(latents, x, pos)
        latents = latents + self.ff(latents)
        latents = latents + self.self_attn(latents)
        return latents + self.self_ff(latents)


class SpatialPerceiver(nn.Module):
    """(B, C, G, G) memory features and their position encoding -> (B, N, C) tokens and positions,
    N = ``num_latents + num_latents_2d`` (512 for EdgeTAM, whatever G; G must be a multiple of 16)."""

    def __init__(self, cfg: PerceiverConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.latents = nn.Parameter(torch.zeros(cfg.num_latents, cfg.dim))
        self.latents_2d = nn.Parameter(torch.zeros(cfg.num_latents_2d, cfg.dim))
        self.layers = nn.ModuleList(PerceiverLayer(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.dim)
        self.window_positions = SineGridEncoding(cfg.dim)

    def _run(self, latents: torch.Tensor, x: torch.Tensor, pos: torch.Tensor | None) -> torch.Tensor:
        for layer in self.layers:
            latents = layer(latents, x, pos)
        return latents

    def forward(self, feats: torch.Tensor, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Compress B memory frames.

        Args:
            feats: (B, C, G, G) memory-encoder output.
            pos: (B, C, G, G) its sine position encoding.
        Returns:
            (B, N, C) tokens (global latents, then window latents in row-major
            window order) and (B, N, C) their positions (zeros, then the
            window grid's sine encoding).
        """
        b, c, h, w = feats.shape
        side = self.cfg.grid_side
        if h != w or h % side:
            raise ValueError(f"the spatial perceiver needs a square memory grid divisible by {side}, got {h} x {w}")
        tokens = feats.flatten(2).transpose(1, 2)  # (B, HW, C)
        global_lat = self._run(self.latents.expand(b, -1, -1), tokens, pos.flatten(2).transpose(1, 2).to(feats.dtype))
        global_lat = self.norm(global_lat)

        win = h // side
        # (B, C, side, win, side, win) -> (B * side * side, win * win, C): each window's cells row by row
        windows = feats.reshape(b, c, side, win, side, win).permute(0, 2, 4, 3, 5, 1).reshape(-1, win * win, c)
        lat_2d = self.latents_2d.reshape(-1, 1, c).repeat(b, 1, 1)  # (B * side * side, 1, C)
        lat_2d = self.norm(self._run(lat_2d, windows, None).reshape(b, side * side, c))

        grid_pos = self.window_positions.grid(side, side, feats.device).flatten(1).transpose(0, 1)  # (side*side, C)
        positions = torch.cat((torch.zeros_like(global_lat), grid_pos.to(feats.dtype).expand(b, -1, -1)), dim=1)
        return torch.cat((global_lat, lat_2d), dim=1), positions

    def compress(self, feats: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """(B, C, G, G) memory features -> (B, C, N) tokens, channels first like a flattened grid
        (so memory code that flattens a (B, C, G, G) memory reads them unchanged). Runs in the
        perceiver's dtype; returns that dtype."""
        dtype = self.latents.dtype
        tokens, _ = self(feats.to(dtype), pos.to(dtype))
        return tokens.transpose(1, 2)

    def token_positions(self, device: torch.device) -> torch.Tensor:
        """(1, C, N) float32 positions of the compressed tokens (the same for every frame):
        zeros for the global latents, the window grid's sine encoding for the window latents."""
        side = self.cfg.grid_side
        grid = self.window_positions.grid(side, side, device).flatten(1)  # (C, side*side)
        return torch.cat((grid.new_zeros(self.cfg.dim, self.cfg.num_latents), grid), dim=1)[None]
