"""Objects from a label image in the engine: label values that are already objects, or too large for a label
image, never merge silently; fresh ids keep the seed frame exact and replay exactly."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sam2.engine.prompts import MAX_OBJ_ID, seed_ids
from napari_sam2.errors import PromptError

T, H, W = 4, 40, 48


@pytest.fixture
def session(tiny_model):
    rng = np.random.default_rng(1)
    s = tiny_model.open_stack((rng.random((T, H, W)) * 255).astype(np.uint8))
    yield s
    s.close()


def cells() -> tuple[np.ndarray, np.ndarray]:
    a = np.zeros((H, W), bool)
    a[5:15, 5:15] = True
    b = np.zeros((H, W), bool)
    b[22:34, 20:40] = True
    return a, b


def test_a_seed_label_that_is_already_an_object_is_refused_or_gets_a_fresh_id(session, tmp_path):
    """Object 1 on cell A, then a label image whose label 1 is cell B: by default a PromptError that names the
    clash and changes nothing; with ids="fresh" label 1 becomes object 2 and each object keeps its own cell
    (the seed frame exact); the prompt file replays to the same labels."""
    from napari_sam2.engine.io.prompt_file import load_annotation

    a, b = cells()
    session.set_mask_prompts(0, {1: a})
    seeds = np.where(b, 1, 0).astype(np.uint16)
    seeds[30:38, 2:10] = 5  # a second label that is free: it keeps its value
    with pytest.raises(PromptError, match=r"\[1\] are already objects.*ids='fresh'"):
        session.add_objects_from_labels(0, seeds)
    assert session.object_ids == [1] and len(session.history) == 1  # nothing changed
    mapping = session.add_objects_from_labels(0, seeds, ids="fresh")
    assert mapping == {1: 6, 5: 5}  # fresh ids count up from the largest id in use (5, kept by its label)
    assert sorted(session.object_ids) == [1, 5, 6]
    expected = np.where(a, 1, 0) + np.where(b, 6, 0) + np.where(seeds == 5, 5, 0)
    np.testing.assert_array_equal(session.frame_labels(0), expected)  # the seed frame exactly, A kept
    np.testing.assert_array_equal(np.asarray(session.prompts()[1][0].mask), a)
    list(session.propagate(start=0, max_frames=2))
    assert session.frames_with_output(1) == session.frames_with_output(6) == [0, 1, 2]
    path = session.save_prompts(tmp_path / "fresh.json")
    again = session.segmenter.open_stack(session.source.stack)
    try:
        load_annotation(path).replay(again)
        assert sorted(again.object_ids) == [1, 5, 6]
        np.testing.assert_array_equal(again.labels(), session.labels())
    finally:
        again.close()


def test_merge_makes_a_seed_a_correction_of_its_object(session):
    """ids="merge" is the explicit way to correct existing objects with a label image (same ids)."""
    a, b = cells()
    session.set_mask_prompts(0, {1: a})
    assert session.add_objects_from_labels(0, b.astype(np.uint8), ids="merge") == {1: 1}
    assert session.object_ids == [1]
    np.testing.assert_array_equal(session.frame_labels(0), b.astype(np.uint16))
    with pytest.raises(PromptError, match="ids must be one of"):
        session.add_objects_from_labels(0, b.astype(np.uint8), ids="renumber")


def test_a_label_too_large_for_a_label_image(session):
    """An int64 label 2**40 (no label image holds it): refused before anything changes, or a fresh id."""
    a, b = cells()
    seeds = np.zeros((H, W), np.int64)
    seeds[a] = 2**40
    seeds[b] = 3
    with pytest.raises(PromptError, match=f"label {2**40} is too large.*up to {MAX_OBJ_ID}.*ids='fresh'"):
        session.add_objects_from_labels(1, seeds)
    assert session.object_ids == [] and session.history == []
    assert session.add_objects_from_labels(1, seeds, ids="fresh") == {3: 3, 2**40: 4}
    assert session.label_dtype() == np.uint16
    np.testing.assert_array_equal(session.frame_labels(1), np.where(a, 4, 0) + np.where(b, 3, 0))


def test_seed_ids_rules():
    """The one rule for seed ids (used by the session and the widget)."""
    assert seed_ids([1, 2], taken=set()) == {1: 1, 2: 2}
    assert seed_ids([2, 1], taken={1, 7}, ids="fresh") == {2: 2, 1: 8}
    assert seed_ids([MAX_OBJ_ID], taken=set()) == {MAX_OBJ_ID: MAX_OBJ_ID}
    with pytest.raises(PromptError, match="ids in use reach"):
        seed_ids([MAX_OBJ_ID, MAX_OBJ_ID + 1], taken=set(), ids="fresh")
