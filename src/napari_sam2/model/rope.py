"""Two-dimensional axial rotary position encoding (RoPE) for square token grids.

SAM 2's memory attention rotates its queries and keys by angles that depend on
the (x, y) cell of each token in the stride-16 feature grid. Every attention
head's channels are read as ``head_dim / 2`` consecutive pairs (2i, 2i + 1),
each pair being one complex number. The first ``head_dim / 4`` pairs turn with
the token's column x, the last ``head_dim / 4`` with its row y; pair j of
either half turns at frequency ``theta ** (-4 j / head_dim)``.

Tokens are numbered row by row (x runs fastest), as produced by
``flatten(2)`` of a (B, C, H, W) map.

The frequency table is kept in real form, i.e. the (cos, sin) pair of each
complex unit factor ``exp(i * angle)``, so the rotation needs no complex
kernels and runs the same on CPU, CUDA and MPS.
"""

from __future__ import annotations

import math

import torch


def axial_rope_angles(head_dim: int, side: int, theta: float = 10000.0) -> torch.Tensor:
    """Rotation angles of every token of a ``side`` x ``side`` grid.

    Returns a float32 tensor of shape (side * side, head_dim // 2), tokens in
    row-major order (x fastest); columns ``[0, head_dim/4)`` hold the x angles
    and columns ``[head_dim/4, head_dim/2)`` the y angles.
    """
    if head_dim % 4:
        raise ValueError(f"axial RoPE needs a head width divisible by 4, got {head_dim}")
    quarter = head_dim // 4
    exponents = (torch.arange(quarter, dtype=torch.float32) * 4) / head_dim
    inv_freq = 1.0 / (theta**exponents)  # (head_dim/4,)
    token = torch.arange(side * side, dtype=torch.float32)
    col = token % side
    row = torch.div(token, side, rounding_mode="floor")
    return torch.cat((torch.outer(col, inv_freq), torch.outer(row, inv_freq)), dim=-1)


def axial_rope_table(
    head_dim: int,
    side: int,
    theta: float = 10000.0,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Complex unit factors ``exp(i * angle)`` of a ``side`` x ``side`` grid, in real form.

    Returns float32 of shape (side * side, head_dim // 2, 2) where ``[..., 0]``
    is the cosine (real part) and ``[..., 1]`` the sine (imaginary part); this
    equals ``torch.view_as_real(torch.polar(ones, axial_rope_angles(...)))``.
    """
    angles = axial_rope_angles(head_dim, side, theta)
    return torch.stack((angles.cos(), angles.sin()), dim=-1).to(device)


def grid_side(num_tokens: int) -> int:
    """Side of the square grid holding ``num_tokens`` tokens (error if not square)."""
    side = math.isqrt(num_tokens)
    if side * side != num_tokens:
        raise ValueError(f"axial RoPE needs a square token grid, got {num_tokens} tokens")
    return side


def _swap_pairs(x: torch.Tensor) -> torch.Tensor:
    """(..., D) -> (..., D) with every channel pair (2i, 2i + 1) swapped."""
    return x.unflatten(-1, (-1, 2)).flip(-1).flatten(-2)


def rope_cos_sin(table: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, D/2, 2) table -> per-channel (N, D) cosines and signed sines (-sin, +sin per pair), in ``dtype``."""
    cos = table[..., 0].repeat_interleave(2, dim=-1)
    sin = torch.stack((-table[..., 1], table[..., 1]), dim=-1).flatten(-2)
    return cos.to(dtype), sin.to(dtype)


def _rotate_into(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """out = x rotated pairwise: (re, im) -> (re cos - im sin, im cos + re sin), in x's dtype.

    ``cos``/``sin`` (N, D) broadcast against the last two axes of x (..., N, D).
    """
    torch.mul(x, cos, out=out)
    return out.addcmul_(_swap_pairs(x), sin)


def apply_axial_rope(
    q: torch.Tensor,
    k: torch.Tensor,
    table: torch.Tensor,
    num_k_exclude: int = 0,
    cos_sin: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate queries and keys by their grid positions.

    Args:
        q: (B, heads, Nq, head_dim) queries, one per grid cell (Nq = side**2).
        k: (B, heads, Nk, head_dim) keys. The first ``Nk - num_k_exclude``
            keys must be r >= 1 whole grids (r memory frames of Nq tokens each,
            frame by frame); each frame gets the same rotation as the queries.
            The last ``num_k_exclude`` keys (object pointers) are left as is.
        table: (Nq, head_dim // 2, 2) float32 from :func:`axial_rope_table`.
        num_k_exclude: number of trailing keys not to rotate.
        cos_sin: :func:`rope_cos_sin` of ``table`` in the inputs' dtype and
            device, if the caller keeps it (else computed here).

    Returns:
        (q, k) rotated, same shapes and dtypes as the inputs. The table is
        float32; the rotation itself runs in the inputs' dtype (float32 for
        exact results; in 16-bit mode each product is rounded once, like the
        matrix products around it).
    """
    n_q = q.shape[-2]
    if table.shape[0] != n_q or table.shape[1] * 2 != q.shape[-1]:
        raise ValueError(
            f"RoPE table {tuple(table.shape)} does not fit queries {tuple(q.shape)}"
        )
    cos, sin = cos_sin if cos_sin is not None else rope_cos_sin(table.to(q.device), q.dtype)
    q_out = _rotate_into(q, cos, sin, torch.empty_like(q, memory_format=torch.contiguous_format))

    n_rot = k.shape[-2] - num_k_exclude
    if n_rot < 0:
        raise ValueError(f"cannot exclude {num_k_exclude} of {k.shape[-2]} keys from RoPE")
    if n_rot == 0:
        return q_out, k
    if n_rot % n_q:
        raise ValueError(
            f"{n_rot} rotated keys are not a whole number of {n_q}-token grids"
        )
    frames = n_rot // n_q
    k_out = torch.empty_like(k, memory_format=torch.contiguous_format)
    if num_k_exclude:
        k_out[..., n_rot:, :] = k[..., n_rot:, :]
    # every memory frame is one grid: broadcast the table over frames, no copy
    grids = (*k.shape[:-2], frames, n_q, k.shape[-1])
    _rotate_into(k[..., :n_rot, :].reshape(grids), cos, sin, k_out[..., :n_rot, :].view(grids))
    return q_out, k_out


def rotate_framed_keys(
    k: torch.Tensor,
    cos_sin: tuple[torch.Tensor, torch.Tensor],
    frame_tokens: int,
    num_k_exclude: int = 0,
) -> torch.Tensor:
    """Rotate keys laid out as memory frames whose grid follows some unrotated tokens (EdgeTAM).

    Args:
        k: (B, heads, Nk, head_dim) keys: r frames of ``frame_tokens`` tokens
            each, then ``num_k_exclude`` tokens (object pointers) left as is.
            In every frame the first ``frame_tokens - n`` tokens are left as is
            and the last n are the cells of the key grid, row-major.
        cos_sin: :func:`rope_cos_sin` of the key grid's table (n rows) in k's
            dtype and device.
    Returns:
        (B, heads, Nk, head_dim), k's dtype.
    """
    cos, sin = cos_sin
    n_grid = cos.shape[0]
    skip = frame_tokens - n_grid
    n_rot = k.shape[-2] - num_k_exclude
    if skip < 0 or n_rot < 0 or n_rot % frame_tokens:
        raise ValueError(
            f"{k.shape[-2]} keys ({num_k_exclude} excluded) are not whole frames of {frame_tokens} tokens "
            f"ending in a {n_grid}-cell grid"
        )
    out = k.clone(memory_format=torch.contiguous_format)
    frames = (*k.shape[:-2], n_rot // frame_tokens, frame_tokens, k.shape[-1])
    grid_in = k[..., :n_rot, :].reshape(frames)[..., skip:, :]
    grid_out = out[..., :n_rot, :].view(frames)[..., skip:, :]
    grid_out.copy_(grid_in * cos + _swap_pairs(grid_in) * sin)
    return out
