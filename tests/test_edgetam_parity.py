"""EdgeTAM (RepViT trunk + spatial perceiver) equals Meta's EdgeTAM code on seeded weights.

The fixtures in tests/data/edgetam/ were recorded by
tests/reference/make_edgetam_fixtures.py with facebookresearch/EdgeTAM's code
(timm 1.0.15 for the RepViT trunk) on the seeded weights of
tests/reference/edgetam_weights.py; here the same weights are rebuilt, written
as an official-format .pt file and loaded through ``load_model`` (see docs/parity.md).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

import napari_sam2
from napari_sam2.errors import CheckpointError
from napari_sam2.model import VARIANTS, Sam2Model
from napari_sam2.model.checkpoint import CONFIG_KEY, build_model, detect_config
from reference.edgetam_weights import edgetam_shapes, edgetam_state_dict
from reference.seeded_weights import save_official_checkpoint, state_dict_digest
from test_video_parity import _reference, _replay

FIXTURES = Path(__file__).parent / "data" / "edgetam"
MEAN_TOL, MAX_TOL = 1e-4, 1e-3


def _optional(fx, key):
    return fx[key] if key in fx.files else None


def test_edgetam_parameters_match_meta_state_dict():
    """Our EdgeTAM has exactly the keys and shapes of Meta's model (recorded in the reference env)."""
    ours = {k: list(v.shape) for k, v in Sam2Model(VARIANTS["edgetam"]).state_dict().items()}
    assert ours == edgetam_shapes()


def test_edgetam_state_dict_is_recognised_and_loads_strictly():
    state = edgetam_state_dict(seed=3)
    assert detect_config(state).name == "edgetam"
    model = build_model(state)
    assert model.cfg.repvit is not None and model.cfg.perceiver is not None
    assert len(model.memory_attention.layers) == 2
    torch.testing.assert_close(model.spatial_perceiver.latents_2d, state["spatial_perceiver.latents_2d"])
    del state["spatial_perceiver.layers.1.self_ff.3.weight"]
    with pytest.raises(CheckpointError, match="1 missing.*spatial_perceiver.layers.1.self_ff.3.weight"):
        build_model(state)


@pytest.mark.slow
def test_edgetam_predict_image_matches_reference(tmp_path):
    fx = np.load(FIXTURES / "image.npz")
    assert str(fx["variant"]) == "edgetam"
    state = edgetam_state_dict(seed=int(fx["weights_seed"]))
    assert state_dict_digest(state) == str(fx["weights_sha256"])  # the weights the reference saw
    ckpt = tmp_path / "renamed-on-purpose.pt"  # the variant must come from the keys, not the name
    save_official_checkpoint(state, ckpt)
    del state
    seg = napari_sam2.load_model(ckpt, device="cpu", dtype="float32")
    assert seg.variant == "edgetam"

    report = []
    for case in fx["cases"]:
        case = str(case)
        use_mask = bool(_optional(fx, f"{case}_use_mask"))
        result = seg.predict_image(
            fx["image"],
            points=_optional(fx, f"{case}_points_rc"),
            labels=_optional(fx, f"{case}_labels"),
            box=_optional(fx, f"{case}_box_rc"),
            mask=fx["mask_hw"] if use_mask else None,
            multimask=bool(fx[f"{case}_multimask"]),
        )
        ref = fx[f"{case}_logits"]
        assert result.logits.shape == ref.shape, case
        diff = np.abs(result.logits - ref)
        report.append(f"{case}: mean {diff.mean():.2e} max {diff.max():.2e}")
        assert diff.mean() <= MEAN_TOL and diff.max() <= MAX_TOL, report[-1]
        np.testing.assert_allclose(result.scores, fx[f"{case}_scores"], atol=1e-4, err_msg=case)
    print("edgetam", "; ".join(report))


@pytest.mark.slow
def test_edgetam_session_matches_video_predictor(tmp_path):
    """The scenario of test_video_parity (two objects and more, clicks, a box, a mask, a correction,
    forward and backward) on EdgeTAM, against its model driven by sam2 1.1.0's video predictor."""
    fx = np.load(FIXTURES / "video_512.npz")
    state = edgetam_state_dict(seed=int(fx["weights_seed"]))
    assert state_dict_digest(state) == str(fx["weights_sha256"])
    cfg = dataclasses.replace(VARIANTS["edgetam"], image_size=int(fx["image_size"]))
    ckpt = tmp_path / "model.pt"
    torch.save({"model": state, CONFIG_KEY: cfg.to_dict()}, ckpt)
    session = napari_sam2.load_model(ckpt, device="cpu", dtype="float32").open_stack(fx["frames"], axis=0)
    worst = []

    def compare(op_index, frame, obj):
        ours = session.logits(frame, obj)
        ref, _ = _reference(fx, op_index, frame, obj)
        diff = np.abs(ours - ref)
        worst.append(diff.max())
        assert diff.mean() <= MEAN_TOL and diff.max() <= MAX_TOL, (
            f"op {op_index} frame {frame} obj {obj}: mean {diff.mean():.2e} max {diff.max():.2e}")

    _replay(fx, session, compare)
    session.close()
    print("edgetam video", f"{len(worst)} records, worst max |diff| {max(worst):.2e}")
