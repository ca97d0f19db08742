"""Position encodings: sine/cosine maps for feature grids, random Fourier
features for prompt coordinates."""

from __future__ import annotations

import math

import torch
from torch import nn


def _sin_cos_interleaved(t: torch.Tensor, num_feats: int, temperature: float) -> torch.Tensor:
    """(..., ) positions -> (..., num_feats): sin on even, cos on odd channels."""
    idx = torch.arange(num_feats, dtype=torch.float32, device=t.device)
    freqs = temperature ** (2 * torch.div(idx, 2, rounding_mode="floor") / num_feats)
    angles = t[..., None] / freqs
    return torch.stack((angles[..., 0::2].sin(), angles[..., 1::2].cos()), dim=-1).flatten(-2)


class SineGridEncoding(nn.Module):
    """Normalised 2-D sine/cosine position encoding of a feature grid.

    ``forward(x)`` with ``x`` of shape (B, C, H, W) returns (B, dim, H, W):
    the first ``dim/2`` channels encode the row, the last ``dim/2`` the column.
    Parameter-free; results are cached per grid size and device.
    """

    def __init__(self, dim: int, temperature: float = 10000.0) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError("position encoding width must be even")
        self.half_dim = dim // 2  # (not `half`: that is nn.Module.half())
        self.temperature = temperature
        self._cache: dict[tuple, torch.Tensor] = {}

    @torch.no_grad()
    def grid(self, h: int, w: int, device: torch.device) -> torch.Tensor:
        key = (h, w, str(device))
        if key not in self._cache:
            scale, eps = 2 * math.pi, 1e-6
            rows = torch.arange(1, h + 1, dtype=torch.float32, device=device)
            cols = torch.arange(1, w + 1, dtype=torch.float32, device=device)
            rows = rows / (rows[-1] + eps) * scale
            cols = cols / (cols[-1] + eps) * scale
            enc_r = _sin_cos_interleaved(rows, self.half_dim, self.temperature)  # (H, half)
            enc_c = _sin_cos_interleaved(cols, self.half_dim, self.temperature)  # (W, half)
            pe = torch.cat(
                (enc_r[:, None, :].expand(h, w, -1), enc_c[None, :, :].expand(h, w, -1)), dim=-1
            )
            self._cache[key] = pe.permute(2, 0, 1).contiguous()
        return self._cache[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pe = self.grid(x.shape[-2], x.shape[-1], x.device)
        return pe[None].expand(x.shape[0], -1, -1, -1).to(x.dtype)


class RandomFourierEncoding(nn.Module):
    """Position encoding with a fixed random Gaussian frequency matrix.

    The (2, dim/2) matrix is a buffer stored in the checkpoints. Coordinates
    are (x, y) in [0, 1]; output is sin then cos, dim channels.
    """

    positional_encoding_gaussian_matrix: torch.Tensor  # (2, dim / 2) buffer

    def __init__(self, half_dim: int) -> None:
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", torch.randn(2, half_dim))

    def encode(self, xy01: torch.Tensor) -> torch.Tensor:
        """(..., 2) (x, y) in [0, 1] -> (..., dim)."""
        # always float32: Fourier features of coordinates lose too much in 16 bits
        proj = (2 * xy01.float() - 1) @ self.positional_encoding_gaussian_matrix.float()
        proj = 2 * math.pi * proj
        return torch.cat((proj.sin(), proj.cos()), dim=-1)

    def dense(self, h: int, w: int) -> torch.Tensor:
        """Encoding of every cell centre of an (h, w) grid -> (dim, h, w)."""
        dev = self.positional_encoding_gaussian_matrix.device
        ys = (torch.arange(h, dtype=torch.float32, device=dev) + 0.5) / h
        xs = (torch.arange(w, dtype=torch.float32, device=dev) + 0.5) / w
        xy = torch.stack((xs[None, :].expand(h, w), ys[:, None].expand(h, w)), dim=-1)
        return self.encode(xy).permute(2, 0, 1)

    def points(self, xy: torch.Tensor, size_hw: tuple[int, int]) -> torch.Tensor:
        """(B, N, 2) (x, y) pixel coordinates of an image of ``size_hw`` -> (B, N, dim)."""
        scale = torch.tensor([size_hw[1], size_hw[0]], dtype=torch.float32, device=xy.device)
        return self.encode(xy.float() / scale)
