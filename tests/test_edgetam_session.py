"""Everything a session does with SAM 2 works with EdgeTAM: seeds (frame-exact), regions, divisions,
exact replay of a prompt file, and the fast mode. EdgeTAM on seeded stand-in weights at a 512-pixel model
frame (its memories are perceiver tokens, not grids: every path that handles memories is exercised)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import napari_sam2
from napari_sam2.engine.io.prompt_file import load_annotation
from napari_sam2.model import VARIANTS
from napari_sam2.model.checkpoint import CONFIG_KEY
from reference.edgetam_weights import edgetam_state_dict

T, H, W = 6, 72, 88


@pytest.fixture(scope="module")
def edgetam_checkpoint(tmp_path_factory):
    cfg = dataclasses.replace(VARIANTS["edgetam"], image_size=512)
    path = tmp_path_factory.mktemp("edgetam") / "edgetam-512.pt"
    torch.save({"model": edgetam_state_dict(seed=2), CONFIG_KEY: cfg.to_dict()}, path)
    return path


@pytest.fixture(scope="module")
def edgetam(edgetam_checkpoint):
    return napari_sam2.load_model(edgetam_checkpoint, device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def stack():
    rng = np.random.default_rng(4)
    data = (rng.random((T, H, W)) * 800).astype(np.uint16)
    for t in range(T):  # two drifting bright cells
        data[t, 10 + t:30 + t, 12:34] += 3000
        data[t, 40:60, 50 + t:70 + t] += 2500
    return data


def test_seeds_are_frame_exact_and_tracking_replays_bit_for_bit(edgetam, stack, tmp_path):
    seeds = np.zeros((H, W), np.uint16)
    seeds[12:28, 14:32] = 4
    seeds[42:58, 52:68] = 9
    s1 = edgetam.open_stack(stack)
    assert s1.add_objects_from_labels(0, seeds) == {4: 4, 9: 9}
    np.testing.assert_array_equal(s1.frame_labels(0), seeds)  # the seed frame is the label image
    list(s1.propagate())
    s1.set_prompts(3, 4, points=[[20, 22], [50, 60]], labels=[1, 0])  # a correction
    list(s1.propagate(start=3))
    assert all(np.isfinite(s1.logits(f, obj)).all() for f in range(T) for obj in (4, 9))
    assert len(s1.frames_with_output()) == T
    path = s1.save_prompts(tmp_path / "edgetam.json")
    s2 = edgetam.open_stack(stack)
    load_annotation(path, s2.frame_shape, s2.num_frames).replay(s2)
    np.testing.assert_array_equal(s2.labels(), s1.labels())
    s1.close()
    s2.close()


def test_a_region_tracks_like_the_cropped_stack(edgetam, stack):
    r0, c0, r1, c1 = 4, 6, 40, 44
    region = edgetam.open_stack(stack, roi=(r0, c0, r1, c1))
    cropped = edgetam.open_stack(np.ascontiguousarray(stack[:, r0:r1, c0:c1]))
    region.set_prompts(0, 1, points=[[20, 22]])
    cropped.set_prompts(0, 1, points=[[20 - r0, 22 - c0]])
    list(region.propagate())
    list(cropped.propagate())
    for f in range(T):
        full = region.frame_labels(f)
        np.testing.assert_array_equal(full[r0:r1, c0:c1], cropped.frame_labels(f))
        assert not full[r1:].any() and not full[:, c1:].any()
    region.close()
    cropped.close()


def test_a_division_and_the_fast_mode(edgetam_checkpoint, stack):
    """Daughters tracked from their first frame, the mother before it — in the bfloat16 mode (perceiver
    included), whose prompted-frame masks agree with float32."""
    fast = napari_sam2.load_model(edgetam_checkpoint, device="cpu", dtype="bfloat16")
    exact = napari_sam2.load_model(edgetam_checkpoint, device="cpu", dtype="float32")
    assert fast.precision == "bfloat16 (mixed)"
    masks = {}
    for name, model in (("fast", fast), ("exact", exact)):
        s = model.open_stack(stack)
        s.set_prompts(0, 1, box=(8, 10, 32, 36))
        s.set_prompts(3, 2, points=[[22, 22]])
        s.set_prompts(3, 3, points=[[50, 62]])
        s.set_parent(2, 1)
        s.set_parent(3, 1)
        list(s.propagate(direction="both"))
        assert s.frames_with_output(1) == [0, 1, 2]
        assert s.frames_with_output(2) == s.frames_with_output(3) == [3, 4, 5]
        assert s.lineage == {2: 1, 3: 1}
        masks[name] = s.logits(0, 1) > 0
        s.close()
    assert (masks["fast"] == masks["exact"]).mean() >= 0.98
