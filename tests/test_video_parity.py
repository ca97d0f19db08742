"""The tracking session equals Meta's SAM2VideoPredictor, op by op.

Fixtures in tests/data/video_parity/ were recorded by
tests/reference/make_video_fixtures.py (sam2 1.1.0, add_all_frames_to_correct_as_cond
=true, fill_hole_area=0, model frame 512) on seeded random weights; see
docs/parity-video.md. The same weights are rebuilt here, written as an
official-format checkpoint and loaded through load_model.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import napari_sam2
from napari_sam2.model import VARIANTS
from napari_sam2.model.checkpoint import CONFIG_KEY
from reference.seeded_weights import official_shapes, seeded_state_dict, state_dict_digest

FIXTURES = Path(__file__).parent / "data" / "video_parity"
MEAN_TOL, MAX_TOL = 1e-4, 1e-3


def _records(fx):
    by_op: dict[int, list[tuple[int, int, np.ndarray]]] = {}
    for i, op in enumerate(fx["rec_op"]):
        by_op.setdefault(int(op), []).append((int(fx["rec_frame"][i]), int(fx["rec_obj"][i]), fx["logits"][i]))
    return by_op


def _fixture_session(name, tmp_path, dtype):
    fx = np.load(FIXTURES / f"{name}.npz")
    variant = str(fx["variant"])
    state = seeded_state_dict(official_shapes(variant), seed=int(fx["weights_seed"]))
    assert state_dict_digest(state) == str(fx["weights_sha256"])
    cfg = dataclasses.replace(VARIANTS[variant], image_size=int(fx["image_size"]))
    ckpt = tmp_path / "model.pt"
    torch.save({"model": state, CONFIG_KEY: cfg.to_dict()}, ckpt)
    model = napari_sam2.load_model(ckpt, device="cpu", dtype=dtype)
    return fx, model.open_stack(fx["frames"], axis=0)


def _replay(fx, session, compare):
    """Replay the fixture's ops; ``compare(op_index, frame, obj)`` after every result."""
    records = _records(fx)
    for i, op in enumerate(json.loads(str(fx["ops"]))):
        if op["op"] == "prompt":
            mask = fx[f"mask_{i}"] if op["mask"] else None
            session.set_prompts(op["frame"], op["obj"], points=op["points_rc"], labels=op["labels"],
                                box=op["box_rc"], mask=mask)
            compare(i, op["frame"], op["obj"])
        else:
            direction = "backward" if op["reverse"] else "forward"
            seen = []
            for frame, masks in session.propagate(start=op["start"], direction=direction,
                                                  max_frames=op["max_frames"]):
                for obj in masks:
                    compare(i, frame, obj)
                    seen.append((frame, obj))
            assert seen == [(f, o) for f, o, _ in records[i]]


def _reference(fx, op_index, frame, obj):
    k = next(k for k in range(len(fx["rec_op"]))
             if fx["rec_op"][k] == op_index and fx["rec_frame"][k] == frame and fx["rec_obj"][k] == obj)
    return fx["logits"][k], float(fx["rec_object_score"][k])


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(p.stem for p in FIXTURES.glob("*.npz")))
def test_session_matches_video_predictor(name, tmp_path):
    fx, session = _fixture_session(name, tmp_path, "float32")
    check_float32_records(fx, session, name)


def check_float32_records(fx, session, name: str) -> None:
    """Replay a video fixture's operations in ``session``; every recorded result within MEAN_TOL / MAX_TOL
    of the reference's logits (also used by the EdgeTAM parity test). Closes the session."""
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
    print(name, f"{len(worst)} records, worst max |diff| {max(worst):.2e}")


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(p.stem for p in FIXTURES.glob("*.npz")))
def test_mixed_precision_stays_close_to_the_reference(name, tmp_path):
    """The fast mode (bfloat16 image encoder and memory attention) on the same script:
    >= 99% of mask pixels as Meta's float32 predictor, and every presence decision the same."""
    fx, session = _fixture_session(name, tmp_path, "bfloat16")
    check_mixed_precision_records(fx, session, name)


def check_mixed_precision_records(fx, session, name: str) -> None:
    """Replay a video fixture in a 16-bit ``session``: >= 99% of mask pixels as the float32 reference and
    every presence decision the same (also used by the EdgeTAM parity test). Closes the session."""
    same, total, decisions = 0, 0, []

    def compare(op_index, frame, obj):
        nonlocal same, total
        ref, ref_score = _reference(fx, op_index, frame, obj)
        same += int(((session.logits(frame, obj) > 0) == (ref > 0)).sum())
        total += ref.size
        decisions.append((session.presence(frame, obj) > 0) == (ref_score > 0))

    _replay(fx, session, compare)
    session.close()
    print(name, f"bfloat16 mixed: {same / total:.4%} of mask pixels as the reference, "
                f"{sum(decisions)}/{len(decisions)} presence decisions the same")
    assert same / total >= 0.99
    assert all(decisions)
