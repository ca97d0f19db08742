"""Multichannel stacks (e.g. a ZCYX file opened as one 4-D layer): the channel axis goes to SAM 2, the
labels have none, and the widget's layers show and take prompts at every channel position."""

from __future__ import annotations

import numpy as np
import pytest
from napari.layers import Image

from gui_helpers import TIMEOUT, idle, open_widget
from napari_sam2.gui.stack import axis_item, default_axis, default_channel_axis, label_axes, layer_geometry


@pytest.mark.parametrize(
    ("shape", "labels", "axis", "channels"),
    [
        ((6, 2, 64, 64), None, 0, 1),  # ZCYX without names
        ((2, 6, 64, 64), None, 1, 0),  # CZYX without names
        ((6, 8, 64, 64), None, 0, None),  # two long axes: no channels
        ((3, 5, 2, 64, 64), ("t", "z", "c", "y", "x"), 0, 2),  # named
        ((5, 3, 40, 48), ("t", "z", "y", "x"), 0, None),  # a short z is no channel axis
    ],
)
def test_default_channel_axis(shape, labels, axis, channels):
    layer = Image(np.zeros(shape, np.uint8), **({"axis_labels": labels} if labels else {}))
    assert default_axis(layer) == axis and default_channel_axis(layer, axis) == channels
    assert layer_geometry(layer, None).channel_axis == channels


def test_axis_items_and_export_axes():
    layer = Image(np.zeros((6, 2, 64, 64), np.uint16))
    assert [axis_item(layer, a) for a in (0, 1)] == ["axis 0 (6)", "axis 1 (2)"]
    named = Image(np.zeros((6, 2, 64, 64), np.uint16), axis_labels=("z", "c", "y", "x"))
    assert axis_item(named, 0) == "z (6)"
    assert label_axes(named, layer_geometry(named, None)) == "ZYX"


@pytest.fixture
def zcyx(gui_display, make_napari_viewer, qtbot, tiny_checkpoint):
    rng = np.random.default_rng(0)
    data = rng.integers(0, 1000, (6, 2, 64, 64), dtype=np.uint16)
    data[:, 1, 16:44, 16:44] += 3000  # a square only in channel 1
    viewer = make_napari_viewer()
    viewer.add_image(data, name="zcyx")  # one 4-D layer, no axis names (as napari opens a ZCYX TIFF)
    widget = open_widget(viewer, "plugin")
    widget.model_picker.set_source(str(tiny_checkpoint))
    widget.model_picker.device.setCurrentText("cpu")
    widget.model_picker.load_button.click()
    idle(qtbot, widget)
    yield viewer, widget, data
    idle(qtbot, widget)


def test_zcyx_stack_segments_with_both_channels(zcyx, qtbot, notes):
    viewer, widget, data = zcyx
    ctl = widget.controller
    geo = ctl.geometry
    assert geo.axis == 0 and geo.channel_axis == 1 and geo.fixed == {} and geo.label_shape == (6, 64, 64)
    assert widget.channel_combo.currentData() == 1 and widget.channel_combo.currentText() == "axis 1 (2)"
    assert [widget.axis_combo.itemText(i) for i in range(widget.axis_combo.count())] == ["axis 0 (6)", "axis 1 (2)"]
    assert widget.geometry_label.text() == "along axis 0 (6 frames); channels: axis 1 (2)"
    assert viewer.dims.nsteps[:2] == (6, 2)  # the widget's layers add no slider positions
    labels = ctl.layers.labels
    # a click at channel 1 (as the mouse gives it: the world position in the points layer)
    viewer.dims.set_point(0, 2)
    viewer.dims.set_point(1, 1)
    click = ctl.layers.points.world_to_data((2, 1, 30, 30))
    ctl.layers.points.add([click])
    idle(qtbot, widget)
    assert not [m for _, m in notes() if "outside the tracked plane" in m]
    assert ctl.session.labels().shape == (6, 64, 64)
    ours = ctl.session.frame_labels(2)
    assert ours.any()
    for c in (0, 1):  # the same labels at every channel position (what napari shows under the mouse there)
        viewer.dims.set_point(1, c)
        shown = np.array([[labels.get_value((2, c, r, k), world=True) or 0 for k in range(0, 64, 3)]
                          for r in range(0, 64, 3)])
        np.testing.assert_array_equal(shown, ours[::3, ::3])
    np.testing.assert_array_equal(ctl.layers.output.array[2], ours)
    # the model saw both channels: the same as a session opened in Python with channel_axis=1 ...
    both = ctl.model.open_stack(data, axis=0, channel_axis=1)
    both.set_prompts(2, 1, points=[[30, 30]])
    np.testing.assert_array_equal(ctl.session.logits(2, 1), both.logits(2, 1))
    both.close()
    one = ctl.model.open_stack(data, axis=0, fixed={1: 1})  # ... and not as channel 1 alone
    one.set_prompts(2, 1, points=[[30, 30]])
    assert not np.array_equal(ctl.session.logits(2, 1), one.logits(2, 1))
    one.close()


def test_painting_at_any_channel_is_a_mask_prompt(zcyx, qtbot, notes):
    viewer, widget, _data = zcyx
    ctl = widget.controller
    labels = ctl.layers.labels
    viewer.dims.set_point(0, 3)
    viewer.dims.set_point(1, 1)
    labels.paint(labels.world_to_data((3, 1, 20, 20)), 1, refresh=True)  # napari's brush at channel 1
    assert ctl.layers.output.read(3)[20, 20] == 1  # into the (Z, Y, X) label image
    widget.mask_button.click()
    idle(qtbot, widget)
    mask = ctl.session.prompts()[1][3].mask
    assert mask.shape == (64, 64) and mask[20, 20]
    assert not [m for sev, m in notes() if sev in ("error", "warning")]


def test_channels_none_holds_the_channel_shown(zcyx, qtbot):
    viewer, widget, _data = zcyx
    ctl = widget.controller
    viewer.dims.set_point(1, 1)
    widget.channel_combo.setCurrentIndex(widget.channel_combo.findText("none"))
    qtbot.waitUntil(lambda: ctl.geometry.channel_axis is None, timeout=TIMEOUT)
    assert ctl.geometry.fixed == {1: 1} and ctl.layers.labels.data.shape == (6, 2, 64, 64)
    assert "axis 1 = 1" in widget.geometry_label.text()


def test_tracks_layer_over_a_tcyx_image_lines_up_with_the_labels(gui_display, make_napari_viewer, qtbot,
                                                                  tiny_model):
    """A time-lapse with a channel axis: the SAM2 tracks layer has the image's dimensions (channel column 0,
    stretched over the channels like the labels), so each track point lies at its object's centroid in the
    labels layer, in world coordinates."""
    data = np.random.default_rng(1).integers(0, 1000, (4, 2, 64, 64), dtype=np.uint16)
    data[:, 1, 16:44, 16:44] += 3000
    viewer = make_napari_viewer()
    viewer.add_image(data, name="tcyx", axis_labels=("t", "c", "y", "x"), scale=(1, 1, 0.5, 0.5))
    widget = open_widget(viewer, "plugin")
    ctl = widget.controller
    ctl.set_model(tiny_model)
    idle(qtbot, widget)
    assert ctl.geometry.channel_axis == 1
    ctl.layers.points.add([ctl.layers.points.world_to_data((0, 1, 15, 15))])
    idle(qtbot, widget)
    widget.forward_button.click()
    idle(qtbot, widget)
    qtbot.waitUntil(lambda: ctl.tracking.tracks is not None, timeout=TIMEOUT)
    tracks, labels = ctl.tracking.tracks, ctl.layers.labels
    assert tracks.data.shape[1] == 5  # id, t, c, y, x
    np.testing.assert_allclose(tracks.scale, labels.scale)
    np.testing.assert_allclose(tracks.translate, labels.translate)
    assert len(tracks.data) == 4
    for row in tracks.data:
        t = int(row[1])
        rows, cols = np.nonzero(np.asarray(labels.data[t, 0]) == row[0])
        centroid = labels.data_to_world((t, 0, rows.mean(), cols.mean()))
        np.testing.assert_allclose(tracks.data_to_world(row[1:]), centroid, atol=1e-6)


def test_a_label_image_on_disk_shows_and_paints_at_every_channel(gui_display, make_napari_viewer, qtbot,
                                                                 tiny_model, monkeypatch):
    """A stack whose label image is too large for RAM gets a zarr array on disk; the labels layer then sees
    it through a view with the length-1 channel axis: labels show at both channel positions, a click at
    channel 1 writes them, napari's brush writes through to the zarr array."""
    from napari_sam2.engine.storage import labels as label_output
    from napari_sam2.gui.layers import _LengthOneAxis

    monkeypatch.setattr(label_output, "LABELS_IN_MEMORY_BYTES", 1024)
    data = np.random.default_rng(0).integers(0, 1000, (6, 2, 64, 64), dtype=np.uint16)
    data[:, 1, 16:44, 16:44] += 3000
    viewer = make_napari_viewer()
    viewer.add_image(data, name="zcyx")
    widget = open_widget(viewer, "plugin")
    ctl = widget.controller
    ctl.set_model(tiny_model)
    idle(qtbot, widget)
    layer = ctl.layers.labels
    assert isinstance(layer.data, _LengthOneAxis) and layer.data.shape == (6, 1, 64, 64)
    assert not isinstance(ctl.layers.output.array, np.ndarray)  # zarr, on disk
    viewer.dims.set_point(0, 2)
    viewer.dims.set_point(1, 1)
    ctl.layers.points.add([ctl.layers.points.world_to_data((2, 1, 30, 30))])
    idle(qtbot, widget)
    ours = ctl.session.frame_labels(2)
    assert ours.any()
    np.testing.assert_array_equal(np.asarray(ctl.layers.output.array[2]), ours)
    for c in (0, 1):
        viewer.dims.set_point(1, c)
        shown = np.array([[layer.get_value((2, c, r, k), world=True) or 0 for k in range(0, 64, 3)]
                          for r in range(0, 64, 3)])
        np.testing.assert_array_equal(shown, ours[::3, ::3])
    layer.paint(layer.world_to_data((4, 1, 10, 10)), 7, refresh=True)  # napari's brush, at channel 1
    assert np.asarray(ctl.layers.output.array[4])[10, 10] == 7
