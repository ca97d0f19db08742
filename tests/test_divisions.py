"""Automatic divisions: the rule on constructed label sequences, and the whole path through a session.

The tiny random-weight model draws meaningless masks, so the session tests control every frame's mask with
mask prompts (exact on their frames): a disk that becomes two disks moving apart. The division, the daughters'
prompts, the continuation of the pass, the history, the replay and the undo all run for real.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_sam2 import PromptError
from napari_sam2.cli.main import main
from napari_sam2.engine.io.prompt_file import load_annotation
from napari_sam2.engine.tracking.divisions import (
    Division,
    DivisionRule,
    divisions_in_labels,
    find_division,
    parts,
)
from napari_sam2.engine.tracking.history import Divide, PropagationRun
from napari_sam2.engine.tracking.track_table import doubtful_frames

T, H, W = 12, 40, 48
SPLIT = 5  # the frame the disk becomes two
RULE = DivisionRule(frames=3, min_area=10)


def disk(r: float, c: float, rad: float = 5, shape: tuple[int, int] = (H, W)) -> np.ndarray:
    yy, xx = np.ogrid[:shape[0], :shape[1]]
    return (yy - r) ** 2 + (xx - c) ** 2 <= rad**2


def cell_masks() -> list[np.ndarray]:
    """One cell per frame: a disk, from SPLIT on two disks moving apart (left one first)."""
    out = []
    for f in range(T):
        if f < SPLIT:
            out.append(disk(20, 24, 6))
        else:
            gap = 7 + (f - SPLIT)
            out.append(disk(20, 24 - gap, 5) | disk(20, 24 + gap, 5))
    return out


def sequence(*frames: list[tuple[float, float, float]]) -> np.ndarray:
    """A (T, 30, 60) label sequence of object 1: each frame a union of disks (row, col, radius)."""
    out = np.zeros((len(frames), 30, 60), np.uint16)
    for t, disks in enumerate(frames):
        for r, c, rad in disks:
            out[t][disk(r, c, rad, (30, 60))] = 1
    return out


ONE, TWO = [(15, 30, 8)], [(15, 18, 6), (15, 42, 6)]
TOUCHING = [(15, 24, 6), (15, 36, 6)]  # two cells that touch: one component


# ------------------------------------------------------------------ the rule
def test_parts_are_8_connected_and_fragments_are_ignored():
    m = np.zeros((10, 12), bool)
    m[1:3, 1:3] = True
    m[3, 3] = True  # touches (2, 2) diagonally: same part
    m[6:9, 6:9] = True
    m[0, 11] = True  # a one-pixel fragment
    assert [int(p.sum()) for p in parts(m)] == [1, 5, 9]  # row-major order of the first pixel
    assert [int(p.sum()) for p in parts(m, min_area=2)] == [5, 9]
    assert parts(np.zeros((4, 4), bool)) == []


def test_a_clean_split_is_a_division_on_its_first_frame():
    labels = sequence(ONE, ONE, TWO, TWO, TWO, TWO)
    split = find_division(labels == 1, RULE)
    assert split is not None and split.frame == 2
    left, right = split.masks
    np.testing.assert_array_equal(left | right, labels[2] == 1)
    assert np.argwhere(left)[:, 1].mean() < np.argwhere(right)[:, 1].mean()  # first pixel first: the left cell
    assert divisions_in_labels(labels, RULE).keys() == {1}
    # confirmed only on the N-th frame of the split: two frames of it are not yet a division
    assert find_division(labels[:4] == 1, RULE) is None
    assert find_division(labels[:4] == 1, DivisionRule(frames=2, min_area=10)).frame == 2


def test_touching_cells_that_separate_briefly_and_merge_back_do_not_divide():
    labels = sequence(TOUCHING, TWO, TWO, TOUCHING, TOUCHING, TWO, TWO, ONE)
    assert find_division(labels == 1, RULE) is None
    assert divisions_in_labels(labels, RULE) == {}


def test_fragment_noise_is_no_division():
    noisy = [ONE[0], (2, 2, 1)]  # a 5-pixel fragment beside the cell, on every frame
    labels = sequence(ONE, noisy, noisy, noisy, noisy)
    assert find_division(labels == 1, RULE) is None
    # the same fragment counts as a part when the minimum area is lower: then it is a "division"
    assert find_division(labels == 1, DivisionRule(frames=3, min_area=4)) is not None


def test_a_part_that_vanishes_before_n_frames_is_no_division():
    labels = sequence(ONE, TWO, TWO, [TWO[0]], [TWO[0]], [TWO[0]])
    assert find_division(labels == 1, RULE) is None
    shrinking = sequence(ONE, TWO, TWO, [TWO[0], (15, 42, 1)], [TWO[0]])  # shrinks into a fragment
    assert find_division(shrinking == 1, RULE) is None


def test_three_parts_are_no_division_and_end_a_split():
    three = [(15, 10, 5), (15, 30, 5), (15, 50, 5)]
    assert find_division(sequence(ONE, three, three, three, three) == 1, RULE) is None
    assert find_division(sequence(ONE, TWO, TWO, three, TWO, TWO) == 1, RULE) is None
    # after three parts, two that last make a division from where they start
    assert find_division(sequence(ONE, three, TWO, TWO, TWO) == 1, RULE).frame == 2


def test_an_undone_split_is_not_proposed_again_while_it_stays_split():
    labels = sequence(ONE, TWO, TWO, TWO, TWO, TWO, ONE, TWO, TWO, TWO)
    assert find_division(labels == 1, RULE, rejected={1}).frame == 7  # merged, split again: a new proposal
    assert find_division(labels[:6] == 1, RULE, rejected={1}) is None


def test_rule_options_are_checked():
    with pytest.raises(PromptError, match="frames must be an integer >= 1"):
        DivisionRule(frames=0)
    with pytest.raises(PromptError, match="min_area"):
        DivisionRule(min_area=2.5)


# ------------------------------------------------------------------ the session
@pytest.fixture
def stack():
    rng = np.random.default_rng(0)
    return (rng.random((T, H, W, 3)) * 255).astype(np.uint8)


@pytest.fixture
def session(tiny_model, stack):
    s = tiny_model.open_stack(stack)
    for f, m in enumerate(cell_masks()):
        s.set_mask_prompts(f, {1: m})
    yield s
    s.close()


def test_a_split_cell_divides_and_the_daughters_are_tracked(session, tmp_path):
    masks = cell_masks()
    seen = [f for f, _ in session.propagate(detect_divisions=RULE)]
    # the pass stops on the frame that confirms the division and goes on from the split frame
    assert seen == [*range(SPLIT + RULE.frames), *range(SPLIT, T)]
    assert session.object_ids == [1, 2, 3] and session.lineage == {2: 1, 3: 1}
    assert session.divisions() == session.divisions(automatic_only=True) == [Division(1, SPLIT, (2, 3), True)]
    assert session.frames_with_output(1) == list(range(SPLIT))
    assert session.frames_with_output(2) == session.frames_with_output(3) == list(range(SPLIT, T))
    labels = session.labels()
    for f in range(T):
        left = masks[f] & (np.arange(W) < 24)
        expected = masks[f].astype(np.uint16) if f < SPLIT else np.where(left, 2, np.where(masks[f], 3, 0))
        np.testing.assert_array_equal(labels[f], expected)  # the parent's mask prompts went to the daughters
    # review: the split frame is doubtful for both daughters, with the reason
    rows = session.track_table()
    assert [(r["obj_id"], r["divided_from"]) for r in rows if r["divided_from"] is not None] == [(2, 1), (3, 1)]
    doubts = [(d.frame, d.obj_id, d.reason) for d in doubtful_frames(rows)]
    assert (SPLIT, 2, "automatic division") in doubts and (SPLIT, 3, "automatic division") in doubts
    # history: the run up to the confirming frame, the division, the rest of the pass
    kinds = [(type(r).__name__, getattr(r, "start", None), getattr(r, "frames", None)) for r in session.history
             if isinstance(r, (Divide, PropagationRun))]
    assert kinds == [("PropagationRun", 0, SPLIT + RULE.frames), ("Divide", None, None),
                     ("PropagationRun", SPLIT, T - SPLIT)]
    # exact replay from the saved file
    path = session.save_prompts(tmp_path / "div.json")
    annotation = load_annotation(path)
    assert annotation.version == 3 and {o.obj_id for o in annotation.objects()} == {1, 2, 3}
    again = session.segmenter.open_stack(session.source.stack)
    annotation.replay(again)
    assert again.lineage == {2: 1, 3: 1} and again.divisions() == session.divisions()
    np.testing.assert_array_equal(again.labels(), labels)
    assert [type(r) for r in again.history] == [type(r) for r in session.history]
    assert [r for r in again.history if isinstance(r, PropagationRun)] == \
        [r for r in session.history if isinstance(r, PropagationRun)]
    again.close()


def test_undo_restores_the_parent_and_the_division_is_not_made_again(session, tmp_path):
    before = session.prompts()[1]
    list(session.propagate(detect_divisions=RULE))
    session.undo_division(1)
    assert session.object_ids == [1] and session.lineage == {} and session.divisions() == []
    assert sorted(session.prompts()[1]) == sorted(before)  # the parent has its mask prompts back
    list(session.propagate(detect_divisions=RULE))
    assert session.object_ids == [1]  # the undone split is not proposed again
    labels = session.labels()
    np.testing.assert_array_equal(labels, np.stack(cell_masks()).astype(np.uint16))
    with pytest.raises(PromptError, match="no division made by divide"):
        session.undo_division(1)
    path = session.save_prompts(tmp_path / "undone.json")
    again = session.segmenter.open_stack(session.source.stack)
    load_annotation(path).replay(again)
    assert again.object_ids == [1] and again.lineage == {}
    np.testing.assert_array_equal(again.labels(), labels)
    list(again.propagate(detect_divisions=RULE))  # the replayed session knows the undo too
    assert again.object_ids == [1]
    again.close()


def test_both_directions_go_on_forward_then_backward(session):
    seen = [f for f, _ in session.propagate(start=2, direction="both", detect_divisions=RULE)]
    assert seen == [*range(2, SPLIT + RULE.frames), *range(SPLIT, T), 2, 1, 0]
    runs = [(r.start, r.direction, r.frames) for r in session.history if isinstance(r, PropagationRun)]
    assert runs == [(2, "both", SPLIT + RULE.frames - 2), (SPLIT, "forward", T - SPLIT), (2, "backward", 3)]
    assert session.lineage == {2: 1, 3: 1}


def test_no_division_without_the_rule_or_against_a_point_prompt(session):
    list(session.propagate())
    assert session.object_ids == [1]
    session.set_prompts(T - 1, 1, points=[[20, 10]])  # the user's word: one object after the split
    list(session.propagate(detect_divisions=RULE))
    assert session.object_ids == [1] and session.lineage == {}
    with pytest.raises(PromptError, match="not masks of two parts"):
        session.divide(1, SPLIT, parts(cell_masks()[SPLIT]))
    with pytest.raises(PromptError, match="DivisionRule"):
        session.propagate(detect_divisions=3)


def test_cli_detects_divisions(session, tmp_path, tiny_checkpoint, stack):
    import csv

    np.save(tmp_path / "s.npy", stack)
    session.save_prompts(tmp_path / "p.json")  # mask prompts on every frame, no propagation
    out = tmp_path / "labels.npy"
    assert main(["segment", str(tmp_path / "s.npy"), "-p", str(tmp_path / "p.json"), "-o", str(out), "--model",
                 str(tiny_checkpoint), "--device", "cpu", "--dtype", "float32", "-q", "--detect-divisions",
                 "--division-frames", "3", "--division-min-area", "10", "--track-table",
                 str(tmp_path / "t.csv")]) == 0
    labels = np.load(out)
    assert set(np.unique(labels[:SPLIT])) == {0, 1} and set(np.unique(labels[SPLIT:])) == {0, 2, 3}
    rows = list(csv.DictReader((tmp_path / "t.csv").open()))
    assert [(r["frame"], r["obj_id"]) for r in rows if r["divided_from"] == "1"] == [(str(SPLIT), "2"),
                                                                                     (str(SPLIT), "3")]
