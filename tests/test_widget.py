"""The napari widget with a real viewer and the tiny random-weight model (pytest-qt, Xvfb)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from gui_helpers import SIZE, TIMEOUT, T, idle
from napari_sam2.engine.tracking.session import TrackingSession
from napari_sam2.sample_data import make_timelapse


def test_point_segments_current_frame(sam2, qtbot):
    viewer, widget = sam2
    ctl = widget.controller
    said = []
    ctl.status.connect(said.append)
    viewer.dims.set_point(0, 2)
    points = ctl.layers.points
    points.add([[2, 20, 20]])
    idle(qtbot, widget)
    labels = ctl.layers.labels.data
    np.testing.assert_array_equal(labels[2], ctl.session.frame_labels(2))
    assert labels[2].any() and not labels[[0, 1, 3, 4, 5]].any()
    assert ctl.session.prompts()[1][2].points.tolist() == [[20, 20]]
    # busy, then idle (frame 2 may have been encoded in the background already: napari can open
    # with any frame in view, and the frame in view is prepared while nothing else runs)
    assert any(t.startswith("Segmenting object 1 on frame 2") for t in said) and said[-1] == ""
    assert widget.status_label.text() == "idle" and widget.busy_bar.isHidden()


def test_frame_in_view_is_encoded_in_the_background(sam2, qtbot):
    """Moving to a frame encodes it while nothing else runs: the first click there is decoder-only."""
    viewer, widget = sam2
    ctl = widget.controller
    viewer.dims.set_point(0, 4)
    qtbot.waitUntil(lambda: ctl.session is not None and ctl.session.has_embedding(4), timeout=TIMEOUT)
    idle(qtbot, widget)
    encoded = ctl.session.frames_encoded
    ctl.layers.points.add([[4, 20, 20]])
    idle(qtbot, widget)
    assert ctl.session.frames_encoded == encoded and ctl.layers.labels.data[4].any()


def test_box_is_a_second_object(sam2, qtbot):
    viewer, widget = sam2
    ctl = widget.controller
    ctl.layers.points.add([[1, 20, 20]])
    widget.objects_list.add_clicked.emit()
    qtbot.waitUntil(lambda: widget.objects_list.list.count() == 2)
    assert ctl.current_obj == 2 and widget.objects_list.current_id() == 2
    ctl.layers.shapes.add_rectangles(np.array([[3, 30, 30], [3, 30, 55], [3, 55, 55], [3, 55, 30]]))
    idle(qtbot, widget)
    assert ctl.layers.shapes.features["obj_id"].tolist() == [2]
    assert ctl.session.object_ids == [1, 2]
    assert ctl.session.prompts()[2][3].box.tolist() == [30, 30, 55, 55]
    np.testing.assert_array_equal(ctl.layers.labels.data[3], ctl.session.frame_labels(3))
    assert 2 in np.unique(ctl.layers.labels.data[3])
    # the swatch of each object has its label colour
    assert widget.objects_list.list.item(1).data(256) == 2


def test_propagate_both_ways_fills_every_frame(sam2, qtbot, notes):
    viewer, widget = sam2
    ctl = widget.controller
    ctl.layers.points.add([[3, 20, 20]])
    idle(qtbot, widget)
    widget.both_button.click()
    # frame 3 comes twice (forward, backward)
    assert ctl.propagation.bar is not None and ctl.propagation.bar.total == T + 1
    idle(qtbot, widget)
    assert ctl.propagation.bar is None and ctl.propagation.done == T + 1
    assert ctl.session.frames_with_output(1) == list(range(T))
    for f in range(T):
        np.testing.assert_array_equal(ctl.layers.labels.data[f], ctl.session.frame_labels(f))
    assert not [n for n in notes() if n[0] in ("error", "warning")]


def test_cancel_stops_within_a_frame_and_keeps_done_frames(sam2, qtbot, monkeypatch, notes, slow_model):
    viewer, widget = sam2
    ctl = widget.controller
    ctl.layers.points.add([[0, 20, 20]])
    idle(qtbot, widget)
    shown = ctl.propagation.propagated
    at_cancel = []

    def spy(value):
        if ctl.propagation.done == 0:
            at_cancel.append(len(ctl.session.frames_with_output(1)))  # frames the engine has finished
            widget.cancel_button.click()  # as soon as the first frame is shown
        shown(value)

    monkeypatch.setattr(ctl.propagation, "propagated", spy)
    widget.forward_button.click()
    idle(qtbot, widget)
    done = ctl.session.frames_with_output(1)
    # the cancel stops within a frame (counted, not timed): only the frame in flight may finish
    assert len(at_cancel) == 1 and len(done) <= at_cancel[0] + 1 < T and done[0] == 0
    assert done == list(range(len(done)))  # what was computed stays, in order
    assert ctl.propagation.done == len(done)  # ... and is drawn: engine and labels layer are in step
    for f in range(T):
        np.testing.assert_array_equal(ctl.layers.labels.data[f], ctl.session.frame_labels(f))
    assert any("cancelled" in msg for _, msg in notes())
    assert ctl.propagation.bar is None
    # the same button continues where the run stopped, with the result of an uninterrupted run
    monkeypatch.setattr(ctl.propagation, "propagated", shown)
    widget.forward_button.click()
    assert ctl.propagation.bar is not None and ctl.propagation.bar.total == T - len(done)
    idle(qtbot, widget)
    assert any("Continuing the cancelled propagation at frame" in msg for _, msg in notes())
    assert ctl.session.frames_with_output(1) == list(range(T))
    whole = ctl.model.open_stack(ctl.image.data)
    whole.set_prompts(0, 1, points=[[20, 20]])
    list(whole.propagate())
    for f in range(T):
        np.testing.assert_array_equal(ctl.session.logits(f, 1), whole.logits(f, 1))
        np.testing.assert_array_equal(ctl.layers.labels.data[f], whole.frame_labels(f))
    whole.close()


def test_correction_keeps_its_mask_after_repropagation(sam2, qtbot):
    viewer, widget = sam2
    ctl = widget.controller
    ctl.layers.points.add([[0, 20, 20]])
    idle(qtbot, widget)
    widget.forward_button.click()
    idle(qtbot, widget)
    before = ctl.layers.labels.data[4].copy()
    widget.negative_button.click()
    viewer.dims.set_point(0, 4)
    ctl.layers.points.add([[4, 40, 40]])
    assert ctl.layers.points.features["positive"].tolist() == [True, False]
    idle(qtbot, widget)
    corrected = ctl.layers.labels.data[4].copy()
    assert not np.array_equal(before, corrected)
    np.testing.assert_array_equal(corrected, ctl.session.frame_labels(4))
    widget.forward_button.click()
    idle(qtbot, widget)
    np.testing.assert_array_equal(ctl.layers.labels.data[4], corrected)
    for f in range(T):
        np.testing.assert_array_equal(ctl.layers.labels.data[f], ctl.session.frame_labels(f))


def test_bad_actions_give_notifications_not_exceptions(sam2, qtbot, notes, slow_model):
    viewer, widget = sam2
    ctl = widget.controller
    widget.both_button.click()  # nothing to propagate
    idle(qtbot, widget)
    assert any("Nothing to propagate" in msg for _, msg in notes())
    ctl.layers.points.add([[1, -30, 10]])  # outside the image
    idle(qtbot, widget)
    assert any("outside the 64 x 64 image" in msg for _, msg in notes())
    assert ctl.session.object_ids == []
    ctl.layers.points.remove([0])
    ctl.layers.points.add([[1, 20, 20]])
    idle(qtbot, widget)
    widget.forward_button.click()
    qtbot.waitUntil(lambda: ctl.propagation.done >= 1, timeout=TIMEOUT)
    viewer.layers.remove("cells")  # the image goes away mid-propagation
    assert ctl.runner.current is not None and ctl.runner.current.cancelled
    idle(qtbot, widget)
    qtbot.waitUntil(lambda: any("was removed" in msg for _, msg in notes()))
    assert ctl.image is None and ctl.session is None and widget.image_combo.count() == 0
    widget.both_button.click()
    assert any("Pick an image layer" in msg for _, msg in notes())


def test_save_and_load_prompts_reproduce_the_labels(sam2, qtbot, tmp_path, notes):
    viewer, widget = sam2
    ctl = widget.controller
    ctl.layers.points.add([[1, 20, 20], [1, 25, 30]])
    ctl.rename_object(1, "cell A")
    ctl.add_object("cell B")
    ctl.layers.shapes.add_rectangles(np.array([[3, 30, 30], [3, 30, 55], [3, 55, 55], [3, 55, 30]]))
    ctl.add_object()
    viewer.dims.set_point(0, 4)
    ctl.layers.labels.data[4, 5:15, 40:60] = 3  # painted with the brush
    widget.mask_button.click()
    idle(qtbot, widget)
    assert ctl.session.prompts()[3][4].mask is not None
    widget.both_button.click()
    idle(qtbot, widget)
    ctl.select_object(1)  # a correction on frame 2, then forward again from there
    ctl.set_positive(False)
    ctl.layers.points.add([[2, 24, 28]])
    idle(qtbot, widget)
    widget.forward_button.click()
    idle(qtbot, widget)
    expected = np.array(ctl.layers.labels.data)
    path = tmp_path / "prompts.json"
    ctl.save_prompts(path)
    idle(qtbot, widget)
    assert path.is_file() and any("Saved the prompts of 3 object(s)" in m for _, m in notes())

    # start from nothing: delete the objects (their prompts and labels go too)
    for obj in (1, 2, 3):
        ctl.delete_object(obj)
    idle(qtbot, widget)
    assert (
        not ctl.layers.labels.data.any() and len(ctl.layers.points.data) == 0 and ctl.session.object_ids == []
    )
    ctl.load_prompts(path)
    idle(qtbot, widget)
    assert ctl.objects == {1: "cell A", 2: "cell B", 3: "object 3"}
    assert len(ctl.layers.points.data) == 3 and len(ctl.layers.shapes.data) == 1
    qtbot.waitUntil(lambda: widget.objects_list.list.count() == 3)
    # the file's history is replayed: clicks, propagation, correction, propagation -> the same labels
    np.testing.assert_array_equal(np.asarray(ctl.layers.labels.data), expected)
    replayed = len(ctl.session.history)
    widget.forward_button.click()  # nothing was re-sent: the layers match what the replay gave the engine
    idle(qtbot, widget)
    assert [type(r).__name__ for r in ctl.session.history[replayed:]] == ["PropagationRun"]


def test_closing_the_widget_mid_propagation_stops_cleanly(sam2, qtbot, slow_model):
    viewer, widget = sam2
    ctl = widget.controller
    ctl.layers.points.add([[0, 20, 20]])
    idle(qtbot, widget)
    session = ctl.session
    tmp = __import__("pathlib").Path(session._store._tmp.name)
    widget.forward_button.click()
    qtbot.waitUntil(lambda: ctl.propagation.done >= 1, timeout=TIMEOUT)
    worker = ctl.runner._current[1]
    viewer.window.remove_dock_widget(widget)
    assert ctl.runner.closed and ctl.viewer is None
    qtbot.waitUntil(lambda: not worker.is_running, timeout=5000)
    qtbot.waitUntil(lambda: not tmp.exists(), timeout=5000)  # session.close() ran after the worker ended
    assert len(session._objects[1].frames_with_output()) < T  # stopped early (the closed session refuses calls)
    # the layers stay, and editing them no longer reaches the (closed) widget
    viewer.layers["SAM2 points"].add([[2, 10, 10]])
    qtbot.wait(100)


def test_closing_the_viewer_mid_propagation_stops_cleanly(gui_display, qtbot, tiny_checkpoint, slow_model):
    import napari

    from napari_sam2.gui import Sam2Widget

    viewer = napari.Viewer(show=False)
    viewer.add_image(make_timelapse(T, SIZE), name="cells", axis_labels=("t", "y", "x"))
    widget = Sam2Widget(viewer)
    viewer.window.add_dock_widget(widget)
    ctl = widget.controller
    ctl.load_model(str(tiny_checkpoint), "cpu")
    ctl.layers.points.add([[0, 20, 20]])
    idle(qtbot, widget)
    ctl.propagate("forward")
    qtbot.waitUntil(lambda: ctl.propagation.done >= 1, timeout=TIMEOUT)
    worker = ctl.runner._current[1]
    viewer.close()
    qtbot.waitUntil(lambda: ctl.runner.closed, timeout=5000)
    qtbot.waitUntil(lambda: not worker.is_running, timeout=5000)


@pytest.fixture
def bare(gui_display, make_napari_viewer, qtbot, tiny_checkpoint):
    """A viewer and a docked widget with the tiny model loaded; add your own image first."""
    from napari_sam2.gui import Sam2Widget

    def make(*layers):
        viewer = make_napari_viewer()
        for data, kwargs in layers:
            viewer.add_image(data, **kwargs)
        widget = Sam2Widget(viewer)
        viewer.window.add_dock_widget(widget)
        widget.controller.load_model(str(tiny_checkpoint), "cpu")
        idle(qtbot, widget)
        return viewer, widget

    return make


def test_2d_and_rgb_images(bare, qtbot):
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 4000, (50, 60), dtype=np.uint16)
    rgb = rng.integers(0, 255, (4, 50, 60, 3), dtype=np.uint8)
    viewer, widget = bare((gray, {"name": "gray"}), (rgb, {"name": "rgb", "rgb": True}))
    ctl = widget.controller
    assert (
        widget.image_combo.currentText() == "rgb" and ctl.geometry.label_shape == (4, 50, 60)
        and ctl.geometry.channel_axis == 3
    )
    assert ctl.layers.labels.data.shape == (4, 50, 60)
    ctl.layers.points.add([[2, 10, 10]])
    idle(qtbot, widget)
    np.testing.assert_array_equal(ctl.layers.labels.data[2], ctl.session.frame_labels(2))
    assert ctl.session.frame_shape == (50, 60)

    viewer.layers["gray"].scale = (0.5, 0.5)
    widget.image_combo.setCurrentIndex(0)  # the 2-D image: one frame, new layers of its dimensionality
    assert tuple(ctl.layers.points.scale) == (0.5, 0.5)
    assert ctl.geometry.axis is None and not widget.axis_combo.isEnabled()
    assert ctl.layers.labels.data.shape == (50, 60) and ctl.layers.points.ndim == 2
    ctl.layers.points.add([[10, 10]])
    idle(qtbot, widget)
    assert ctl.session.num_frames == 1
    np.testing.assert_array_equal(ctl.layers.labels.data, ctl.session.frame_labels(0))
    widget.both_button.click()
    idle(qtbot, widget)
    assert ctl.session.frames_with_output() == [0]


def test_4d_tracks_along_the_chosen_axis_in_the_current_plane(bare, qtbot, notes):
    rng = np.random.default_rng(0)
    tzyx = rng.integers(0, 4000, (5, 3, 40, 48), dtype=np.uint16)
    viewer, widget = bare()
    viewer.add_image(tzyx, name="tzyx", axis_labels=("t", "z", "y", "x"))
    viewer.dims.set_point(1, 2)  # z = 2
    ctl = widget.controller
    assert widget.image_combo.currentText() == "tzyx"
    ctl.rebind()  # "Reset": the session follows the plane shown now
    assert ctl.geometry.axis == 0 and ctl.geometry.fixed == {1: 2}
    assert "along t (5 frames), z = 2" in widget.geometry_label.text()
    ctl.layers.points.add([[3, 2, 10, 10]])
    idle(qtbot, widget)
    np.testing.assert_array_equal(ctl.layers.labels.data[3, 2], ctl.session.frame_labels(3))
    assert not ctl.layers.labels.data[:, :2].any()
    ctl.layers.points.add([[3, 0, 10, 10]])  # another z plane: ignored, with a note
    assert any("outside the tracked plane" in m for _, m in notes())
    # manual override: propagate along z at the current t
    widget.axis_combo.setCurrentIndex(1)
    assert ctl.geometry.axis == 1 and 0 in ctl.geometry.fixed
    widget.both_button.click()
    idle(qtbot, widget)


def test_polarity_toggle_key_and_flip(sam2, qtbot):
    from app_model.types import KeyBinding

    viewer, widget = sam2
    ctl = widget.controller
    points = ctl.layers.points
    keymap = {str(k): f for k, f in points.keymap.items()}
    keymap["T"](points)  # T: the next points are negative
    assert widget.negative_button.isChecked() and not ctl.positive
    points.add([[0, 10, 10]])
    assert points.features["positive"].tolist() == [False] and str(points.symbol[0]) == "x"
    np.testing.assert_allclose(points.face_color[0], [1.0, 0.15, 0.15, 1.0])
    widget.positive_button.click()
    points.add([[0, 30, 30]])
    assert points.features["positive"].tolist() == [False, True] and str(points.symbol[1]) == "disc"
    idle(qtbot, widget)
    assert ctl.session.prompts()[1][0].labels.tolist() == [0, 1]
    points.selected_data = {0}
    keymap["F"](points)  # F: flip the selected points
    idle(qtbot, widget)
    assert points.features["positive"].tolist() == [True, True]
    assert ctl.session.prompts()[1][0].labels.tolist() == [1, 1]
    assert KeyBinding.from_str("T") in points.keymap


def test_rapid_edits_are_coalesced(sam2, qtbot, monkeypatch):
    viewer, widget = sam2
    ctl = widget.controller
    calls = []
    set_prompts = TrackingSession.set_prompts
    model_busy = threading.Event()  # the first prompt job holds the model until all edits are made

    def counting(self, frame, obj_id, **kwargs):
        calls.append(len(kwargs["prompts"].points))
        assert model_busy.wait(TIMEOUT / 1000)
        return set_prompts(self, frame, obj_id, **kwargs)

    monkeypatch.setattr(TrackingSession, "set_prompts", counting)
    ctl.layers.points.add([[1, 10, 10]])
    qtbot.waitUntil(lambda: calls == [1], timeout=TIMEOUT)  # the first job runs (and waits)
    for i in range(1, 6):  # edits while the model is busy
        ctl.layers.points.add([[1, 10 + 5 * i, 10]])
    model_busy.set()
    idle(qtbot, widget)
    assert calls == [1, 6]  # the five waiting edits became one job, with the newest prompts
    assert len(ctl.session.prompts()[1][1].points) == 6


def test_gui_stays_responsive_while_propagating(sam2, qtbot, monkeypatch):
    """Propagation runs off the GUI thread, and the GUI thread handles events while each frame is
    computed (counted, not timed: each frame waits until the GUI thread's timer has ticked during it;
    a job on the GUI thread, or one that blocks it, never sees a tick)."""
    from qtpy.QtCore import QTimer

    viewer, widget = sam2
    ctl = widget.controller
    ctl.layers.points.add([[0, 20, 20]])
    idle(qtbot, widget)
    ticks, frames = [], []
    track_frame = TrackingSession._track_frame

    def needs_a_tick(self, *args, **kwargs):
        seen = len(ticks)
        for _ in range(6000):  # gives up after ~30 s: only a blocked GUI thread never ticks
            if len(ticks) > seen:
                break
            time.sleep(0.005)
        frames.append((threading.current_thread() is threading.main_thread(), len(ticks) > seen))
        return track_frame(self, *args, **kwargs)

    monkeypatch.setattr(TrackingSession, "_track_frame", needs_a_tick)
    timer = QTimer(interval=1)
    timer.timeout.connect(lambda: ticks.append(None))
    timer.start()
    widget.forward_button.click()
    idle(qtbot, widget)
    timer.stop()
    assert frames == [(False, True)] * (T - 1)  # every frame: on the worker thread, the GUI thread ticking


@pytest.mark.parametrize("sam2", ["direct", "plugin"], indirect=True)
def test_deleted_labels_layer_is_recreated_and_objects_can_be_deleted(sam2, qtbot, notes):
    viewer, widget = sam2
    ctl = widget.controller
    ctl.layers.points.add([[0, 20, 20]])
    ctl.add_object()
    ctl.layers.points.add([[0, 40, 40]])
    idle(qtbot, widget)
    widget.forward_button.click()
    idle(qtbot, widget)
    viewer.layers.remove("SAM2 labels")
    ctl.layers.points.add([[2, 45, 45]])  # a new result needs somewhere to go
    idle(qtbot, widget)
    assert any("re-created" in m for _, m in notes())
    labels = ctl.layers.labels
    for f in range(T):  # everything computed so far was redrawn
        np.testing.assert_array_equal(labels.data[f], ctl.session.frame_labels(f))
    widget.objects_list.list.setCurrentRow(1)
    assert ctl.current_obj == 2
    widget.objects_list.delete_clicked.emit(2)
    idle(qtbot, widget)
    assert ctl.session.object_ids == [1] and 2 not in np.unique(labels.data)
    assert set(ctl.layers.points.features["obj_id"]) == {1} and ctl.current_obj == 1


def test_model_errors_are_notifications(bare, qtbot, tmp_path, monkeypatch, notes):
    viewer, widget = bare((make_timelapse(3, 40), {"name": "cells"}))
    ctl = widget.controller
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"this is not a checkpoint")
    widget.model_picker.set_source(str(bad))
    widget.model_picker.load_button.click()
    idle(qtbot, widget)
    assert any(sev == "error" and "broken.pt" in m for sev, m in notes())
    # offline: the download fails with the engine's advice
    monkeypatch.setenv("NAPARI_SAM2_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("NAPARI_SAM2_BASE_URL", "http://127.0.0.1:9")
    widget.model_picker.set_source("sam2.1_hiera_small")
    widget.model_picker.load_button.click()
    idle(qtbot, widget)
    assert any(sev == "error" and "could not be downloaded" in m for sev, m in notes())
    assert ctl.model is not None  # the model loaded before is still in use
    widget.model_picker.device.setCurrentText("mps")
    widget.model_picker.load_button.click()
    idle(qtbot, widget)
    assert any("mps" in m for sev, m in notes() if sev == "error")


def test_nan_image_is_a_notification(bare, qtbot, notes):
    data = np.random.default_rng(0).random((3, 40, 40)).astype(np.float32)
    data[1, 5, 5] = np.nan
    viewer, widget = bare((data, {"name": "nan"}))
    widget.controller.layers.points.add([[1, 10, 10]])
    idle(qtbot, widget)
    assert any(sev == "error" and "NaN" in m for sev, m in notes())


def test_widget_opens_from_the_plugin_menu(gui_display, make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.add_image(make_timelapse(3, 40), name="cells", axis_labels=("t", "y", "x"))
    dock, widget = viewer.window.add_plugin_dock_widget("napari-sam2", "SAM 2 tracking")
    assert widget.image_combo.currentText() == "cells"
    assert [layer.name for layer in viewer.layers] == ["cells", "SAM2 labels", "SAM2 boxes", "SAM2 points"]
    assert viewer.layers.selection.active.name == "SAM2 points" and viewer.layers["SAM2 points"].mode == "add"
    assert viewer.window.dock_widgets["SAM 2 tracking (napari-sam2)"] is widget
    from napari._app_model import get_app_model

    for menu in ("napari/plugins", "napari/layers/segment"):
        titles = [
            getattr(i.command, "title", "")
            for i in get_app_model().menus.get_menu(menu)
            if hasattr(i, "command")
        ]
        assert "SAM 2 tracking (SAM 2 for stacks)" in titles, menu


def test_layers_added_later_and_renamed(bare, qtbot, notes):
    viewer, widget = bare()  # no image yet
    ctl = widget.controller
    assert ctl.geometry is None and widget.image_combo.count() == 0
    widget.both_button.click()
    assert any("Pick an image layer" in m for _, m in notes())
    image = viewer.add_image(make_timelapse(T, SIZE), name="cells", axis_labels=("t", "y", "x"))
    assert ctl.image is image and ctl.layers.points is not None
    image.name = "renamed cells"
    assert widget.image_combo.currentText() == "renamed cells" and ctl.image is image
    ctl.layers.points.name = "my clicks"
    ctl.layers.points.add([[1, 20, 20]])
    idle(qtbot, widget)
    assert ctl.session.prompts()[1][1].points.tolist() == [[20, 20]]
    viewer.layers.remove("my clicks")  # its prompts go; the labels stay
    idle(qtbot, widget)
    assert ctl.session.prompts()[1] == {}
    np.testing.assert_array_equal(ctl.layers.labels.data[1], ctl.session.frame_labels(1))
    qtbot.waitUntil(lambda: any("was deleted" in m for _, m in notes()))


def test_backward_over_a_frame_range_and_renaming(sam2, qtbot):
    viewer, widget = sam2
    ctl = widget.controller
    ctl.layers.points.add([[4, 20, 20]])
    idle(qtbot, widget)
    widget.first_spin.setValue(1)
    widget.last_spin.setValue(4)
    widget.backward_button.click()
    idle(qtbot, widget)
    assert ctl.session.frames_with_output(1) == [1, 2, 3, 4]
    item = widget.objects_list.list.item(0)
    item.setText("nucleus")  # what editing the row in place does
    assert ctl.objects[1] == "nucleus"


@pytest.mark.parametrize("sam2", ["direct", "plugin"], indirect=True)
def test_deleted_points_layer_takes_its_prompts_and_comes_back_on_reset(sam2, qtbot, notes):
    viewer, widget = sam2
    ctl = widget.controller
    ctl.layers.points.add([[1, 20, 20]])
    idle(qtbot, widget)
    assert ctl.session.prompts()[1]
    viewer.layers.remove("SAM2 points")
    idle(qtbot, widget)
    assert ctl.session.prompts().get(1, {}) == {}  # its prompts went with it
    assert not ctl.layers.labels.data[1].any()
    qtbot.waitUntil(lambda: any("was deleted" in m for _, m in notes()))
    widget.reset_button.click()
    idle(qtbot, widget)
    assert "SAM2 points" in viewer.layers  # back, and clicks work again
    ctl.layers.points.add([[2, 20, 20]])
    idle(qtbot, widget)
    assert ctl.layers.labels.data[2].any()


@pytest.mark.parametrize("suffix", [".ome.tif", ".ome.zarr"])
def test_export_labels_writes_ome_files(sam2, qtbot, tmp_path, notes, suffix):
    """Export labels…: the labels layer as OME-TIFF (parsed by ome-types) or OME-Zarr (the ome-zarr reader)."""
    from napari_sam2.engine.io.stack_files import read_stack

    viewer, widget = sam2
    ctl = widget.controller
    ctl.layers.points.add([[0, 20, 20]])
    idle(qtbot, widget)
    widget.forward_button.click()
    idle(qtbot, widget)
    path = tmp_path / f"labels{suffix}"
    ctl.export_labels(path)
    idle(qtbot, widget)
    assert any("Saved the labels (TYX, uint16)" in m for _, m in notes())
    expected = np.asarray(ctl.layers.labels.data)
    assert expected.any()
    got = read_stack(path)
    assert got.axes == "TYX"
    np.testing.assert_array_equal(np.asarray(got.data[:]), expected)
    got.close()
    if suffix == ".ome.tif":
        import ome_types

        assert ome_types.from_tiff(path).images[0].pixels.size_t == expected.shape[0]
    else:
        from ome_zarr.io import parse_url
        from ome_zarr.reader import Reader

        np.testing.assert_array_equal(np.asarray(list(Reader(parse_url(str(path)))())[0].data[0]), expected)


def test_a_prompt_file_saved_in_the_widget_replays_on_the_command_line(sam2, qtbot, tmp_path, tiny_checkpoint):
    """Clicks, a propagation, a correction and another propagation in the widget; Save prompts…; then
    `napari-sam2 segment` on the same pixels gives the labels layer's labels exactly."""
    from napari_sam2.cli.main import main

    viewer, widget = sam2
    ctl = widget.controller
    viewer.dims.set_point(0, 1)
    ctl.layers.points.add([[1, 20, 20]])
    ctl.add_object()
    ctl.layers.shapes.add_rectangles(np.array([[1, 30, 30], [1, 30, 55], [1, 55, 55], [1, 55, 30]]))
    idle(qtbot, widget)
    widget.both_button.click()
    idle(qtbot, widget)
    ctl.select_object(1)
    ctl.set_positive(False)
    viewer.dims.set_point(0, 3)
    ctl.layers.points.add([[3, 26, 30]])  # a correction
    idle(qtbot, widget)
    widget.first_spin.setValue(3)
    widget.forward_button.click()
    idle(qtbot, widget)
    expected = np.array(ctl.layers.labels.data)
    ctl.save_prompts(tmp_path / "widget.json")
    idle(qtbot, widget)
    np.save(tmp_path / "cells.npy", np.asarray(viewer.layers["cells"].data))
    out = tmp_path / "cells.labels.npy"
    precision = str(ctl.model.dtype).removeprefix("torch.")  # the widget's model: auto precision
    assert main(["segment", str(tmp_path / "cells.npy"), "-p", str(tmp_path / "widget.json"), "-o", str(out),
                 "--model", str(tiny_checkpoint), "--device", "cpu", "--dtype", precision, "-q"]) == 0
    np.testing.assert_array_equal(np.load(out), expected)


def test_the_model_list_offers_edgetam_as_the_fast_model(gui_display, make_napari_viewer):
    """From the Plugins menu: EdgeTAM is in the model list under a name that says what it is, with its trade-off,
    and choosing it asks to load the name load_model knows."""
    viewer = make_napari_viewer()
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-sam2", "SAM 2 tracking")
    picker = widget.model_picker
    texts = [picker.source.itemText(i) for i in range(picker.source.count())]
    assert "edgetam (fast model)" in texts and "sam2.1_hiera_tiny" in texts
    index = texts.index("edgetam (fast model)")
    from qtpy.QtCore import Qt

    tip = picker.source.itemData(index, Qt.ItemDataRole.ToolTipRole)
    assert "faster" in tip and "less accurate" in tip
    picker.source.setCurrentIndex(index)
    asked = []
    picker.load_requested.connect(lambda *args: asked.append(args))
    picker.load_button.click()
    assert asked and asked[0][0] == "edgetam"
    picker.set_source("sam2.1_hiera_tiny")
    assert picker.choice()[0] == "sam2.1_hiera_tiny"
