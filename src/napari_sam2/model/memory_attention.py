"""Memory attention: conditions the current frame's features on past memories.

A stack of pre-norm transformer layers over the current frame's stride-16
tokens. Each layer does self-attention among the current tokens, then
cross-attention from them to the memory bank (spatial memories of earlier
frames followed by object-pointer tokens), then a ReLU feed-forward block.
Positions enter through 2-D axial RoPE in both attentions (object-pointer
keys excepted), plus an additive sine encoding on the memory keys and a
small (0.1x) one added to the input tokens once.

EdgeTAM's memories are perceiver tokens, not grids: each memory frame is
``key_frame_tokens`` tokens whose last ``key_grid**2`` lie on their own
(16 x 16) grid; only those keys are rotated, by that grid's angles.

Parameter names follow the official checkpoints' ``memory_attention.*``
entries.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn
from torch.nn import functional as F

from .common import attention
from .rope import apply_axial_rope, axial_rope_table, grid_side, rope_cos_sin, rotate_framed_keys


class RopeAttention(nn.Module):
    """Multi-head attention whose queries and keys get 2-D axial RoPE.

    Queries are ``dim`` wide, keys/values ``kv_dim`` wide (projected to
    ``dim``). The RoPE table of the ``feat_size`` x ``feat_size`` grid is
    built up front; other square grids get theirs on first use. Tables are
    computed on the CPU (as the reference does) and then copied per device.

    With ``key_grid`` set (EdgeTAM's cross-attention) the keys are frames of
    ``key_frame_tokens`` tokens each, and only the last ``key_grid**2`` of
    every frame are rotated, by the angles of a ``key_grid`` x ``key_grid`` grid.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 1,
        kv_dim: int | None = None,
        feat_size: int = 64,
        rope_theta: float = 10000.0,
        key_grid: int | None = None,
        key_frame_tokens: int = 0,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError("num_heads must divide dim")
        kv_dim = dim if kv_dim is None else kv_dim
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.rope_theta = rope_theta
        self.feat_size = feat_size
        self.key_grid = key_grid
        self.key_frame_tokens = key_frame_tokens
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(kv_dim, dim)
        self.v_proj = nn.Linear(kv_dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        self._tables: dict[tuple[int, str], torch.Tensor] = {}
        self._cos_sin: dict[tuple[int, str, torch.dtype], tuple[torch.Tensor, torch.Tensor]] = {}
        self.rope_table(feat_size, torch.device("cpu"))

    def rope_table(self, side: int, device: torch.device) -> torch.Tensor:
        """(side*side, head_dim/2, 2) float32 RoPE table on ``device`` (cached)."""
        key = (side, str(device))
        if key not in self._tables:
            with torch.inference_mode(False), torch.no_grad():
                self._fill_table(side, device)
        return self._tables[key]

    def _fill_table(self, side: int, device: torch.device) -> None:
        cpu_key = (side, "cpu")
        if cpu_key not in self._tables:
            self._tables[cpu_key] = axial_rope_table(self.head_dim, side, self.rope_theta)
        self._tables[(side, str(device))] = self._tables[cpu_key].to(device)

    def rope_cos_sin(self, side: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """The table as per-channel (side*side, head_dim) cosines and signed sines in ``dtype`` (cached)."""
        key = (side, str(device), dtype)
        if key not in self._cos_sin:
            # ordinary tensors even when first asked for under inference_mode, so that the
            # cache also serves code that runs with autograd
            with torch.inference_mode(False), torch.no_grad():
                self._cos_sin[key] = rope_cos_sin(self.rope_table(side, device), dtype)
        return self._cos_sin[key]

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, heads*d) -> (B, heads, N, d)."""
        return x.unflatten(-1, (self.num_heads, self.head_dim)).transpose(1, 2)

    def forward(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        num_k_exclude_rope: int = 0,
    ) -> torch.Tensor:
        """Batch-first attention.

        Args:
            q: (B, Nq, dim) queries on a square grid, row-major (x fastest).
            k: (B, Nk, kv_dim) keys: r whole grids of Nq tokens, then
                ``num_k_exclude_rope`` tokens that get no RoPE.
            v: (B, Nk, kv_dim) values.
        Returns:
            (B, Nq, dim).
        """
        q = self._split(self.q_proj(q))
        k = self._split(self.k_proj(k))
        v = self._split(self.v_proj(v))
        side = grid_side(q.shape[-2])
        table = self.rope_table(side, q.device)
        if self.key_grid is None:
            q, k = apply_axial_rope(q, k, table, num_k_exclude_rope, self.rope_cos_sin(side, q.device, q.dtype))
        else:
            q, _ = apply_axial_rope(q, k[..., :0, :], table, 0, self.rope_cos_sin(side, q.device, q.dtype))
            key_cos_sin = self.rope_cos_sin(self.key_grid, q.device, k.dtype)
            k = rotate_framed_keys(k, key_cos_sin, self.key_frame_tokens, num_k_exclude_rope)
        out = attention(q, k, v)  # (B, heads, Nq, d)
        return self.out_proj(out.transpose(1, 2).flatten(2))


class MemoryAttentionLayer(nn.Module):
    """Pre-norm layer: RoPE self-attention, RoPE cross-attention to memory, ReLU FFN."""

    def __init__(
        self,
        d_model: int,
        mem_dim: int,
        ffn_dim: int,
        num_heads: int = 1,
        feat_size: int = 64,
        rope_theta: float = 10000.0,
        key_grid: int | None = None,
        key_frame_tokens: int = 0,
    ) -> None:
        super().__init__()
        self.self_attn = RopeAttention(d_model, num_heads, None, feat_size, rope_theta)
        self.cross_attn_image = RopeAttention(
            d_model, num_heads, mem_dim, feat_size, rope_theta, key_grid, key_frame_tokens
        )
        self.linear1 = nn.Linear(d_model, ffn_dim)
        self.linear2 = nn.Linear(ffn_dim, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        memory_pos: torch.Tensor,
        num_obj_ptr_tokens: int = 0,
    ) -> torch.Tensor:
        """Batch-first.

        Args:
            x: (B, HW, d_model) current-frame tokens.
            memory: (B, M, mem_dim) memory tokens (spatial frames, then pointers).
            memory_pos: (B, M, mem_dim) their position encodings.
            num_obj_ptr_tokens: trailing memory tokens excluded from RoPE.
        Returns:
            (B, HW, d_model).
        """
        return self.attend_memory(self.attend_self(x), memory, memory_pos, num_obj_ptr_tokens)

    def attend_self(self, x: torch.Tensor) -> torch.Tensor:
        """(B, HW, d_model) -> the same after the self-attention block (no memory involved)."""
        h = self.norm1(x)
        return x + self.self_attn(h, h, h)

    def attend_memory(self, x: torch.Tensor, memory: torch.Tensor, memory_pos: torch.Tensor,
                      num_obj_ptr_tokens: int = 0) -> torch.Tensor:
        """The cross-attention and feed-forward blocks (arguments as in :meth:`forward`)."""
        h = self.norm2(x)
        x = x + self.cross_attn_image(h, memory + memory_pos, memory, num_obj_ptr_tokens)
        h = self.norm3(x)
        return x + self.linear2(F.relu(self.linear1(h)))


class MemoryAttention(nn.Module):
    """The memory attention stack (``num_layers`` layers and a final LayerNorm).

    Official SAM 2 / 2.1 settings: d_model 256, mem_dim 64, 4 layers, ffn 2048,
    1 head, a 64 x 64 token grid. EdgeTAM: 2 layers, ``key_grid`` 16 and
    ``key_frame_tokens`` 512 (see :class:`RopeAttention`).
    """

    def __init__(
        self,
        d_model: int = 256,
        mem_dim: int = 64,
        num_layers: int = 4,
        ffn_dim: int = 2048,
        feat_size: int = 64,
        num_heads: int = 1,
        rope_theta: float = 10000.0,
        key_grid: int | None = None,
        key_frame_tokens: int = 0,
    ) -> None:
        super().__init__()
        self.d_model = d_model
        self.mem_dim = mem_dim
        self.layers = nn.ModuleList(
            MemoryAttentionLayer(
                d_model, mem_dim, ffn_dim, num_heads, feat_size, rope_theta, key_grid, key_frame_tokens
            )
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model)

    def forward(
        self,
        curr: torch.Tensor,
        curr_pos: torch.Tensor | None,
        memory: torch.Tensor,
        memory_pos: torch.Tensor,
        num_obj_ptr_tokens: int = 0,
        start: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Condition current-frame tokens on the memory bank. Sequence-first tensors.

        Args:
            curr: (HW, B, d_model) current stride-16 features, row-major tokens
                of a square grid (``feats.flatten(2).permute(2, 0, 1)``).
            curr_pos: (HW, B, d_model) their sine position encoding (0.1x of it
                is added to the input), or None.
            memory: (M, B, mem_dim) memory tokens: r spatial memories of HW
                tokens each, then ``num_obj_ptr_tokens`` object-pointer tokens.
                May be stored in another dtype (e.g. bfloat16); it is cast to
                ``curr``'s dtype.
            memory_pos: (M, B, mem_dim) position encodings of the memory
                (spatial + temporal), cast like ``memory``.
            num_obj_ptr_tokens: number of trailing memory tokens without RoPE.
            start: :meth:`shared_start` of ``curr`` and ``curr_pos`` (batch 1), when the caller
                already has it -- then ``curr`` only gives the batch size and dtype.
        Returns:
            (HW, B, d_model) memory-conditioned features.
        """
        if curr.shape[1] != memory.shape[1]:
            raise ValueError("curr and memory must have the same batch size")
        memory = memory.to(curr.dtype).transpose(0, 1)
        memory_pos = memory_pos.to(curr.dtype).transpose(0, 1)
        first = cast(MemoryAttentionLayer, self.layers[0])
        if start is None:
            x = curr if curr_pos is None else curr + 0.1 * curr_pos
            x = first.attend_self(x.transpose(0, 1))
        else:
            x = start.expand(curr.shape[1], -1, -1)
        x = first.attend_memory(x, memory, memory_pos, num_obj_ptr_tokens)
        for layer in self.layers[1:]:
            x = layer(x, memory, memory_pos, num_obj_ptr_tokens)
        return self.norm(x).transpose(0, 1)

    def shared_start(self, curr: torch.Tensor, curr_pos: torch.Tensor | None) -> torch.Tensor:
        """What every object of a frame computes alike: the input tokens (+ 0.1x their positions)
        through the first layer's self-attention. (HW, B, d_model) in -> (1, HW, d_model) batch-first,
        from the first batch entry: for callers whose batch is one frame's objects."""
        x = curr[:, :1] if curr_pos is None else curr[:, :1] + 0.1 * curr_pos[:, :1]
        return cast(MemoryAttentionLayer, self.layers[0]).attend_self(x.transpose(0, 1))
