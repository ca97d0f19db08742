"""Prompt files: round trip through JSON reproduces the labels; damaged files get clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_sam2 import PromptError
from napari_sam2.engine.io.prompt_file import (
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


def test_history_replays_to_identical_labels(tiny_model, tmp_path):
    """Clicks, a propagation, a correction, a propagation stopped early, a cleared frame and a removed
    object: the saved history replays to the very same labels (bit for bit), where replaying only the
    final prompts would not reproduce the order in which corrections met the memory."""
    from napari_sam2.engine.io.prompt_file import load_annotation

    rng = np.random.default_rng(1)
    stack = (rng.random((10, 32, 40)) * 4000).astype(np.uint16)
    s1 = tiny_model.open_stack(stack)
    s1.set_prompts(2, 1, points=[[10, 12]])
    s1.set_prompts(2, 2, box=(3, 4, 20, 25))
    s1.set_prompts(5, 3, points=[[25, 30]])
    list(s1.propagate(direction="both"))
    s1.set_prompts(6, 1, points=[[10, 12], [20, 30]], labels=[1, 0])  # a correction
    run = s1.propagate(start=6)
    for _ in range(2):  # stopped after two frames (as Cancel does)
        next(run)
    run.close()
    s1.clear_prompts(5, 3)
    s1.remove_object(2)
    list(s1.propagate(start=6, direction="backward", max_frames=3))
    path = s1.save_prompts(tmp_path / "annotation.json", names={1: "cell A"})

    ann = load_annotation(path, s1.frame_shape, s1.num_frames)
    assert ann.version == 2 and ann.names == {1: "cell A", 2: "", 3: ""}
    assert [type(r).__name__ for r in ann.history].count("PropagationRun") == 3
    assert ann.history[5].frames == 2 and ann.stack["shape"] == [10, 32, 40]
    assert [o.obj_id for o in ann.objects()] == [1, 3] and sorted(ann.objects()[0].frames) == [2, 6]
    s2 = tiny_model.open_stack(stack)
    frames = []
    ann.replay(s2, on_frame=frames.append)
    assert len(frames) == (8 + 3) + 2 + 4  # both from 2: 2-9 and 2-0; the stopped run; 6-3
    np.testing.assert_array_equal(s1.labels(), s2.labels())
    for f in range(10):
        for oid in (1, 3):
            a, b = s1.logits(f, oid), s2.logits(f, oid)
            assert (a is None) == (b is None)
            if a is not None:
                np.testing.assert_array_equal(a, b)
    assert [type(r) for r in s2.history] == [type(r) for r in s1.history]  # the replay has the same history
    s1.close()
    s2.close()


def test_version_1_files_still_load(tmp_path):
    from napari_sam2.engine.io.prompt_file import load_annotation
    from napari_sam2.engine.tracking.history import SetPrompts

    v1 = {"format": "napari-sam2 prompts", "version": 1, "frame_shape": [10, 12], "num_frames": 3, "axis": 0,
          "objects": [{"id": 4, "name": "b", "prompts": [{"frame": 2, "points": [[1, 1]], "labels": [1]}]},
                      {"id": 1, "name": "a", "prompts": [{"frame": 0, "points": [], "labels": [],
                                                          "box": [1, 1, 5, 6], "mask": None}]}]}
    p = tmp_path / "v1.json"
    p.write_text(json.dumps(v1))
    ann = load_annotation(p, (10, 12), 3)
    assert ann.version == 1 and ann.names == {4: "b", 1: "a"} and not ann.has_propagation
    assert [(r.frame, r.obj_id) for r in ann.history] == [(0, 1), (2, 4)]
    assert all(isinstance(r, SetPrompts) for r in ann.history)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"version": 4}, "version 4"),
        ({"history": [{"op": "prompts", "frame": 7, "object": 1, "points": [[1, 1]], "labels": [1]}]},
         "frame 7 \\(object 1\\) is outside the stack's 3 frames"),
        ({"history": [{"op": "prompts", "frame": 0, "object": 1, "points": [[1, 1]], "labels": [1]},
                      {"op": "propagate", "start": 0, "direction": "sideways", "frames": 1}]}, "sideways"),
        ({"history": [{"op": "paint", "frame": 0}]}, "unknown history entry 'paint'"),
        ({"history": []}, "object\\(s\\) \\[1\\] have no prompt"),
        ({"history": [{"op": "prompts", "frame": 0, "object": 1, "points": [[1, 1]], "labels": [1]},
                      {"op": "propagate", "start": 0, "direction": "forward"}], "num_frames": 5},
         "made for 5 frames, but this stack has 3"),
        ({"frame_shape": [8, 8]}, "made for frames of \\(8, 8\\)"),
        ({"history": [{"op": "prompts", "frame": "zero", "object": 1}]}, "frame must be an integer"),
    ],
)
def test_bad_version_2_files(tmp_path, change, match):
    from napari_sam2.engine.io.prompt_file import load_annotation

    doc = {"format": "napari-sam2 prompts", "version": 2, "frame_shape": [10, 10], "num_frames": 3,
           "objects": [{"id": 1, "name": "", "prompts": []}],
           "history": [{"op": "prompts", "frame": 0, "object": 1, "points": [[1, 1]], "labels": [1]}]}
    doc.update(change)
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(PromptError, match=match):
        load_annotation(p, (10, 10), 3)
