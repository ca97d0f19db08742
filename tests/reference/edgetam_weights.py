"""Deterministic stand-in weights for EdgeTAM's state dict (see seeded_weights.py for the scheme).

Every key is drawn as in :mod:`seeded_weights` (one generator per key, seeded
from ``(seed, key)``), with these EdgeTAM-specific rules first:

==========================================  ===================================
parameter                                   value
==========================================  ===================================
``*.bn.num_batches_tracked``                int64 0 (a counter, unused at eval)
``*.bn.running_var``                        ``exp(0.3 * randn)`` (positive)
``*.bn.running_mean``                       ``0.1 * randn``
``*.bn.weight``                             ``BN_WEIGHT_SCALE * randn`` (sign
                                            and size at random, never zero)
``*.bn.bias``                               ``0.1 * randn``
``spatial_perceiver.latents``, ``..._2d``   ``randn`` (as the model inits)
==========================================  ===================================

Every BatchNorm parameter is random on purpose: timm's initial weights set
the last BatchNorm of each RepViT channel mixer to zero, which would switch
those branches off and hide them from a parity test. The BatchNorm weights are
centred on zero (not one) to keep the 18 residual blocks from blowing the
activations up.

Importable in both environments (torch + standard library only).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

try:  # as tests/reference (the project's tests) or from this folder (the reference env's scripts)
    from .seeded_weights import seeded_tensor, tensor_seed
except ImportError:
    from seeded_weights import seeded_tensor, tensor_seed

#: Bump when any rule above changes (fixtures record it).
EDGETAM_SCHEME_VERSION = 1

KEY_TABLE_PATH = Path(__file__).resolve().parents[1] / "data" / "edgetam" / "edgetam-state-dict-keys.json"

BN_WEIGHT_SCALE = 0.5


def edgetam_shapes(path: str | Path | None = None) -> dict[str, list[int]]:
    """Key -> shape of EdgeTAM's state dict (recorded from Meta's model, timm 1.0.15)."""
    with open(path or KEY_TABLE_PATH, encoding="utf-8") as fh:
        return json.load(fh)


def _draw(key: str, shape: Sequence[int], seed: int, scale: float, offset: float = 0.0) -> torch.Tensor:
    gen = torch.Generator(device="cpu")
    gen.manual_seed(tensor_seed(seed, key))
    return torch.randn(tuple(int(s) for s in shape), generator=gen, dtype=torch.float32) * scale + offset


def edgetam_tensor(key: str, shape: Sequence[int], seed: int = 0) -> torch.Tensor:
    """One tensor of the seeded EdgeTAM state dict."""
    if key.endswith(".num_batches_tracked"):
        return torch.zeros((), dtype=torch.int64)
    if key.endswith(".bn.running_var"):
        return _draw(key, shape, seed, 0.3).exp()
    if key.endswith(".bn.running_mean"):
        return _draw(key, shape, seed, 0.1)
    if key.endswith(".bn.weight"):
        return _draw(key, shape, seed, BN_WEIGHT_SCALE)
    if key.endswith(".bn.bias"):
        return _draw(key, shape, seed, 0.1)
    if key in ("spatial_perceiver.latents", "spatial_perceiver.latents_2d"):
        return _draw(key, shape, seed, 1.0)
    return seeded_tensor(key, shape, seed)


def edgetam_state_dict(shapes: Mapping[str, Sequence[int]] | None = None, seed: int = 0) -> dict[str, torch.Tensor]:
    """Deterministic weights for every key of EdgeTAM's state dict."""
    shapes = edgetam_shapes() if shapes is None else shapes
    return {key: edgetam_tensor(key, shape, seed) for key, shape in shapes.items()}
