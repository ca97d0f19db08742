"""Objects from a Labels layer in the widget (issue 15): seeds never merge into an object in use, the unused
placeholder "object 1" is taken over, ids a label image cannot hold get new ids, and a z-stack gets no
tracks layer."""

from __future__ import annotations

import numpy as np
import pytest

from gui_helpers import SIZE, T, idle, open_widget


def cell(r0: int, c0: int, n: int = 10) -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), bool)
    mask[r0:r0 + n, c0:c0 + n] = True
    return mask


def seed(qtbot, viewer, widget, plane: np.ndarray, name: str = "cellpose") -> list[str]:
    """Pick the Labels layer ``name`` (one frame, ``plane``) and press Objects from labels on frame 0;
    returns the widget's messages."""
    messages: list[str] = []
    widget.controller.message.connect(messages.append)
    viewer.add_labels(plane, name=name)
    viewer.dims.set_point(0, 0)
    qtbot.waitUntil(lambda: widget.seed_combo.findText(name) >= 0)
    widget.seed_combo.setCurrentText(name)
    widget.seed_button.click()
    return messages


@pytest.mark.parametrize("sam2", ["plugin"], indirect=True)
def test_a_seed_label_that_is_already_an_object_gets_a_fresh_id(sam2, qtbot):
    """Object 1 clicked on cell A, then a labels layer whose label 1 is cell B: two objects, object 1 keeps its
    click, label 1 becomes object 2 with cell B exactly; one message says so."""
    viewer, widget = sam2
    ctl = widget.controller
    viewer.dims.set_point(0, 0)
    ctl.layers.points.add([[0, 15, 15]])  # object 1 on cell A
    idle(qtbot, widget)
    b = cell(40, 40)
    messages = seed(qtbot, viewer, widget, np.where(b, 1, 0).astype(np.uint16))
    idle(qtbot, widget)
    assert ctl.objects == {1: "object 1", 2: "label 1"}
    row = widget.objects_list.list.item(1)  # the name says where it came from, the tooltip which id it has
    assert (row.text(), row.toolTip()) == ("label 1", "object 2: label 2 in 'SAM2 labels'")
    assert messages == ["Objects from 'cellpose' on frame 0: label 1 became object 2 (object 1 already exists)."]
    assert sorted(ctl.session.object_ids) == [1, 2]
    prompts = ctl.session.prompts()
    np.testing.assert_array_equal(prompts[1][0].points, [[15, 15]])  # object 1 still follows cell A's click
    assert prompts[1][0].mask is None
    np.testing.assert_array_equal(np.asarray(prompts[2][0].mask), b)
    assert (np.asarray(ctl.layers.labels.data[0])[b] == 2).all()  # the seed frame: cell B exactly, as object 2
    widget.forward_button.click()
    idle(qtbot, widget)
    assert ctl.session.frames_with_output(1) == ctl.session.frames_with_output(2) == list(range(T))


def test_the_unused_placeholder_is_taken_over_by_seed_label_1(sam2, qtbot):
    """No prompts yet: seed label 1 takes over "object 1" and every seed is named after its label."""
    viewer, widget = sam2
    ctl = widget.controller
    plane = np.zeros((SIZE, SIZE), np.uint8)
    for i, (r, c) in enumerate([(5, 5), (5, 40), (40, 5)], start=1):
        plane[cell(r, c)] = i
    messages = seed(qtbot, viewer, widget, plane)
    idle(qtbot, widget)
    assert ctl.objects == {1: "label 1", 2: "label 2", 3: "label 3"} and messages == []
    assert [w.text() for w in map(widget.objects_list.list.item, range(3))] == ["label 1", "label 2", "label 3"]
    np.testing.assert_array_equal(np.asarray(ctl.layers.labels.data[0]), plane)


@pytest.mark.parametrize("sam2", ["plugin"], indirect=True)
def test_an_int64_label_too_large_for_a_label_image(sam2, qtbot):
    """An int64 layer with label 2**40 (and 70000, above uint16): 2**40 gets a new id before it enters the
    list, with a message; Add object works at once (before the seeding job ran) and after."""
    viewer, widget = sam2
    ctl = widget.controller
    a, b = cell(5, 5), cell(40, 40)
    plane = np.zeros((SIZE, SIZE), np.int64)
    plane[a], plane[b] = 70000, 2**40
    messages = seed(qtbot, viewer, widget, plane)
    assert ctl.objects == {1: "object 1", 70000: "label 70000", 70001: f"label {2**40}"}
    assert messages == [f"Objects from 'cellpose' on frame 0: label {2**40} became object 70001 (label ids go "
                        f"up to {2**32 - 1})."]
    assert ctl.add_object() == 70002  # the labels layer holds the ids already
    assert ctl.layers.labels.selected_label == 70002 and ctl.layers.labels.data.dtype == np.uint32
    idle(qtbot, widget)
    assert ctl.add_object() == 70003
    np.testing.assert_array_equal(np.asarray(ctl.layers.labels.data[0]), np.where(a, 70000, 0)
                                  + np.where(b, 70001, 0))
    assert sorted(ctl.session.object_ids) == [70000, 70001]


@pytest.mark.parametrize("axis_label", ["z", "t", None])
def test_tracks_layer_only_for_time(gui_display, make_napari_viewer, qtbot, tiny_checkpoint, axis_label):
    """Seeding and propagating a z-stack makes no SAM2 tracks layer and offers no division or track export;
    a time-lapse has the layer; an unnamed axis gets it once a division asks for the lineage."""
    from napari_sam2.sample_data import make_timelapse

    viewer = make_napari_viewer()
    viewer.add_image(make_timelapse(T, SIZE), name="cells",
                     **({"axis_labels": (axis_label, "y", "x")} if axis_label else {}))
    widget = open_widget(viewer, "plugin")
    ctl = widget.controller
    ctl.load_model(str(tiny_checkpoint), "cpu")
    idle(qtbot, widget)
    seed(qtbot, viewer, widget, cell(20, 20).astype(np.uint8))
    idle(qtbot, widget)
    widget.forward_button.click()
    idle(qtbot, widget)
    assert ctl.tracking.rows
    names = [layer.name for layer in viewer.layers]
    if axis_label == "t":
        assert "SAM2 tracks" in names and ctl.tracking.tracks is not None
        return
    assert "SAM2 tracks" not in names and ctl.tracking.tracks is None
    assert widget.divide_button.isHidden() == widget.export_tracks_button.isHidden() == (axis_label == "z")
    assert widget.track_box.title() == ("Objects through the stack" if axis_label == "z" else "Tracking")
    if axis_label == "z":
        return
    viewer.dims.set_point(0, 3)
    widget.divide_button.click()  # a division asks for the lineage: now the layer shows it
    ctl.layers.points.add([[3, 22, 22]])
    ctl.select_object(3)
    ctl.layers.points.add([[3, 26, 26]])
    idle(qtbot, widget)
    widget.forward_button.click()
    idle(qtbot, widget)
    assert ctl.tracking.tracks is not None and dict(ctl.tracking.tracks.graph) == {2: [1], 3: [1]}


def test_add_object_after_seeds_at_the_dtype_limits(sam2, qtbot):
    """Add object after a seed with id 65535 (the uint16 limit) grows the labels layer to uint32 for id 65536;
    after a seed with the largest id a label image holds, it takes the smallest free id."""
    viewer, widget = sam2
    ctl = widget.controller
    seed(qtbot, viewer, widget, np.where(cell(5, 5), 65535, 0).astype(np.uint16))
    idle(qtbot, widget)
    assert ctl.layers.labels.data.dtype == np.uint16
    assert ctl.add_object() == 65536
    assert ctl.layers.labels.selected_label == 65536 and ctl.layers.labels.data.dtype == np.uint32
    seed(qtbot, viewer, widget, np.where(cell(40, 40), 2**32 - 1, 0).astype(np.uint32), name="more")
    assert set(ctl.objects) == {1, 65535, 65536, 2**32 - 1}
    assert ctl.add_object() == 2  # nothing above 2**32 - 1: the smallest free id
    idle(qtbot, widget)
