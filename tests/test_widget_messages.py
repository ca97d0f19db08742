"""The widget's message line and its notes: real viewer, real plugin route, the tiny random-weight model."""

from __future__ import annotations

import numpy as np
import pytest

from gui_helpers import SIZE, T, idle, open_widget
from napari_sam2.sample_data import make_timelapse


def _load(qtbot, widget, source) -> None:
    widget.model_picker.set_source(str(source))
    widget.model_picker.device.setCurrentText("cpu")
    widget.model_picker.load_button.click()
    idle(qtbot, widget)


def _shown(widget) -> str:
    return "" if widget.message_label.isHidden() else widget.message_label.text()


def test_a_good_load_clears_the_error_of_a_bad_one(gui_display, make_napari_viewer, qtbot, tiny_checkpoint,
                                                   tmp_path):
    viewer = make_napari_viewer()
    viewer.add_image(make_timelapse(T, SIZE), name="cells", axis_labels=("t", "y", "x"))
    widget = open_widget(viewer, "plugin")
    bad = tmp_path / "weights.pt"
    bad.write_bytes(b"these are not weights\n" * 200)
    _load(qtbot, widget, bad)
    assert widget.controller.model is None
    assert _shown(widget).startswith(f"{bad} is not a PyTorch checkpoint")
    qtbot.wait(50)  # the error stays in view until the step it is about succeeds
    assert "not a PyTorch checkpoint" in _shown(widget)
    _load(qtbot, widget, tiny_checkpoint)
    assert widget.controller.model is not None
    assert _shown(widget) == "" and widget.message_label.text() == ""


def test_a_click_clears_a_click_error_and_a_load_does_not(gui_display, make_napari_viewer, qtbot,
                                                          tiny_checkpoint):
    """A click on a frame with NaN pixels fails; the error stays through a model load (another step) and
    goes when a click succeeds."""
    data = make_timelapse(T, SIZE).astype(np.float32)
    data[3, :4, :4] = np.nan
    viewer = make_napari_viewer()
    viewer.add_image(data, name="cells", axis_labels=("t", "y", "x"))
    widget = open_widget(viewer, "direct")
    _load(qtbot, widget, tiny_checkpoint)
    ctl = widget.controller
    viewer.dims.set_point(0, 3)
    ctl.layers.points.add([[3, 20, 20]])
    idle(qtbot, widget)
    error = "Frame 3 contains NaN or infinite pixels"
    assert error in _shown(widget)
    _load(qtbot, widget, tiny_checkpoint)
    assert error in _shown(widget)
    viewer.dims.set_point(0, 1)
    ctl.layers.points.add([[1, 20, 20]])
    idle(qtbot, widget)
    assert ctl.layers.labels.data[1].any()
    assert _shown(widget) == ""


@pytest.mark.parametrize("shape, what", [((SIZE, SIZE), "a 2-D image"),
                                         ((1, SIZE, SIZE), "a stack of 1 frame along its frame axis")])
def test_propagate_on_one_frame_says_there_is_nothing_to_propagate(gui_display, make_napari_viewer, qtbot,
                                                                   tiny_model, notes, shape, what):
    viewer = make_napari_viewer()
    image = make_timelapse(T, SIZE)[0].reshape(shape)
    viewer.add_image(image, name="one", axis_labels=("t", "y", "x")[-len(shape):])
    widget = open_widget(viewer, "plugin")
    ctl = widget.controller
    ctl.set_model(tiny_model)
    idle(qtbot, widget)
    ctl.layers.points.add([[*([0] * (len(shape) - 2)), 20, 20]])
    idle(qtbot, widget)
    assert ctl.layers.labels.data.any()  # the one frame is segmented
    widget.both_button.click()  # what the user presses
    idle(qtbot, widget)
    text = f"Nothing to propagate: this image has one frame ({what})."
    assert _shown(widget).startswith(text)
    assert any(sev == "warning" and msg.startswith(text) for sev, msg in notes())


def test_one_frame_is_said_in_the_singular():
    from napari_sam2.engine.coords.geometry import StackGeometry

    assert StackGeometry.resolve((1, 8, 8), 0, None, {}).describe(["t", "y", "x"]) == "along t (1 frame)"
    assert StackGeometry.resolve((3, 8, 8), 0, None, {}).describe(["t", "y", "x"]) == "along t (3 frames)"


def test_track_plot_has_axes_frame_numbers_and_a_legend(gui_display, qtbot):
    from napari_sam2.gui.track_plot import AREA_COLOR, CONFIDENCE_COLOR, DOUBT_COLOR, TrackPlot, frame_ticks

    plot = TrackPlot()
    qtbot.addWidget(plot)
    plot.resize(420, plot.minimumHeight())
    rows = [{"frame": f, "area": 100.0 + 10 * f, "present_score": 0.9, "iou": 0.8} for f in range(12)]
    plot.show_rows(rows, 12, [3], 0)
    assert plot.axis_labels() == ("frame", "0-1")
    assert plot.legend() == [("area (of its max, 210 px)", AREA_COLOR), ("confidence", CONFIDENCE_COLOR),
                             ("doubtful frame", DOUBT_COLOR)]
    assert plot.x_ticks() == list(range(12))  # 12 frames fit at this width
    assert frame_ticks(100, 6) == [0, 20, 40, 60, 80] and frame_ticks(1, 6) == [0]
    image = plot.grab().toImage()
    rect = plot._plot_rect()
    assert rect.left() > 10 and rect.top() > 10 and plot.height() - rect.bottom() > 20  # room for the axes
    h = plot.fontMetrics().height()
    legend_line = [image.pixelColor(x, int(4 + h / 2)) for x in range(int(rect.left()), int(rect.left()) + 12)]
    assert AREA_COLOR in legend_line  # the legend is drawn, with the area's colour first


def test_a_frame_that_cannot_be_prepared_is_not_tried_again_and_again(gui_display, make_napari_viewer, qtbot,
                                                                      tiny_model, monkeypatch):
    """The background "Preparing frame" job on a frame with NaN pixels gets no embedding; going idle must
    not start it again on every idle round (a busy loop reading the frame forever)."""
    from napari_sam2.gui import tasks

    tries = []
    encode = tasks.encode

    def counted(session, frame):
        tries.append(frame)
        yield from encode(session, frame)

    monkeypatch.setattr(tasks, "encode", counted)
    data = make_timelapse(T, SIZE).astype(np.float32)
    data[3, :4, :4] = np.nan
    viewer = make_napari_viewer()
    viewer.add_image(data, name="cells", axis_labels=("t", "y", "x"))
    widget = open_widget(viewer, "plugin")
    ctl = widget.controller
    ctl.set_model(tiny_model)
    idle(qtbot, widget)
    viewer.dims.set_point(0, 3)
    for _ in range(10):  # idle rounds: each would start the background job again
        idle(qtbot, widget)
        qtbot.wait(20)
    assert tries.count(3) == 1
    viewer.dims.set_point(0, 2)  # other frames are still prepared in the background
    qtbot.waitUntil(lambda: ctl.session is not None and ctl.session.has_embedding(2), timeout=10000)


def test_the_model_line_says_which_precision_and_why(gui_display, make_napari_viewer, qtbot, tiny_checkpoint):
    from napari_sam2.precision import auto_precision

    viewer = make_napari_viewer()
    viewer.add_image(make_timelapse(T, SIZE), name="cells", axis_labels=("t", "y", "x"))
    widget = open_widget(viewer, "plugin")
    _load(qtbot, widget, tiny_checkpoint)
    chosen = auto_precision("cpu")
    text = widget.model_picker.loaded.text()
    assert f"({widget.controller.model.precision})" in text
    assert text.endswith(f"precision: {chosen.reason}")
