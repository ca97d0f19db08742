"""Deterministic stand-in weights for the SAM 2 / SAM 2.1 state dicts.

Parity tests compare our re-implementation against Meta's reference code on
the *same* checkpoint.  Committing real checkpoints (150-900 MB each) is not an
option, and the real weights are not needed to prove that two implementations
compute the same function.  Instead both sides build a checkpoint from the
official key/shape table (``tests/data/sam2-state-dict-keys.json``) with this
module: the reference script (``make_image_fixtures.py``, run in the reference
environment) and our tests (run in the project environment) regenerate
bit-identical weights from nothing but the table and a seed.

Reproducibility
---------------
Every tensor is drawn from its own ``torch.Generator`` (CPU, Mersenne
Twister) seeded with ``(seed << 32) | zlib.crc32(key)``, so a tensor depends
only on ``(seed, key, shape)``: never on the order of the dict, on the other
keys, or on the global RNG state.  Values are float32 ``torch.randn`` draws,
scaled and shifted by the rule below.  :func:`state_dict_digest` gives a
SHA-256 over the whole dict; fixtures record it so that a test can tell "the
random number generator changed" apart from "the model is wrong".

Scales (``init_rule``)
----------------------
The goal is a network that behaves numerically like a trained one: activations
O(1), mask logits O(1-10) that vary over the image, no saturated or constant
outputs.  Rules, first match wins (``fan_in = prod(shape[1:])``):

========================================================  ====================
parameter                                                 value
========================================================  ====================
``sam_prompt_encoder.pe_layer.positional_encoding_        ``randn`` (scale 1,
gaussian_matrix``                                         as the model inits)
``*.gamma`` (ConvNeXt layer scale in the memory fuser)    ``0.1 * randn``
embedding tables: ``sam_prompt_encoder.point_embeddings.  ``randn`` (scale 1,
*``, ``not_a_point_embed``, ``no_mask_embed``,            PyTorch's
``sam_mask_decoder.iou_token`` / ``mask_tokens`` /        ``nn.Embedding``
``obj_score_token``                                       init)
``sam_mask_decoder.pred_obj_score_head.layers.2.bias``    ``5 + 0.02 * randn``
                                                          (object present)
other ``*.bias``                                          ``0.02 * randn``
1-D ``*.weight`` (LayerNorm / LayerNorm2d)                ``1 + 0.1 * randn``
``sam_mask_decoder.output_upscaling.{0,3}.weight``        ``randn /
(ConvTranspose2d, (in, out, 2, 2), stride 2)              sqrt(in)``
other ``*.weight`` (Linear, Conv2d)                       ``randn /
                                                          sqrt(fan_in)``
anything else (``pos_embed``, ``pos_embed_window``,       ``0.02 * randn``
``no_mem_embed``, ``no_mem_pos_enc``, ``maskmem_tpos_enc``,
``no_obj_ptr``, ``no_obj_embed_spatial``)
========================================================  ====================

The embedding tables use scale 1 rather than 0.02 on purpose: the label
embeddings (positive / negative / box corner / padding) are added to unit-scale
Fourier position features, and at 0.02 a wrong label would change the output by
less than the parity tolerance would notice.

This module must stay importable in both environments: it uses only torch and
the standard library.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import zlib
from pathlib import Path
from typing import Mapping, Sequence

import torch

#: Bump when any rule above changes (fixtures record it).
SCHEME_VERSION = 1

#: The seed used for the committed parity fixtures.
FIXTURE_SEED = 0

#: Default location of the official key/shape table.
KEY_TABLE_PATH = Path(__file__).resolve().parents[1] / "data" / "sam2-state-dict-keys.json"

#: Our variant names (checkpoint file stems) -> entry in the key/shape table
#: (the table uses the short config names).
TABLE_KEYS: dict[str, str] = {
    f"{prefix}_hiera_{size}": f"{prefix}_hiera_{short}"
    for prefix in ("sam2", "sam2.1")
    for size, short in (("tiny", "t"), ("small", "s"), ("base_plus", "b+"), ("large", "l"))
}

_GAUSSIAN_PE = "sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"
_OBJ_SCORE_LAST_BIAS = "sam_mask_decoder.pred_obj_score_head.layers.2.bias"
_OBJ_SCORE_BIAS_OFFSET = 5.0
_EMBEDDING_PREFIXES = (
    "sam_prompt_encoder.point_embeddings.",
    "sam_prompt_encoder.not_a_point_embed.",
    "sam_prompt_encoder.no_mask_embed.",
    "sam_mask_decoder.iou_token.",
    "sam_mask_decoder.mask_tokens.",
    "sam_mask_decoder.obj_score_token.",
)
_HYPERNET_OUT_WEIGHT = re.compile(r"sam_mask_decoder\.output_hypernetworks_mlps\.\d+\.layers\.2\.weight")
_HYPERNET_OUT_GAIN = 2.0
_CONV_TRANSPOSE_WEIGHTS = (
    "sam_mask_decoder.output_upscaling.0.weight",
    "sam_mask_decoder.output_upscaling.3.weight",
)


def load_key_table(path: str | Path | None = None) -> dict[str, dict[str, list[int]]]:
    """The official key/shape table, keyed by our variant names."""
    with open(path or KEY_TABLE_PATH, encoding="utf-8") as fh:
        raw = json.load(fh)
    return {name: raw[key] for name, key in TABLE_KEYS.items()}


def official_shapes(variant: str, path: str | Path | None = None) -> dict[str, list[int]]:
    """Key -> shape of one official variant, e.g. ``"sam2.1_hiera_tiny"``."""
    if variant not in TABLE_KEYS:
        raise KeyError(f"unknown variant {variant!r}; expected one of {sorted(TABLE_KEYS)}")
    return load_key_table(path)[variant]


def tensor_seed(seed: int, key: str) -> int:
    """The generator seed of one tensor: ``(seed << 32) | crc32(key)``."""
    if not 0 <= seed < 2**31:
        raise ValueError(f"seed must be in [0, 2**31), got {seed}")
    return (seed << 32) | zlib.crc32(key.encode("utf-8"))


def init_rule(key: str, shape: Sequence[int]) -> tuple[float, float]:
    """``(scale, offset)`` such that the tensor is ``offset + scale * randn``."""
    shape = tuple(int(s) for s in shape)
    if key == _GAUSSIAN_PE:
        return 1.0, 0.0
    if key.endswith(".gamma"):
        return 0.1, 0.0
    if key.startswith(_EMBEDDING_PREFIXES):
        return 1.0, 0.0
    if key.endswith(".bias"):
        return 0.02, (_OBJ_SCORE_BIAS_OFFSET if key == _OBJ_SCORE_LAST_BIAS else 0.0)
    if key.endswith(".weight"):
        if len(shape) == 1:
            return 0.1, 1.0
        if key in _CONV_TRANSPOSE_WEIGHTS:
            return 1.0 / math.sqrt(shape[0]), 0.0
        if _HYPERNET_OUT_WEIGHT.fullmatch(key):
            return _HYPERNET_OUT_GAIN / math.sqrt(math.prod(shape[1:])), 0.0
        return 1.0 / math.sqrt(math.prod(shape[1:])), 0.0
    return 0.02, 0.0


def seeded_tensor(key: str, shape: Sequence[int], seed: int = 0) -> torch.Tensor:
    """One float32 CPU tensor of the seeded state dict."""
    gen = torch.Generator(device="cpu")
    gen.manual_seed(tensor_seed(seed, key))
    values = torch.randn(tuple(int(s) for s in shape), generator=gen, dtype=torch.float32)
    scale, offset = init_rule(key, shape)
    if scale != 1.0:
        values.mul_(scale)
    if offset != 0.0:
        values.add_(offset)
    return values


def seeded_state_dict(shapes: Mapping[str, Sequence[int]], seed: int = 0) -> dict[str, torch.Tensor]:
    """Deterministic float32 weights for every key of ``shapes`` (see module docstring)."""
    return {key: seeded_tensor(key, shape, seed) for key, shape in shapes.items()}


def state_dict_digest(state_dict: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 (hex) over sorted keys, shapes and little-endian float32 bytes."""
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        tensor = state_dict[key].detach().to("cpu", torch.float32).contiguous()
        digest.update(key.encode("utf-8"))
        digest.update(repr(tuple(tensor.shape)).encode("ascii"))
        digest.update(tensor.numpy().astype("<f4", copy=False).tobytes())
    return digest.hexdigest()


def save_official_checkpoint(state_dict: Mapping[str, torch.Tensor], path: str | Path) -> None:
    """Write ``{"model": state_dict}`` with ``torch.save``, like Meta's ``.pt`` files.

    The file loads with ``torch.load(path, map_location="cpu", weights_only=True)``.
    """
    torch.save({"model": dict(state_dict)}, str(path))
