"""Architecture settings of the eight official SAM 2 / 2.1 variants and of EdgeTAM.

Everything that changes the parameter shapes or the numbers lives here as a
small frozen dataclass; nothing is read from YAML at run time.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class HieraConfig:
    """The Hiera image trunk.

    ``stages`` counts blocks per stage; ``global_att_blocks`` are block
    indices with global (un-windowed) attention; ``window_spec`` is the
    window size per stage; ``pos_embed_bkg_size`` is the (H, W) of the
    learned background position embedding.
    """

    embed_dim: int = 96
    num_heads: int = 1
    stages: tuple[int, ...] = (2, 3, 16, 3)
    global_att_blocks: tuple[int, ...] = (12, 16, 20)
    window_spec: tuple[int, ...] = (8, 4, 14, 7)
    pos_embed_bkg_size: tuple[int, int] = (14, 14)
    q_pool: int = 3
    q_stride: tuple[int, int] = (2, 2)
    dim_mul: float = 2.0
    head_mul: float = 2.0

    @property
    def stage_dims(self) -> tuple[int, ...]:
        """Channel width of each stage's output (strides 4, 8, 16, 32)."""
        return tuple(int(self.embed_dim * self.dim_mul**i) for i in range(len(self.stages)))


@dataclass(frozen=True)
class RepViTConfig:
    """The RepViT image trunk of EdgeTAM (RepViT-M1: timm's ``repvit_m1``, features only).

    ``embed_dims``/``depths`` per stage (strides 4, 8, 16, 32); every block
    widens its channels by ``mlp_ratio`` in the channel mixer; ``se_ratio`` is
    the squeeze-excite bottleneck of every other block, rounded as timm rounds it.
    """

    embed_dims: tuple[int, ...] = (48, 96, 192, 384)
    depths: tuple[int, ...] = (2, 2, 14, 2)
    mlp_ratio: int = 2
    kernel_size: int = 3
    se_ratio: float = 0.25

    @property
    def stage_dims(self) -> tuple[int, ...]:
        """Channel width of each stage's output (strides 4, 8, 16, 32)."""
        return self.embed_dims


@dataclass(frozen=True)
class PerceiverConfig:
    """EdgeTAM's spatial perceiver: compresses each memory frame to ``num_latents`` global
    tokens plus ``num_latents_2d`` window tokens (a square grid: one latent per window)."""

    dim: int = 64
    depth: int = 2
    heads: int = 1
    dim_head: int = 64
    ff_mult: int = 4
    num_latents: int = 256
    num_latents_2d: int = 256

    @property
    def grid_side(self) -> int:
        """Side of the square grid of window latents (16 for 256)."""
        side = int(round(self.num_latents_2d**0.5))
        if side * side != self.num_latents_2d:
            raise ValueError(f"num_latents_2d must be a square number, got {self.num_latents_2d}")
        return side

    @property
    def tokens(self) -> int:
        """Memory tokens per frame after compression."""
        return self.num_latents + self.num_latents_2d


@dataclass(frozen=True)
class Sam2Config:
    """A complete SAM 2 architecture.

    ``version`` "2.1" switches on the four SAM 2.1 behaviours (spatial
    no-object embedding, signed and projected temporal encodings of object
    pointers); the rest of the model is shared by both versions.

    EdgeTAM is a SAM 2.0 model with ``repvit`` set (a RepViT trunk instead of
    Hiera, which is then unused) and ``perceiver`` set (memories compressed
    by a spatial perceiver before memory attention).
    """

    name: str
    version: str
    hiera: HieraConfig = field(default_factory=HieraConfig)
    image_size: int = 1024
    d_model: int = 256  # neck, prompt encoder, mask decoder, memory attention width
    mem_dim: int = 64  # memory encoder output width
    num_maskmem: int = 7  # 1 conditioning slot + 6 recent frames
    max_obj_ptrs: int = 16
    memory_layers: int = 4
    memory_ffn_dim: int = 2048
    decoder_depth: int = 2
    decoder_heads: int = 8
    decoder_mlp_dim: int = 2048
    mask_in_chans: int = 16
    fpn_top_down_levels: tuple[int, ...] = (2, 3)
    # inference constants of the released configs
    sigmoid_scale_for_mem_enc: float = 20.0
    sigmoid_bias_for_mem_enc: float = -10.0
    stability_delta: float = 0.05
    stability_thresh: float = 0.98
    repvit: RepViTConfig | None = None
    perceiver: PerceiverConfig | None = None

    @property
    def is_v21(self) -> bool:
        return self.version == "2.1"

    @property
    def trunk_dims(self) -> tuple[int, ...]:
        """Channel widths of the trunk's four outputs (strides 4, 8, 16, 32), as the neck reads them."""
        return (self.repvit or self.hiera).stage_dims

    @property
    def feat_size(self) -> int:
        """Side of the stride-16 feature grid (64 for 1024-pixel inputs)."""
        return self.image_size // 16

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Sam2Config:
        data = dict(data)
        hiera: dict[str, Any] = data.pop("hiera", {})
        subs: dict[str, Any] = {}
        for key, sub_cls in (("repvit", RepViTConfig), ("perceiver", PerceiverConfig)):
            sub = data.pop(key, None)
            if sub is not None:
                subs[key] = sub_cls(**_lists_as_tuples(sub))
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown SAM 2 config fields: {sorted(unknown)}")
        return cls(hiera=HieraConfig(**_lists_as_tuples(hiera)), **subs, **_lists_as_tuples(data))



def _lists_as_tuples(fields: dict[str, Any]) -> dict[str, Any]:
    """Config fields read from JSON: lists back to the tuples the dataclasses hold."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}


_TRUNKS = {
    "tiny": HieraConfig(96, 1, (1, 2, 7, 2), (5, 7, 9), (8, 4, 14, 7), (7, 7)),
    "small": HieraConfig(96, 1, (1, 2, 11, 2), (7, 10, 13), (8, 4, 14, 7), (7, 7)),
    "base_plus": HieraConfig(112, 2, (2, 3, 16, 3), (12, 16, 20), (8, 4, 14, 7), (14, 14)),
    "large": HieraConfig(144, 2, (2, 6, 36, 4), (23, 33, 43), (8, 4, 16, 8), (7, 7)),
}

#: The official variants, by their checkpoint file stem: eight SAM 2 / 2.1 ones (here) and EdgeTAM (below).
VARIANTS: dict[str, Sam2Config] = {}
for _size, _trunk in _TRUNKS.items():
    for _version, _prefix in (("2.0", "sam2"), ("2.1", "sam2.1")):
        _name = f"{_prefix}_hiera_{_size}"
        VARIANTS[_name] = Sam2Config(name=_name, version=_version, hiera=_trunk)

#: EdgeTAM (facebookresearch/EdgeTAM, ``edgetam.pt``): SAM 2.0 heads and memory encoder, a RepViT-M1
#: trunk, 2 memory-attention layers and the spatial perceiver.
VARIANTS["edgetam"] = Sam2Config(
    name="edgetam", version="2.0", repvit=RepViTConfig(), perceiver=PerceiverConfig(), memory_layers=2
)
