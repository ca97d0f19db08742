"""One tracking step of SAM 2 on tensors: memory conditioning, SAM heads, memory encoding.

These functions do the arithmetic of Meta's video model for one object on one
frame. Which memories and object pointers to pass in (and in what order) is
decided by the caller (:mod:`napari_sam2.engine.tracking.session`); nothing here keeps
state across frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from .mask_decoder import select_masks
from .sam2 import ImageEmbedding, Sam2Model

#: Logit written over every pixel of a frame where the object is absent.
NO_OBJECT_LOGIT = -1024.0
#: Logits a given mask stands for: +MASK_LOGIT inside, -MASK_LOGIT outside (a mask used as the output).
MASK_LOGIT = 10.0


@dataclass
class HeadOutput:
    """What the SAM heads produce for B objects on one frame.

    ``lowres`` (B, 1, 4G, 4G) float32 logits of the chosen mask, ``obj_ptr``
    (B, C) object pointers, ``object_score`` (B, 1) presence logits, ``iou``
    (B, 1) the decoder's predicted IoU of the chosen mask (1 for a mask prompt).
    """

    lowres: torch.Tensor
    obj_ptr: torch.Tensor
    object_score: torch.Tensor
    iou: torch.Tensor | None = None


def sine_1d(pos: torch.Tensor, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """(N,) positions -> (N, dim): sines in the first half, cosines in the second."""
    half = dim // 2
    idx = torch.arange(half, dtype=torch.float32, device=pos.device)
    freqs = temperature ** (2 * torch.div(idx, 2, rounding_mode="floor") / half)
    angles = pos[:, None] / freqs
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


@dataclass
class MemoryBank:
    """What one object attends to on one frame, in attention order.

    ``memories``: (t_pos, features (1, mem_dim, G, G)) pairs; t_pos 0 for
    conditioning frames, 1 (oldest) ... 6 (newest) for recent frames.
    ``pointers``: (signed or absolute temporal distance, pointer (1, C)) pairs.
    """

    memories: list[tuple[int, torch.Tensor]]
    pointers: list[tuple[int, torch.Tensor]]

    @property
    def layout(self) -> tuple[int, int]:
        """(memory frames, pointers): banks with equal layouts have equal token counts."""
        return len(self.memories), len(self.pointers)


def _bank_tokens(net: Sam2Model, bank: MemoryBank, pos_tokens: torch.Tensor, c: int, max_ptrs: int,
                 dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(M, 1, mem_dim) memory tokens and positions of one bank, and its pointer-token count."""
    cfg = net.cfg
    mem_tokens, mem_pos = [], []
    for t_pos, feats in bank.memories:
        mem_tokens.append(feats.to(dtype).flatten(2).permute(2, 0, 1))
        mem_pos.append(pos_tokens + net.maskmem_tpos_enc[cfg.num_maskmem - t_pos - 1].to(dtype))
    n_ptr_tokens = 0
    if bank.pointers:
        device = pos_tokens.device
        dists = torch.tensor([d for d, _ in bank.pointers], dtype=torch.float32, device=device)
        ptrs = torch.stack([p for _, p in bank.pointers], dim=0).to(dtype)  # (P, 1, C)
        if cfg.is_v21:
            # Distances are normalised by (max_ptrs - 1) as in SAM 2.1; with one frame (max_ptrs 1) the only
            # pointer is at distance 0, whose position is 0: dividing by 1 keeps every finite value of the
            # reference and avoids its 0 / 0 (NaN positions, then an empty mask).
            enc = sine_1d(dists / max(max_ptrs - 1, 1), c).to(net.dtype)
            ptr_pos = net.obj_ptr_tpos_proj(enc)[:, None, :].to(dtype)  # (P, 1, mem_dim)
        else:
            ptr_pos = ptrs.new_zeros(len(bank.pointers), 1, cfg.mem_dim)
        split = c // cfg.mem_dim  # each pointer becomes `split` tokens of mem_dim
        ptrs = ptrs.reshape(-1, 1, split, cfg.mem_dim).permute(0, 2, 1, 3).flatten(0, 1)
        ptr_pos = ptr_pos.repeat_interleave(split, dim=0)
        mem_tokens.append(ptrs)
        mem_pos.append(ptr_pos)
        n_ptr_tokens = ptrs.shape[0]
    return torch.cat(mem_tokens, dim=0), torch.cat(mem_pos, dim=0), n_ptr_tokens


def condition_on_memory(
    net: Sam2Model,
    emb: ImageEmbedding,
    banks: list[MemoryBank],
    memory_pos: torch.Tensor,
    max_ptrs: int,
) -> torch.Tensor:
    """Stride-16 features of one frame after attending to each object's memory.

    Args:
        emb: the frame's embedding (batch of 1).
        banks: one :class:`MemoryBank` per object, all with the same ``layout``
            (they run as one batch through memory attention).
        memory_pos: (1, mem_dim, G, G) position encoding shared by all memories.
        max_ptrs: the normalising pointer count, ``min(num_frames, 16)``.

    Returns:
        (B, C, G, G) features for the SAM heads, B = ``len(banks)``, in ``net.dtype``.
    """
    if len({bank.layout for bank in banks}) != 1:
        raise ValueError("memory banks of one batch must have the same layout")
    b = len(banks)
    _, c, g, _ = emb.embed.shape
    dtype = net.memory_dtype
    curr = emb.embed.to(dtype).flatten(2).permute(2, 0, 1).expand(-1, b, -1)  # (HW, B, C)
    curr_pos = emb.pos.to(dtype).flatten(2).permute(2, 0, 1).expand(-1, b, -1)
    pos_tokens = memory_pos.flatten(2).permute(2, 0, 1).to(dtype)
    parts = [_bank_tokens(net, bank, pos_tokens, c, max_ptrs, dtype) for bank in banks]
    out = net.memory_attention(
        curr=curr,
        curr_pos=curr_pos,
        memory=torch.cat([t for t, _, _ in parts], dim=1),
        memory_pos=torch.cat([p for _, p, _ in parts], dim=1),
        num_obj_ptr_tokens=parts[0][2],
        start=net.frame_start(emb.embed, lambda: net.memory_attention.shared_start(curr, curr_pos)),
    )
    return out.permute(1, 2, 0).reshape(b, c, g, g).to(net.dtype)


def sam_heads(
    net: Sam2Model,
    features: torch.Tensor,
    high_res: tuple[torch.Tensor, torch.Tensor],
    points: tuple[torch.Tensor, torch.Tensor] | None,
    mask_logits: torch.Tensor | None,
    multimask: bool,
) -> HeadOutput:
    """Decode B objects on one frame the way the video model does.

    ``features`` (B, C, G, G); ``high_res`` of the frame (batch 1 or B);
    ``points`` (B, N, 2) and (B, N) or None; ``mask_logits`` (B, 1, h, w) or
    None. Unlike single-image prediction, a frame without clicks gets a
    padding point; the object pointer follows the chosen mask token; an
    absent object gets :data:`NO_OBJECT_LOGIT` everywhere and the learned
    ``no_obj_ptr``. Returns a :class:`HeadOutput` of batch B.
    """
    cfg = net.cfg
    b = features.shape[0]
    if points is None:
        points = (
            torch.zeros(b, 1, 2, device=features.device),
            torch.full((b, 1), -1, dtype=torch.int32, device=features.device),
        )
    if mask_logits is not None:
        side = 4 * cfg.feat_size
        if mask_logits.shape[-2:] != (side, side):
            mask_logits = F.interpolate(
                mask_logits.float(), size=(side, side), mode="bilinear", align_corners=False, antialias=True
            )
    out = net.decode(features, high_res, points, mask_logits)
    present = out.object_score > 0  # (B, 1)
    if multimask:
        masks, ious = out.masks[:, 1:], out.iou[:, 1:]
        best = ious.argmax(dim=-1)
        rows = torch.arange(b, device=best.device)
        lowres = masks[rows, best][:, None]
        iou = ious[rows, best][:, None]
        token = out.mask_tokens[:, 1:][rows, best]
    else:
        lowres, iou = select_masks(out, False, cfg.stability_delta, cfg.stability_thresh)
        token = out.mask_tokens[:, 0]
    lowres = torch.where(present[:, :, None, None], lowres, torch.full_like(lowres, NO_OBJECT_LOGIT)).float()
    ptr = net.obj_ptr_proj(token)
    weight = present.to(ptr.dtype)
    ptr = weight * ptr + (1 - weight) * net.no_obj_ptr
    return HeadOutput(lowres=lowres, obj_ptr=ptr, object_score=out.object_score.float(), iou=iou.float())


def mask_as_output(net: Sam2Model, emb: ImageEmbedding, mask_hr: torch.Tensor) -> HeadOutput:
    """Use (B, 1, S, S) binary mask prompts (B objects on one frame) directly as the frame's output.

    Logits are +10 inside and -10 outside; the pointer comes from decoding
    the raw (not memory-conditioned) features with the mask as dense prompt.
    """
    m = mask_hr.float()
    hr = m * (2 * MASK_LOGIT) - MASK_LOGIT
    side = hr.shape[-1] // 4
    lowres = F.interpolate(hr, size=(side, side), mode="bilinear", align_corners=False, antialias=True)
    feats = emb.embed.expand(m.shape[0], -1, -1, -1)  # B masks on one frame
    heads = sam_heads(net, feats, emb.high_res, None, net.mask_downsample(m.to(net.dtype)), False)
    present = (m.flatten(1) > 0).any(dim=1, keepdim=True).float()
    ptr = present * heads.obj_ptr + (1 - present) * net.no_obj_ptr
    score = (2 * MASK_LOGIT) * present - MASK_LOGIT
    return HeadOutput(lowres=lowres, obj_ptr=ptr, object_score=score, iou=torch.ones_like(present))


def encode_memory(
    net: Sam2Model, emb: ImageEmbedding, lowres: torch.Tensor, object_score: torch.Tensor, binarize: bool
) -> torch.Tensor:
    """The memories of B objects on one frame: (B, mem_dim, G, G), stored in bfloat16 as SAM 2 does
    (EdgeTAM: (B, mem_dim, 512), the spatial perceiver's tokens).

    ``lowres`` (B, 1, 4G, 4G) logits are upsampled to the model frame; with
    ``binarize`` (frames with user clicks) the mask is thresholded first.
    ``object_score`` (B, 1); ``emb`` the frame's embedding (batch 1).
    """
    cfg = net.cfg
    b = lowres.shape[0]
    hr = F.interpolate(lowres.float(), size=(cfg.image_size,) * 2, mode="bilinear", align_corners=False)
    mask = (hr > 0).float() if binarize else torch.sigmoid(hr)
    mask = mask * cfg.sigmoid_scale_for_mem_enc + cfg.sigmoid_bias_for_mem_enc
    feats, pos = net.memory_encoder(emb.embed.to(net.memory_dtype).expand(b, -1, -1, -1), mask)
    if cfg.is_v21:
        absent = (object_score <= 0).to(feats.dtype)  # (B, 1)
        feats = feats + absent[..., None, None] * net.no_obj_embed_spatial[..., None, None].to(feats.dtype)
    perceiver = net.spatial_perceiver
    if perceiver is not None:  # EdgeTAM: (B, mem_dim, 512) perceiver tokens
        feats = perceiver.compress(feats, pos)
    return feats.to(torch.bfloat16)


def memory_position(net: Sam2Model, emb: ImageEmbedding) -> torch.Tensor:
    """The (1, mem_dim, G, G) position encoding of every memory (the same for all frames);
    (1, mem_dim, 512) for EdgeTAM's perceiver tokens."""
    if net.spatial_perceiver is not None:
        return net.spatial_perceiver.token_positions(emb.embed.device)
    g = emb.embed.shape[-1]
    return net.memory_encoder.position_encoding.grid(g, g, emb.embed.device)[None]


def max_pointers(net: Sam2Model, num_frames: int) -> int:
    """How many object pointers the model attends to in a stack of ``num_frames``."""
    return min(num_frames, net.cfg.max_obj_ptrs)


__all__ = [
    "HeadOutput", "MemoryBank", "NO_OBJECT_LOGIT", "condition_on_memory", "encode_memory", "mask_as_output",
    "max_pointers", "memory_position", "sam_heads", "sine_1d",
]
