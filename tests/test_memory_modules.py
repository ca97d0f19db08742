"""Tests of the memory attention, memory encoder and 2-D RoPE.

Parity data come from tests/reference/make_memory_fixture.py, which runs
Meta's reference implementation (not needed to run these tests).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from napari_sam2.model.memory_attention import MemoryAttention
from napari_sam2.model.memory_encoder import MemoryEncoder
from napari_sam2.model.rope import apply_axial_rope, axial_rope_angles, axial_rope_table

DATA = Path(__file__).parent / "data"
KEYS_FILE = DATA / "sam2-state-dict-keys.json"
PARITY_FILE = DATA / "memory_parity.pt"
TOL = 1e-4

OFFICIAL = json.loads(KEYS_FILE.read_text())


def _under(prefix: str, shapes: dict[str, list[int]]) -> dict[str, tuple[int, ...]]:
    return {k[len(prefix) :]: tuple(v) for k, v in shapes.items() if k.startswith(prefix)}


@pytest.mark.parametrize("variant", sorted(OFFICIAL))
@pytest.mark.parametrize(
    "prefix, build",
    [("memory_attention.", MemoryAttention), ("memory_encoder.", MemoryEncoder)],
    ids=["attention", "encoder"],
)
def test_official_state_dict_layout(variant: str, prefix: str, build: type) -> None:
    """Full-size modules have exactly the checkpoints' keys and shapes."""
    expected = _under(prefix, OFFICIAL[variant])
    assert expected, f"no {prefix} keys for {variant}"
    module = build()  # defaults are the official sizes
    got = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    assert set(got) == set(expected)
    assert got == expected
    # and such a dict loads strictly
    module.load_state_dict({k: torch.zeros(s) for k, s in expected.items()}, strict=True)


@pytest.fixture(scope="module")
def parity() -> dict:
    return torch.load(PARITY_FILE, map_location="cpu", weights_only=True)


def _attention(parity: dict) -> MemoryAttention:
    cfg = parity["config"]
    module = MemoryAttention(
        d_model=cfg["d_model"],
        mem_dim=cfg["mem_dim"],
        num_layers=cfg["num_layers"],
        ffn_dim=cfg["ffn_dim"],
        feat_size=cfg["feat_size"],
    )
    module.load_state_dict(parity["attention"]["state_dict"], strict=True)
    return module.eval()


def test_memory_attention_parity_with_pointers(parity: dict) -> None:
    """Two memory frames (RoPE k-repeat) plus object-pointer tokens excluded from RoPE."""
    data, n_ptr = parity["attention"], parity["config"]["num_obj_ptr_tokens"]
    assert n_ptr > 0
    with torch.no_grad():
        out = _attention(parity)(
            data["curr"], data["curr_pos"], data["memory"], data["memory_pos"], n_ptr
        )
    assert out.shape == data["out_ptrs"].shape
    assert (out - data["out_ptrs"]).abs().max().item() <= TOL


def test_memory_attention_parity_without_pointers(parity: dict) -> None:
    data, cfg = parity["attention"], parity["config"]
    n_sp = data["memory"].shape[0] - cfg["num_obj_ptr_tokens"]
    with torch.no_grad():
        out = _attention(parity)(
            data["curr"], data["curr_pos"], data["memory"][:n_sp], data["memory_pos"][:n_sp]
        )
    assert (out - data["out_no_ptrs"]).abs().max().item() <= TOL


def test_memory_attention_casts_bf16_memory(parity: dict) -> None:
    """bfloat16 memories (as stored by the video predictor) act like their fp32 upcast."""
    data, n_ptr = parity["attention"], parity["config"]["num_obj_ptr_tokens"]
    module = _attention(parity)
    mem16 = data["memory"].bfloat16()
    with torch.no_grad():
        out16 = module(data["curr"], data["curr_pos"], mem16, data["memory_pos"], n_ptr)
        out32 = module(data["curr"], data["curr_pos"], mem16.float(), data["memory_pos"], n_ptr)
    assert out16.dtype == torch.float32
    torch.testing.assert_close(out16, out32, rtol=0, atol=0)


def test_memory_encoder_parity(parity: dict) -> None:
    cfg, data = parity["config"], parity["encoder"]
    module = MemoryEncoder(d_model=cfg["d_model"], mem_dim=cfg["mem_dim"])
    module.load_state_dict(data["state_dict"], strict=True)
    with torch.no_grad():
        features, pos = module.eval()(data["pix_feat"], data["masks"])
    assert features.shape == data["features"].shape
    assert pos.shape == data["pos"].shape
    assert (features - data["features"]).abs().max().item() <= TOL
    assert (pos - data["pos"]).abs().max().item() <= TOL


def test_memory_encoder_rejects_wrong_mask_size() -> None:
    module = MemoryEncoder(d_model=32, mem_dim=16)
    with pytest.raises(ValueError):
        module(torch.zeros(1, 32, 4, 4), torch.zeros(1, 1, 32, 32))


def test_rope_angles_layout() -> None:
    """x angles in the first quarter of the channels' pairs, y in the second; x fastest."""
    angles = axial_rope_angles(head_dim=16, side=3)
    assert angles.shape == (9, 8)
    inv = 1.0 / 10000.0 ** (torch.arange(4, dtype=torch.float32) * 4 / 16)
    token = 5  # x = 2, y = 1
    torch.testing.assert_close(angles[token, :4], 2 * inv)
    torch.testing.assert_close(angles[token, 4:], 1 * inv)


def test_rope_matches_complex_rotation_and_repeats_per_frame() -> None:
    """Real-form rotation equals complex multiplication; each memory frame is rotated
    like the queries; excluded trailing keys are untouched; dtypes are kept."""
    torch.manual_seed(1)
    side, d, frames, n_ex = 4, 8, 3, 5
    n = side * side
    q = torch.randn(2, 1, n, d)
    k = torch.randn(2, 1, frames * n + n_ex, d)
    table = axial_rope_table(d, side)
    q_rot, k_rot = apply_axial_rope(q, k, table, num_k_exclude=n_ex)

    cis = torch.polar(torch.ones(n, d // 2), axial_rope_angles(d, side))
    expect_q = torch.view_as_real(torch.view_as_complex(q.reshape(2, 1, n, -1, 2)) * cis)
    torch.testing.assert_close(q_rot, expect_q.flatten(3))
    for f in range(frames):
        _, k_f = apply_axial_rope(q, k[:, :, f * n : (f + 1) * n], table)
        torch.testing.assert_close(k_rot[:, :, f * n : (f + 1) * n], k_f)
    assert torch.equal(k_rot[:, :, frames * n :], k[:, :, frames * n :])

    q_h, k_h = apply_axial_rope(q.bfloat16(), k.bfloat16(), table, num_k_exclude=n_ex)
    assert q_h.dtype == k_h.dtype == torch.bfloat16


def test_rope_rejects_partial_frames() -> None:
    table = axial_rope_table(8, 2)
    with pytest.raises(ValueError):
        apply_axial_rope(torch.zeros(1, 1, 4, 8), torch.zeros(1, 1, 6, 8), table)


def test_memory_attention_other_grid_and_batch() -> None:
    """A module built for one grid runs on another square grid (table built on demand)."""
    torch.manual_seed(2)
    module = MemoryAttention(d_model=32, mem_dim=16, num_layers=2, ffn_dim=64, feat_size=8).eval()
    hw, b = 5 * 5, 3
    curr = torch.randn(hw, b, 32)
    memory = torch.randn(2 * hw + 4, b, 16)
    with torch.no_grad():
        out = module(curr, torch.randn(hw, b, 32), memory, torch.randn_like(memory), 4)
    assert out.shape == (hw, b, 32)
    assert torch.isfinite(out).all()
