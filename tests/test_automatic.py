"""Automatic objects on a frame (engine/automatic): parity with Meta's SAM2AutomaticMaskGenerator, the exact
NMS, small-region removal, options, and sessions (fresh objects, exact seeds, replay, regions, cancel)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import napari_sam2
from napari_sam2.engine.automatic import FindCancelled, FindOptions
from napari_sam2.engine.automatic.grid import crop_layout, regular_grid
from napari_sam2.engine.automatic.labels import objects_to_labels
from napari_sam2.engine.automatic.nms import box_nms
from napari_sam2.engine.automatic.options import FoundObject
from napari_sam2.engine.automatic.regions import fill_small_regions
from napari_sam2.engine.components import component_areas
from napari_sam2.errors import PromptError
from napari_sam2.model import VARIANTS
from napari_sam2.model.checkpoint import CONFIG_KEY
from reference.seeded_weights import official_shapes, seeded_state_dict, state_dict_digest

FIXTURE = Path(__file__).parent / "data" / "amg" / "sam2.1_hiera_tiny_512.npz"


# ------------------------------------------------------------------ parity
@pytest.fixture(scope="module")
def amg_fixture(tmp_path_factory):
    fx = np.load(FIXTURE)
    variant = str(fx["variant"])
    state = seeded_state_dict(official_shapes(variant), seed=int(fx["weights_seed"]))
    assert state_dict_digest(state) == str(fx["weights_sha256"])  # the weights the reference saw
    cfg = dataclasses.replace(VARIANTS[variant], image_size=int(fx["image_size"]))
    ckpt = tmp_path_factory.mktemp("amg") / "model.pt"
    torch.save({"model": state, CONFIG_KEY: cfg.to_dict()}, ckpt)
    return fx, napari_sam2.load_model(ckpt, device="cpu", dtype="float32")


@pytest.mark.parametrize("case", ["crops", "m2m"])
def test_find_objects_matches_metas_automatic_mask_generator(amg_fixture, case):
    """Same number of masks in the same order, each mask >= 99.9 % the same pixels, predicted IoU within
    1e-4, and the same boxes, points and crops (held-out weights seed, picture and options)."""
    fx, seg = amg_fixture
    image = fx["image"]
    options = json.loads(str(fx[f"{case}_options"]))
    found = seg.find_objects(image, **options)
    n = int(fx[f"{case}_count"])
    assert n >= (3 if case == "crops" else 1) and len(found) == n
    ref_masks = np.unpackbits(fx[f"{case}_masks_packed"], axis=-1, count=image.shape[1]).astype(bool)
    for k, obj in enumerate(found):
        assert obj.mask.shape == image.shape[:2] and obj.mask.dtype == bool
        agree = (obj.mask == ref_masks[k]).mean()
        assert agree >= 0.999, (k, agree)
        assert obj.score == pytest.approx(float(fx[f"{case}_predicted_iou"][k]), abs=1e-4)
        assert obj.stability == pytest.approx(float(fx[f"{case}_stability_score"][k]), abs=2e-3)
        assert abs(obj.area - int(fx[f"{case}_area"][k])) <= 0.001 * obj.mask.size
        x, y, w, h = fx[f"{case}_bbox_xywh"][k]  # Meta: inclusive bounds, width = last - first
        assert obj.bbox == (int(y), int(x), int(y + h) + 1, int(x + w) + 1)
        px, py = fx[f"{case}_point_xy"][k]
        assert obj.point == pytest.approx((py, px), abs=1e-4)
        cx, cy, cw, ch = fx[f"{case}_crop_box_xywh"][k]
        assert obj.crop == (int(cy), int(cx), int(cy + ch), int(cx + cw))


# ------------------------------------------------------------------ parts
def _torchvision_like_nms(boxes, scores, thresh):
    """The textbook greedy NMS over a full IoU matrix, float32, stable descending order."""
    b = np.asarray(boxes, np.float32)
    order = sorted(range(len(scores)), key=lambda i: -float(scores[i]))  # Python's sort is stable
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    keep, dead = [], set()
    for i in order:
        if i in dead:
            continue
        keep.append(i)
        for j in order:
            if j in dead or j == i or j in keep:
                continue
            w = np.maximum(np.float32(0), np.minimum(b[i, 2:], b[j, 2:]) - np.maximum(b[i, :2], b[j, :2]))
            inter = w[0] * w[1]
            with np.errstate(invalid="ignore", divide="ignore"):
                if float(inter / (area[i] + area[j] - inter)) > thresh:
                    dead.add(j)
    return keep


def test_box_nms_keeps_the_same_boxes_as_greedy_nms_with_ties():
    rng = np.random.default_rng(3)
    for _ in range(30):
        n = int(rng.integers(1, 40))
        lo = rng.integers(0, 30, size=(n, 2))
        boxes = np.concatenate([lo, lo + rng.integers(0, 15, size=(n, 2))], axis=1)  # some zero-width boxes
        scores = rng.choice(np.float32([0.5, 0.7, 0.9]), size=n)  # many exact ties
        thresh = float(rng.choice([0.0, 0.3, 0.5, 0.7]))
        assert box_nms(boxes, scores, thresh).tolist() == _torchvision_like_nms(boxes, scores, thresh)
    # equal scores: the earlier box wins; identical boxes at IoU exactly 1 are not above a threshold of 1
    same = np.array([[0, 0, 10, 10]] * 3)
    assert box_nms(same, np.ones(3, np.float32), 0.5).tolist() == [0]
    assert box_nms(same, np.ones(3, np.float32), 1.0).tolist() == [0, 1, 2]
    assert box_nms(np.zeros((0, 4)), np.zeros(0, np.float32), 0.5).tolist() == []


def test_component_areas_are_8_connected_and_small_regions_are_filled():
    m = np.zeros((12, 12), bool)
    m[1:4, 1:4] = True  # 9 pixels
    m[4, 4] = True  # touches the block diagonally: the same component (10)
    m[8:10, 8:11] = True  # 6 pixels
    m[0, 11] = True  # a speck
    areas = component_areas(m[None])[0]
    assert areas[2, 2] == areas[4, 4] == 10 and areas[9, 9] == 6 and areas[0, 11] == 1 and areas[6, 6] == 0
    # a 1-pixel-wide snake is one component
    snake = np.zeros((9, 9), bool)
    snake[0, :] = snake[:, 8] = snake[8, :] = True
    assert component_areas(snake[None])[0][8, 0] == 25
    logits = np.where(m, 5.0, -5.0).astype(np.float32)
    logits[2, 2] = -1.0  # a one-pixel hole in the block
    out = fill_small_regions(torch.from_numpy(logits)[None, None], 6)[0, 0].numpy()
    assert out[2, 2] == 10.0  # hole filled
    assert out[9, 9] == -10.0 and out[0, 11] == -10.0  # components of <= 6 pixels removed
    assert out[1, 1] == 5.0 and out[6, 6] == -5.0  # the rest untouched (the big background is no hole)
    assert fill_small_regions(torch.from_numpy(logits)[None, None], 0) is not None


def test_grids_and_crops_follow_metas_layout():
    g = regular_grid(2)
    np.testing.assert_array_equal(g, [[0.25, 0.25], [0.25, 0.75], [0.75, 0.25], [0.75, 0.75]])  # col fastest
    layout = crop_layout((100, 160), 1, 512 / 1500)
    assert layout[0] == ((0, 0, 100, 160), 0) and len(layout) == 5
    # column-major over the 2 x 2 crops, each crop inside the image and overlapping its neighbour
    assert [c[:2] for c, _ in layout[1:]] == [(0, 0), (33, 0), (0, 63), (33, 63)]
    assert all(c[2] <= 100 and c[3] <= 160 for c, _ in layout)


def test_options_are_checked_with_messages_that_say_what_to_do():
    assert FindOptions().points_per_side == 32 and FindOptions().box_nms_thresh == 0.7
    with pytest.raises(PromptError, match="exactly one of points_per_side"):
        FindOptions(points_per_side=None)
    with pytest.raises(PromptError, match="pred_iou_thresh must be a number in"):
        FindOptions(pred_iou_thresh=1.5)
    with pytest.raises(PromptError, match="points_per_batch must be an integer >= 1"):
        FindOptions(points_per_batch=0)
    with pytest.raises(PromptError, match="crop layer 2 would get no clicks"):
        FindOptions(points_per_side=2, crop_n_layers=2, crop_n_points_downscale_factor=2)
    with pytest.raises(PromptError, match=r"unknown option\(s\) \['points'\]"):
        FindOptions().replace(points=3)
    custom = FindOptions().replace(point_grids=[np.array([[0.5, 0.5]])])
    assert custom.points_per_side is None and len(custom.point_grids) == 1


def test_overlaps_go_to_the_better_object_and_small_leftovers_are_dropped():
    def obj(r0, r1, score):
        m = np.zeros((10, 10), bool)
        m[r0:r1, 2:8] = True
        return FoundObject(m, score, 0.9, (r0, 2, r1, 8), int(m.sum()), (0.0, 0.0), (0, 0, 10, 10))

    objects = [obj(0, 6, 0.5), obj(4, 10, 0.9), obj(5, 7, 0.4)]
    labels, kept = objects_to_labels(objects, (10, 10), min_area=3)
    assert kept == [1, 0]  # best first; the third is fully covered -> dropped
    assert (labels[4:10, 2:8] == 1).all() and (labels[0:4, 2:8] == 2).all()


# ------------------------------------------------------------------ tiny model: image and session
def _stack(t=3, h=40, w=48):
    rng = np.random.default_rng(1)
    return (rng.random((t, h, w)) * 255).astype(np.uint8)


LOOSE = dict(points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=0.95)


def test_session_find_objects_adds_fresh_objects_exact_on_the_frame_and_replays(tiny_model, tmp_path):
    from napari_sam2.engine.io.prompt_file import load_annotation

    stack = _stack()
    session = tiny_model.open_stack(stack)
    try:
        keep = np.zeros((40, 48), bool)
        keep[2:8, 2:8] = True
        session.set_mask_prompts(1, {3: keep})
        before = session.frame_labels(1)
        found = tiny_model.find_objects(stack[1], **LOOSE)  # the image path, for the count
        assert found and all(o.mask.shape == (40, 48) for o in found)
        mapping = session.find_objects(1, min_area=4, **LOOSE)
        assert mapping and list(mapping) == list(range(1, len(mapping) + 1))
        assert sorted(mapping.values()) == list(range(4, 4 + len(mapping)))  # fresh ids after 3, never 3
        assert sorted(session.object_ids) == [3, *sorted(mapping.values())]
        np.testing.assert_array_equal(np.asarray(session.prompts()[3][1].mask), keep)  # object 3 untouched
        labels = session.frame_labels(1)
        np.testing.assert_array_equal(labels[before == 3], 3)
        for oid in mapping.values():
            assert (labels == oid).sum() >= 4  # frame-exact seeds, each above min_area
        # the same search again finds nothing new: what it finds is already there
        history = len(session.history)
        assert session.find_objects(1, min_area=4, **LOOSE) == {}
        assert len(session.history) == history and sorted(session.object_ids) == [3, *sorted(mapping.values())]
        list(session.propagate(start=1, max_frames=1))
        path = session.save_prompts(tmp_path / "auto.json")
        again = tiny_model.open_stack(stack)
        try:
            load_annotation(path).replay(again)
            assert sorted(again.object_ids) == sorted(session.object_ids)
            np.testing.assert_array_equal(again.labels(), session.labels())
        finally:
            again.close()
    finally:
        session.close()


def test_session_find_objects_in_a_region_and_cancel(tiny_model):
    stack = _stack()
    session = tiny_model.open_stack(stack)
    try:
        calls = []
        with pytest.raises(FindCancelled):
            session.find_objects(0, progress=lambda done, total: calls.append((done, total)) or False, **LOOSE)
        assert calls == [(16, 16)] and session.object_ids == [] and session.history == []  # nothing changed
        mapping = session.find_objects(0, region=(10, 12, 34, 40), **LOOSE)
        labels = session.frame_labels(0)
        assert mapping and labels.any()
        outside = np.ones(labels.shape, bool)
        outside[10:34, 12:40] = False
        assert not labels[outside].any()  # only in the region
        with pytest.raises(PromptError, match="min_area"):
            session.find_objects(0, min_area=-1)
    finally:
        session.close()


def test_find_objects_with_crops_and_a_region_stays_in_image_coordinates(tiny_model):
    image = _stack(1, 60, 64)[0]
    found = tiny_model.find_objects(image, region=(4, 8, 56, 60), crop_n_layers=1, **LOOSE)
    assert found
    for o in found:
        r0, c0, r1, c1 = o.bbox
        rows, cols = np.nonzero(o.mask)
        assert (rows.min(), cols.min(), rows.max() + 1, cols.max() + 1) == (r0, c0, r1, c1)
        assert 4 <= r0 and r1 <= 56 and 8 <= c0 and c1 <= 60 and o.area == len(rows)
