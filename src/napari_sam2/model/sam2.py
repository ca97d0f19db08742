"""The SAM 2 network: every learned part, under the official parameter names.

This module only wires the parts together and runs them on tensors in the
model's own frame (``image_size`` x ``image_size`` inputs, (x, y) prompt
coordinates in that frame). Reading images, resizing, coordinate
conventions and state across frames belong to :mod:`napari_sam2.engine`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from .common import FeedForward
from .config import Sam2Config
from .image_encoder import ImageEncoder
from .mask_decoder import DecoderOutput, MaskDecoder
from .memory_attention import MemoryAttention
from .memory_encoder import MemoryEncoder
from .perceiver import SpatialPerceiver
from .prompt_encoder import PromptEncoder


@dataclass
class ImageEmbedding:
    """Image features of B frames, ready for the decoder and the memory.

    ``embed`` (B, C, G, G) stride-16 features (before any memory or
    no-memory embedding is added), ``pos`` (B, C, G, G) their position
    encoding, ``high_res`` the stride-4 (B, C/8, 4G, 4G) and stride-8
    (B, C/4, 2G, 2G) features already projected for the decoder.
    """

    embed: torch.Tensor
    pos: torch.Tensor
    high_res: tuple[torch.Tensor, torch.Tensor]

    def select(self, index: int) -> ImageEmbedding:
        """The embedding of frame ``index`` of the batch, keeping a batch axis of 1."""
        sl = slice(index, index + 1)
        return ImageEmbedding(self.embed[sl], self.pos[sl], (self.high_res[0][sl], self.high_res[1][sl]))

    def to(self, device: torch.device | str) -> ImageEmbedding:
        return ImageEmbedding(
            self.embed.to(device), self.pos.to(device), (self.high_res[0].to(device), self.high_res[1].to(device))
        )

    @property
    def nbytes(self) -> int:
        """Memory held by this embedding. ``pos`` is not counted: it is a view of
        one grid shared by every frame of the same size."""
        tensors = (self.embed, *self.high_res)
        return sum(t.numel() * t.element_size() for t in tensors)


class Sam2Model(nn.Module):
    """SAM 2 / 2.1 with the parameter layout of Meta's checkpoints.

    Build it from a :class:`Sam2Config`; an official ``state_dict`` then
    loads with ``strict=True`` and no renaming.
    """

    def __init__(self, cfg: Sam2Config) -> None:
        super().__init__()
        self.cfg = cfg
        d, m = cfg.d_model, cfg.mem_dim
        self.image_encoder = ImageEncoder(cfg)
        self.sam_prompt_encoder = PromptEncoder(d, cfg.feat_size, cfg.image_size, cfg.mask_in_chans)
        self.sam_mask_decoder = MaskDecoder(d, cfg.decoder_depth, cfg.decoder_heads, cfg.decoder_mlp_dim)
        perceiver = cfg.perceiver  # EdgeTAM: memories are perceiver tokens, RoPE on their window grid
        self.memory_attention = MemoryAttention(
            d_model=d, mem_dim=m, num_layers=cfg.memory_layers, ffn_dim=cfg.memory_ffn_dim, feat_size=cfg.feat_size,
            key_grid=perceiver.grid_side if perceiver else None, key_frame_tokens=perceiver.tokens if perceiver else 0,
        )
        self.memory_encoder = MemoryEncoder(d_model=d, mem_dim=m)
        # learned embeddings used by image prediction and tracking
        self.maskmem_tpos_enc = nn.Parameter(torch.zeros(cfg.num_maskmem, 1, 1, m))
        self.no_mem_embed = nn.Parameter(torch.zeros(1, 1, d))
        self.no_mem_pos_enc = nn.Parameter(torch.zeros(1, 1, d))
        self.no_obj_ptr = nn.Parameter(torch.zeros(1, d))
        self.mask_downsample = nn.Conv2d(1, 1, kernel_size=4, stride=4)
        self.obj_ptr_proj = FeedForward(d, d, d, 3)
        if cfg.is_v21:
            self.no_obj_embed_spatial = nn.Parameter(torch.zeros(1, m))
            self.obj_ptr_tpos_proj = nn.Linear(d, m)
        # EdgeTAM: memories compressed to perceiver tokens (None for SAM 2)
        self.spatial_perceiver = SpatialPerceiver(cfg.perceiver) if cfg.perceiver is not None else None
        self._positions: dict[tuple, torch.Tensor] = {}
        #: (embedding, memory dtype, start) of the last frame through memory attention (see frame_start)
        self._frame_start: tuple[torch.Tensor, torch.dtype, torch.Tensor] | None = None

    @property
    def device(self) -> torch.device:
        return self.no_mem_embed.device

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the precision-critical parts: prompt encoder, mask decoder,
        memory encoder, object pointers and the learned embeddings."""
        return self.no_mem_embed.dtype

    @property
    def compute_dtype(self) -> torch.dtype:
        """The dtype of the image encoder and of the image embeddings it makes."""
        return next(self.image_encoder.parameters()).dtype

    @property
    def memory_dtype(self) -> torch.dtype:
        """The dtype of memory attention and the memory encoder."""
        return self.memory_attention.norm.weight.dtype

    def set_compute_dtype(self, dtype: torch.dtype, memory: torch.dtype | None = None) -> Sam2Model:
        """Run the image encoder in ``dtype``, memory attention and the memory encoder in ``memory``
        (default: ``dtype``) — mixed precision.

        These parts hold nearly all of the arithmetic, and SAM 2 stores the
        memories in bfloat16 anyway. Everything that decides a mask's outline
        or whether an object is present (prompt encoder, mask decoder with its
        IoU and object-score heads, object pointers, the mask upsampling) stays
        in :attr:`dtype`. Returns ``self``.
        """
        self.image_encoder.to(dtype)
        self.memory_attention.to(memory or dtype)
        self.memory_encoder.to(memory or dtype)
        if self.spatial_perceiver is not None:  # EdgeTAM: part of the memory side
            self.spatial_perceiver.to(memory or dtype)
        return self

    def frame_start(self, embed: torch.Tensor, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        """The memory-free start of memory attention for the frame whose (1, C, G, G) embedding is ``embed``
        (:meth:`MemoryAttention.shared_start`), computed once for all the frame's objects: the last
        frame's is kept, keyed by the embedding tensor itself and the memory dtype."""
        key = (embed, self.memory_dtype)
        cached = self._frame_start
        if cached is None or cached[0] is not embed or cached[1] != self.memory_dtype:
            self._frame_start = cached = (*key, compute())
        return cached[2]

    def shared_position(self, pos: torch.Tensor) -> torch.Tensor:
        """One copy of the (B, C, G, G) position grid per shape, dtype and device, shared by every
        embedding (a cached frame then holds only its own features)."""
        key = (tuple(pos.shape[1:]), pos.dtype, str(pos.device))
        cached = self._positions.get(key)
        if cached is None:
            with torch.inference_mode(False), torch.no_grad():
                cached = self._positions[key] = pos[:1].clone()
        return cached.expand(pos.shape[0], -1, -1, -1)

    def compile_heavy_parts(self) -> Sam2Model:
        """``torch.compile`` the image encoder and memory attention in place.

        The image encoder sees one input shape; memory attention sees a memory
        bank that grows over the first frames, so it is compiled for dynamic
        shapes. Returns ``self``.
        """
        self.image_encoder.compile(dynamic=False)
        self.memory_attention.compile(dynamic=True)
        return self

    def encode_image(self, images: torch.Tensor) -> ImageEmbedding:
        """Run the image encoder on (B, 3, S, S) normalised images.

        The embedding is kept in :attr:`compute_dtype`; the decoder's two
        stride-4/8 projections run in :attr:`dtype` and are stored likewise.
        """
        dec = self.sam_mask_decoder
        feats = self.image_encoder(images.to(self.compute_dtype), fine_projections=(dec.conv_s0, dec.conv_s1))
        s0, s1 = feats.levels[0], feats.levels[1]
        # one memory layout (row-major NCHW) whatever the kernels returned, so that an
        # embedding read back from disk gives bit-identical results downstream
        return ImageEmbedding(
            embed=feats.levels[2].contiguous(),
            pos=self.shared_position(feats.position),
            high_res=(s0.to(self.compute_dtype).contiguous(), s1.to(self.compute_dtype).contiguous()),
        )

    def decode(
        self,
        image_embed: torch.Tensor,
        high_res: tuple[torch.Tensor, torch.Tensor],
        points: tuple[torch.Tensor, torch.Tensor] | None,
        mask_logits: torch.Tensor | None,
    ) -> DecoderOutput:
        """Run prompt encoder + mask decoder.

        ``image_embed`` (B, C, G, G) as the decoder should see it (memory-
        conditioned, or with ``no_mem_embed`` added); ``points`` a pair of
        (B, N, 2) (x, y) coordinates in the model frame and (B, N) int
        labels (box corners as labels 2 and 3, first); ``mask_logits``
        (B, 1, 4G, 4G) or None.
        """
        batch = image_embed.shape[0]
        dt = self.dtype
        image_embed = image_embed.to(dt)
        high_res = (high_res[0].to(dt), high_res[1].to(dt))
        if mask_logits is not None:
            mask_logits = mask_logits.to(dt)
        sparse, dense = self.sam_prompt_encoder(points, mask_logits, batch=batch)
        pe = self.sam_prompt_encoder.dense_positions().to(dt)
        return self.sam_mask_decoder(image_embed, pe, sparse.to(dt), dense.to(dt), high_res)

    def image_embed_without_memory(self, emb: ImageEmbedding) -> torch.Tensor:
        """Stride-16 features of a frame seen without memory: + ``no_mem_embed`` (in :attr:`dtype`)."""
        return emb.embed.to(self.dtype) + self.no_mem_embed.view(1, -1, 1, 1)
