"""The two-way transformer of the mask decoder.

Prompt tokens and image tokens attend to each other in turn: tokens to
themselves, tokens to the image, an MLP on the tokens, then the image to
the tokens. Tokens are (B, N, C); the image is (B, H*W, C), row-major.
"""

from __future__ import annotations

import torch
from torch import nn

from .common import FeedForward, attention


class ProjectedAttention(nn.Module):
    """Multi-head attention with q/k/v/out projections.

    Projections map ``dim`` (or ``kv_dim`` for keys and values) to
    ``dim // downsample`` internal channels split over ``heads``.
    """

    def __init__(self, dim: int, heads: int, downsample: int = 1, kv_dim: int | None = None) -> None:
        super().__init__()
        inner = dim // downsample
        kv_dim = dim if kv_dim is None else kv_dim
        if inner % heads:
            raise ValueError("heads must divide the attention width")
        self.heads = heads
        self.q_proj = nn.Linear(dim, inner)
        self.k_proj = nn.Linear(kv_dim, inner)
        self.v_proj = nn.Linear(kv_dim, inner)
        self.out_proj = nn.Linear(inner, dim)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, C) -> (B, heads, N, C / heads)."""
        b, n, c = x.shape
        return x.view(b, n, self.heads, c // self.heads).transpose(1, 2)

    def merge(self, x: torch.Tensor) -> torch.Tensor:
        """(B, heads, N, c) -> (B, N, heads * c)."""
        b, h, n, c = x.shape
        return x.transpose(1, 2).reshape(b, n, h * c)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        q, k, v = self.split(self.q_proj(q)), self.split(self.k_proj(k)), self.split(self.v_proj(v))
        return self.out_proj(self.merge(attention(q, k, v)))


class TwoWayBlock(nn.Module):
    """One round of token<->image attention with post-norms.

    In the first block the token self-attention sees no positional
    encoding and its output replaces the tokens (no residual).
    """

    def __init__(self, dim: int, heads: int, mlp_dim: int, first: bool) -> None:
        super().__init__()
        self.first = first
        self.self_attn = ProjectedAttention(dim, heads)
        self.norm1 = nn.LayerNorm(dim)
        self.cross_attn_token_to_image = ProjectedAttention(dim, heads, downsample=2)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = FeedForward(dim, mlp_dim, dim, 2, activation=nn.ReLU)
        self.norm3 = nn.LayerNorm(dim)
        self.norm4 = nn.LayerNorm(dim)
        self.cross_attn_image_to_token = ProjectedAttention(dim, heads, downsample=2)

    def forward(
        self, tokens: torch.Tensor, image: torch.Tensor, token_pe: torch.Tensor, image_pe: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.first:
            tokens = self.self_attn(tokens, tokens, tokens)
        else:
            q = tokens + token_pe
            tokens = tokens + self.self_attn(q, q, tokens)
        tokens = self.norm1(tokens)

        img_k = image + image_pe
        tokens = self.norm2(tokens + self.cross_attn_token_to_image(tokens + token_pe, img_k, image))
        tokens = self.norm3(tokens + self.mlp(tokens))
        image = self.norm4(image + self.cross_attn_image_to_token(img_k, tokens + token_pe, tokens))
        return tokens, image


class TwoWayTransformer(nn.Module):
    """``depth`` two-way blocks, then a final token->image attention.

    ``forward(image (B, C, H, W), image_pe (B, C, H, W), tokens (B, N, C))``
    returns (tokens (B, N, C), image tokens (B, H*W, C)).
    """

    def __init__(self, depth: int, dim: int, heads: int, mlp_dim: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(TwoWayBlock(dim, heads, mlp_dim, first=(i == 0)) for i in range(depth))
        self.final_attn_token_to_image = ProjectedAttention(dim, heads, downsample=2)
        self.norm_final_attn = nn.LayerNorm(dim)

    def forward(
        self, image: torch.Tensor, image_pe: torch.Tensor, tokens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        image = image.flatten(2).transpose(1, 2)
        image_pe = image_pe.flatten(2).transpose(1, 2)
        token_pe = tokens
        for layer in self.layers:
            tokens, image = layer(tokens, image, token_pe, image_pe)
        out = self.final_attn_token_to_image(tokens + token_pe, image + image_pe, image)
        return self.norm_final_attn(tokens + out), image
