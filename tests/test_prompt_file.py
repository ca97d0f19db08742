"""Prompt files: round trip through JSON reproduces the labels; damaged files get clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_sam2 import PromptError
from napari_sam2.engine.prompt_file import (
    apply_prompts,
    load_prompts,
    rle_decode,
    rle_encode,
    save_prompts,
    session_objects,
)


@pytest.mark.parametrize("mask", [np.zeros((3, 4), bool), np.ones((3, 4), bool),
                                  np.eye(4, dtype=bool), np.random.default_rng(0).random((7, 9)) > 0.5])
def test_rle_round_trip(mask):
    np.testing.assert_array_equal(rle_decode(rle_encode(mask), mask.shape), mask)


def test_saved_prompts_reproduce_labels(tiny_model, tmp_path):
    rng = np.random.default_rng(0)
    stack = (rng.random((6, 32, 40, 3)) * 255).astype(np.uint8)
    s1 = tiny_model.open_stack(stack)
    s1.set_prompts(0, 1, points=[[5.5, 6.25], [20, 30]], labels=[1, 0])
    s1.set_prompts(2, 2, box=(3, 4, 20, 25))
    mask = np.zeros((32, 40), bool)
    mask[10:20, 5:15] = True
    s1.set_prompts(4, 3, mask=mask)
    list(s1.propagate(direction="both"))
    path = tmp_path / "prompts.json"
    save_prompts(path, session_objects(s1, {1: "cell"}), s1.frame_shape, s1.num_frames)
    objects = load_prompts(path, s1.frame_shape, s1.num_frames)
    assert [o.name for o in objects] == ["cell", "", ""]
    s2 = tiny_model.open_stack(stack)
    apply_prompts(s2, objects)
    list(s2.propagate(direction="both"))
    np.testing.assert_array_equal(s1.labels(), s2.labels())
    s1.close()
    s2.close()


def test_bad_prompt_files(tmp_path):
    p = tmp_path / "x.json"
    p.write_text("{not json")
    with pytest.raises(PromptError, match="Cannot read"):
        load_prompts(p)
    p.write_text(json.dumps({"hello": 1}))
    with pytest.raises(PromptError, match="not a napari-sam2 prompt file"):
        load_prompts(p)
    good = {"format": "napari-sam2 prompts", "version": 1, "frame_shape": [10, 10], "num_frames": 3,
            "objects": [{"id": 1, "prompts": [{"frame": 0, "points": [[50, 1]], "labels": [1]}]}]}
    p.write_text(json.dumps(good))
    with pytest.raises(PromptError, match="outside"):
        load_prompts(p)
    with pytest.raises(PromptError, match="frames of"):
        load_prompts(p, frame_shape=(20, 20))
    good["version"] = 99
    p.write_text(json.dumps(good))
    with pytest.raises(PromptError, match="version 99"):
        load_prompts(p)
