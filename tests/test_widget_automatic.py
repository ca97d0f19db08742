"""The automatic path in the widget, opened from Plugins ▸ SAM 2 with a real viewer: *Find objects* (fresh ids,
in the region, cancel, Save / Load prompts), *Detect divisions* (objects list, track table, doubtful frames,
Tracks layer, a rebind) and *Undo division*.

The tiny random-weight model finds meaningless objects (with loose thresholds) and draws meaningless masks, so
the division tests control every frame's mask with painted mask prompts, as tests/test_divisions.py does: a
disk that becomes two disks moving apart.
"""

from __future__ import annotations

import numpy as np
import pytest

from gui_helpers import SIZE, T, idle, open_widget
from napari_sam2.engine.automatic import FindOptions
from napari_sam2.engine.tracking.history import Divide, SetParent

LOOSE = FindOptions(points_per_side=4, points_per_batch=4, pred_iou_thresh=0.0, stability_score_thresh=0.0,
                    box_nms_thresh=0.95)
SPLIT = 2  # the frame the disk becomes two


# every test: the viewer of the ``sam2`` fixture with the widget opened from the Plugins menu
pytestmark = pytest.mark.parametrize("sam2", ["plugin"], indirect=True)


def auto_ids(ctl) -> list[int]:
    return sorted(oid for oid, name in ctl.objects.items() if name.startswith("auto "))


def find(widget, qtbot, min_size: int = 4) -> None:
    widget.controller.find_options = LOOSE
    widget.find_min_spin.setValue(min_size)
    widget.find_button.click()
    idle(qtbot, widget)


def test_find_objects_adds_fresh_objects_next_to_an_existing_one(sam2, qtbot):
    viewer, widget = sam2
    ctl = widget.controller
    viewer.dims.set_point(0, 1)
    ctl.layers.points.add([[1, 20, 20]])
    idle(qtbot, widget)
    find(widget, qtbot)
    found = auto_ids(ctl)
    assert found and found == list(range(2, 2 + len(found)))  # fresh ids after object 1, never 1
    assert ctl.session.object_ids == [1, *found] and ctl.find_min_area == 4
    assert [type(r).__name__ for r in ctl.session.history] == ["SetPrompts", "SetMasks"]  # one seeding
    for oid in found:  # in the widget's prompts, as seeds are, each of at least 'min size' pixels
        mask = np.asarray(ctl.sync_state.masks[(1, oid)])
        assert mask.sum() >= 4 and ctl.prompts[(1, oid)].same_as(ctl.sync_state.applied[(1, oid)])
        assert ctl.objects[oid] == f"auto {oid}"
    assert f"Found {len(found)} object" in widget.message_label.text()
    assert widget.objects_list.list.count() == len(ctl.objects)
    assert ctl.finder.bar is None  # the progress bar closed
    ctl.layers.points.add([[2, 30, 30]])  # another prompt: the found objects are not sent again
    idle(qtbot, widget)
    assert [type(r).__name__ for r in ctl.session.history] == ["SetPrompts", "SetMasks", "SetPrompts"]
    widget.reset_button.click()  # a new session: the found objects are sent again with the other prompts
    idle(qtbot, widget)
    assert ctl.session.object_ids == [1, *found]
    for oid in found:
        np.testing.assert_array_equal(np.asarray(ctl.session.prompts()[oid][1].mask),
                                      np.asarray(ctl.sync_state.masks[(1, oid)]))


def test_find_objects_in_the_region_and_cancel(sam2, qtbot):
    viewer, widget = sam2
    ctl = widget.controller
    widget.region_button.click()
    viewer.layers["SAM2 region"].add_rectangles(np.array([[0, 10, 12], [0, 10, 40], [0, 34, 40], [0, 34, 12]],
                                                         float))
    idle(qtbot, widget)
    assert ctl.region.roi == (10, 12, 35, 41)
    viewer.dims.set_point(0, 0)
    ctl.find_options = LOOSE
    widget.find_button.click()
    widget.cancel_button.click()  # before anything it found arrives: nothing is kept
    idle(qtbot, widget)
    assert auto_ids(ctl) == [] and ctl.finder.bar is None
    assert ctl.session is None or ctl.session.object_ids == []
    find(widget, qtbot, min_size=0)
    found = auto_ids(ctl)
    assert found and ctl.session.object_ids == found and ctl.session.roi == (10, 12, 35, 41)
    outside = np.ones((SIZE, SIZE), bool)
    outside[10:35, 12:41] = False
    for oid in found:
        assert not np.asarray(ctl.sync_state.masks[(0, oid)])[outside].any()
    assert not np.asarray(ctl.layers.labels.data[0])[outside].any()


def test_found_objects_save_and_load_in_a_new_widget(sam2, qtbot, tmp_path, make_napari_viewer, tiny_checkpoint):
    viewer, widget = sam2
    ctl = widget.controller
    viewer.dims.set_point(0, 0)
    find(widget, qtbot)
    found = auto_ids(ctl)
    assert found
    widget.forward_button.click()
    idle(qtbot, widget)
    ctl.save_prompts(tmp_path / "auto.json")
    idle(qtbot, widget)
    expected = np.asarray(ctl.layers.labels.data).copy()
    np.testing.assert_array_equal(expected, ctl.session.labels())

    other = make_napari_viewer()
    other.add_image(np.asarray(viewer.layers["cells"].data), name="cells", axis_labels=("t", "y", "x"))
    again = open_widget(other, "plugin")
    again.model_picker.set_source(str(tiny_checkpoint))
    again.model_picker.device.setCurrentText("cpu")
    again.model_picker.load_button.click()
    idle(qtbot, again)
    again.controller.load_prompts(tmp_path / "auto.json")
    idle(qtbot, again)
    np.testing.assert_array_equal(np.asarray(again.controller.layers.labels.data), expected)
    assert auto_ids(again.controller) == found


# ------------------------------------------------------------------ divisions
def disk(r: float, c: float, rad: float) -> np.ndarray:
    yy, xx = np.ogrid[:SIZE, :SIZE]
    return (yy - r) ** 2 + (xx - c) ** 2 <= rad**2


def cell_mask(frame: int) -> np.ndarray:
    """One cell: a disk, from SPLIT on two disks moving apart."""
    if frame < SPLIT:
        return disk(32, 32, 8)
    gap = 12 + 2 * (frame - SPLIT)
    return disk(32, 32 - gap, 6) | disk(32, 32 + gap, 6)


def paint_every_frame(viewer, widget, qtbot) -> None:
    """Object 1 painted into 'SAM2 labels' on every frame, each sent as its mask prompt (Use painted mask)."""
    ctl = widget.controller
    labels = ctl.layers.labels
    for f in range(T):
        viewer.dims.set_point(0, f)
        labels.data[f] = np.where(cell_mask(f), 1, 0)  # painted with the brush
        widget.mask_button.click()
        idle(qtbot, widget)


def divide_automatically(viewer, widget, qtbot) -> tuple[int, int]:
    ctl = widget.controller
    paint_every_frame(viewer, widget, qtbot)
    assert widget.divisions_row.isVisible() or not widget.isVisible()
    widget.detect_check.setChecked(True)
    widget.division_area_spin.setValue(10)
    assert ctl.detect_divisions is not None and ctl.detect_divisions.frames == 3
    assert ctl.detect_divisions.min_area == 10
    widget.first_spin.setValue(0)
    widget.forward_button.click()
    idle(qtbot, widget)
    assert ctl.session.lineage == {2: 1, 3: 1}
    return 2, 3


def test_detect_divisions_shows_the_daughters_and_undo_takes_them_back(sam2, qtbot):
    viewer, widget = sam2
    ctl = widget.controller
    a, b = divide_automatically(viewer, widget, qtbot)
    # the objects list has the daughters, the widget keeps their prompts and links
    assert ctl.objects[a] == "object 1.1" and ctl.objects[b] == "object 1.2"
    assert widget.objects_list.list.count() == 3
    assert ctl.tracking.marked == {a: 1, b: 1} and ctl.tracking.parents == {a: 1, b: 1}
    assert {(SPLIT, a), (SPLIT, b)} <= set(ctl.sync_state.masks)
    assert not [k for k in ctl.sync_state.masks if k[1] == 1 and k[0] >= SPLIT]  # given to the daughters
    assert ctl.propagation.done == T  # frames drawn again with the daughters are not counted twice
    labels = np.asarray(ctl.layers.labels.data)
    assert not np.isin(labels[SPLIT:], [1]).any() and {a, b} <= set(np.unique(labels[SPLIT:]))
    # the track table and the doubtful frames say it, the Tracks layer links it
    born = {(r["obj_id"], r["divided_from"]) for r in ctl.tracking.rows if r["divided_from"] is not None}
    assert born == {(a, 1), (b, 1)}
    assert {(d.frame, d.obj_id, d.reason) for d in ctl.tracking.doubts} >= {(SPLIT, a, "automatic division"),
                                                                              (SPLIT, b, "automatic division")}
    assert "automatic division" in widget.message_label.text() or "automatic division" in str(ctl.tracking.doubts)
    ctl.select_object(a)
    viewer.dims.set_point(0, 0)
    widget.doubt_button.click()
    assert ctl.current_frame() == SPLIT and "automatic division" in widget.message_label.text()
    tracks = ctl.tracking.tracks
    assert tracks is not None and dict(tracks.graph) == {a: [1], b: [1]}
    # a sync after all that sends nothing
    history = len(ctl.session.history)
    ctl.sync()
    idle(qtbot, widget)
    assert len(ctl.session.history) == history
    # undo: the daughters go everywhere, the parent has its prompts back
    widget.undo_division_button.click()
    idle(qtbot, widget)
    assert ctl.session.object_ids == [1] and ctl.session.lineage == {} and ctl.session.divisions() == []
    assert set(ctl.objects) == {1} and ctl.current_obj == 1 and ctl.tracking.marked == {}
    assert sorted(k for k in ctl.sync_state.masks if k[1] == 1) == [(f, 1) for f in range(T)]
    assert not np.isin(np.asarray(ctl.layers.labels.data), [a, b]).any()
    assert "undone" in widget.message_label.text()
    assert dict(ctl.tracking.tracks.graph) == {}
    widget.forward_button.click()  # the undone split is not proposed again
    idle(qtbot, widget)
    assert ctl.session.object_ids == [1]


def test_automatic_divisions_survive_a_rebind(sam2, qtbot):
    viewer, widget = sam2
    ctl = widget.controller
    a, b = divide_automatically(viewer, widget, qtbot)
    widget.reset_button.click()  # a new session: the widget sends the daughters' prompts and links again
    idle(qtbot, widget)
    session = ctl.session
    assert session.object_ids == [1, a, b] and session.lineage == {a: 1, b: 1}
    assert not any(isinstance(r, Divide) for r in session.history)
    assert sum(isinstance(r, SetParent) for r in session.history) == 2
    assert sorted(session.prompts()[1]) == list(range(SPLIT))
    assert sorted(session.prompts()[a]) == sorted(session.prompts()[b]) == list(range(SPLIT, T))
    widget.forward_button.click()
    idle(qtbot, widget)
    assert session.lineage == {a: 1, b: 1} and dict(ctl.tracking.tracks.graph) == {a: [1], b: [1]}
    # undo of the division, now a link: the daughters are removed, the parent is tracked on
    ctl.select_object(b)
    assert ctl.undo_division() == 1
    idle(qtbot, widget)
    assert session.object_ids == [1] and session.lineage == {} and set(ctl.objects) == {1}
