"""Build tests/data/memory_parity.pt from Meta's reference SAM 2 code.

Run with an interpreter that has the reference ``sam2`` package installed
(it is not a test dependency), e.g.::

    /path/to/sam2-venv/bin/python tests/reference/make_memory_fixture.py

It builds the reference memory attention and memory encoder at a reduced
width (d_model 64, mem_dim 16, FFN 64, an 8 x 8 token grid, 128 x 128 masks)
but with the official structure (4 layers, 1 head, RoPE theta 1e4, k-repeat,
2 ConvNeXt blocks, stride-16 mask downsampler), fills every parameter with
random values (also the LayerNorm affines and the ConvNeXt layer scales, so
that nothing is hidden by identity-like initialisation), runs random inputs
and stores weights, inputs and outputs (all float32) for
tests/test_memory_modules.py.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from sam2.modeling.memory_attention import MemoryAttention, MemoryAttentionLayer
from sam2.modeling.memory_encoder import CXBlock, Fuser, MaskDownSampler, MemoryEncoder
from sam2.modeling.position_encoding import PositionEmbeddingSine
from sam2.modeling.sam.transformer import RoPEAttention

OUT = Path(__file__).resolve().parents[1] / "data" / "memory_parity.pt"

D_MODEL, MEM_DIM, FFN, LAYERS, SIDE, BATCH = 64, 16, 64, 4, 8, 2
FRAMES = 2  # spatial memory frames -> RoPE frequencies repeated per frame
NUM_PTRS = 3  # object pointers, each split into D_MODEL // MEM_DIM tokens


def _rope_attention(kv_dim: int | None, k_repeat: bool) -> RoPEAttention:
    return RoPEAttention(
        embedding_dim=D_MODEL,
        num_heads=1,
        downsample_rate=1,
        dropout=0.1,
        kv_in_dim=kv_dim,
        rope_theta=10000.0,
        rope_k_repeat=k_repeat,
        feat_sizes=(SIDE, SIDE),
    )


def build_attention() -> MemoryAttention:
    layer = MemoryAttentionLayer(
        activation="relu",
        cross_attention=_rope_attention(MEM_DIM, True),
        d_model=D_MODEL,
        dim_feedforward=FFN,
        dropout=0.1,
        pos_enc_at_attn=False,
        pos_enc_at_cross_attn_keys=True,
        pos_enc_at_cross_attn_queries=False,
        self_attention=_rope_attention(None, False),
    )
    return MemoryAttention(d_model=D_MODEL, pos_enc_at_input=True, layer=layer, num_layers=LAYERS)


def build_encoder() -> MemoryEncoder:
    return MemoryEncoder(
        out_dim=MEM_DIM,
        mask_downsampler=MaskDownSampler(
            embed_dim=D_MODEL, kernel_size=3, stride=2, padding=1, total_stride=16
        ),
        fuser=Fuser(CXBlock(dim=D_MODEL, kernel_size=7, padding=3), num_layers=2),
        position_encoding=PositionEmbeddingSine(num_pos_feats=MEM_DIM, warmup_cache=False),
        in_dim=D_MODEL,
    )


@torch.no_grad()
def randomise(module: torch.nn.Module) -> None:
    """Random values for every parameter, scaled so activations stay O(1)."""
    for name, p in module.named_parameters():
        if name.endswith("gamma"):
            p.uniform_(0.2, 1.0)
        elif p.ndim == 1 and "norm" in name and name.endswith("weight"):
            p.uniform_(0.5, 1.5)
        elif p.ndim == 1:
            p.normal_(0.0, 0.2)
        else:
            fan_in = p[0].numel()
            p.normal_(0.0, 1.0 / math.sqrt(fan_in))


def main() -> None:
    torch.manual_seed(0)
    hw = SIDE * SIDE
    ptr_tokens = NUM_PTRS * (D_MODEL // MEM_DIM)
    m = FRAMES * hw + ptr_tokens

    attn = build_attention().eval()
    randomise(attn)
    curr = torch.randn(hw, BATCH, D_MODEL)
    curr_pos = torch.randn(hw, BATCH, D_MODEL)
    memory = torch.randn(m, BATCH, MEM_DIM)
    memory_pos = torch.randn(m, BATCH, MEM_DIM)
    with torch.no_grad():
        out_ptrs = attn(curr, memory, curr_pos, memory_pos, num_obj_ptr_tokens=ptr_tokens)
        # no pointer tokens: every key rotated (memory = spatial part only)
        n_sp = FRAMES * hw
        out_no_ptrs = attn(curr, memory[:n_sp], curr_pos, memory_pos[:n_sp], 0)

    enc = build_encoder().eval()
    randomise(enc)
    pix_feat = torch.randn(1, D_MODEL, SIDE, SIDE)
    logits = 4.0 * torch.randn(1, 1, 16 * SIDE, 16 * SIDE)
    masks = torch.sigmoid(logits) * 20.0 - 10.0  # as SAM2Base._encode_new_memory
    with torch.no_grad():
        enc_out = enc(pix_feat, masks, skip_mask_sigmoid=True)

    fixture = {
        "config": {
            "d_model": D_MODEL,
            "mem_dim": MEM_DIM,
            "ffn_dim": FFN,
            "num_layers": LAYERS,
            "feat_size": SIDE,
            "num_obj_ptr_tokens": ptr_tokens,
        },
        "attention": {
            "state_dict": {k: v.clone() for k, v in attn.state_dict().items()},
            "curr": curr,
            "curr_pos": curr_pos,
            "memory": memory,
            "memory_pos": memory_pos,
            "out_ptrs": out_ptrs,
            "out_no_ptrs": out_no_ptrs,
        },
        "encoder": {
            "state_dict": {k: v.clone() for k, v in enc.state_dict().items()},
            "pix_feat": pix_feat,
            "masks": masks,
            "features": enc_out["vision_features"],
            "pos": enc_out["vision_pos_enc"][0],
        },
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    torch.save(fixture, OUT)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
