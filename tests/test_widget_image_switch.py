"""Picking another image layer: the first image keeps its labels and prompts, nothing of it goes to the
new image's session, and picking it again attaches its layers again."""

from __future__ import annotations

import numpy as np
import pytest

from gui_helpers import SIZE, TIMEOUT, T, idle
from napari_sam2.gui.layers import same_layer
from napari_sam2.sample_data import make_timelapse


@pytest.mark.parametrize("sam2", ["plugin"], indirect=True)
def test_switching_images_keeps_labels_and_sends_nothing_across(sam2, qtbot, notes, slow_model):
    viewer, widget = sam2
    ctl = widget.controller
    first = ctl.image
    viewer.add_image(make_timelapse(T, SIZE)[::-1].copy(), name="other", axis_labels=("t", "y", "x"))
    assert same_layer(ctl.image, first)  # adding a layer does not switch
    labels_a, points_a = ctl.layers.labels, ctl.layers.points
    points_a.add([[0, 20, 20]])
    idle(qtbot, widget)
    widget.forward_button.click()
    qtbot.waitUntil(lambda: ctl.propagation.done >= 2, timeout=TIMEOUT)
    widget.image_combo.setCurrentIndex(widget.image_combo.findText("other"))  # during the propagation
    idle(qtbot, widget)
    # A's layers stay, renamed, with the frames done; nothing more is written to them
    assert labels_a.name == "SAM2 labels [cells]" and points_a.name == "SAM2 points [cells]"
    done = [f for f in range(T) if labels_a.data[f].any()]
    assert done[:2] == [0, 1] and len(points_a.data) == 1
    kept = np.array(labels_a.data, copy=True)
    # B: its own empty layers, no prompts, nothing from A in its session
    assert ctl.image.name == "other" and not same_layer(ctl.layers.labels, labels_a)
    assert ctl.layers.labels.name == "SAM2 labels" and not ctl.layers.labels.data.any()
    assert len(ctl.layers.points.data) == 0 and ctl.prompts == {}
    assert ctl.get_session().object_ids == [] and ctl.get_session().prompts() == {}
    said = [m for _, m in notes()]
    assert any("'cells' keeps its results in 'SAM2 labels [cells]'" in m and "propagation was stopped" in m
               for m in said)
    assert not any("Press the same button again" in m for m in said)
    # B's work does not touch A's labels
    ctl.layers.points.add([[3, 30, 30]])
    idle(qtbot, widget)
    assert ctl.session.object_ids == [1] and list(ctl.session.prompts()[1]) == [3]
    np.testing.assert_array_equal(labels_a.data, kept)
    # back to A: its layers again, labels as they were, its prompt in a new session
    labels_b = ctl.layers.labels
    widget.image_combo.setCurrentIndex(widget.image_combo.findText("cells"))
    idle(qtbot, widget)
    assert same_layer(ctl.layers.labels, labels_a) and labels_a.name == "SAM2 labels"
    assert same_layer(ctl.layers.points, points_a) and labels_b.name == "SAM2 labels [other]"
    np.testing.assert_array_equal(labels_a.data, kept)
    assert ctl.session.prompts()[1][0].points.tolist() == [[20, 20]] and list(ctl.session.prompts()[1]) == [0]
    # and it goes on: a new click on A is segmented and drawn in A's layer
    points_a.add([[5, 40, 40]])
    idle(qtbot, widget)
    np.testing.assert_array_equal(labels_a.data[5], ctl.session.frame_labels(5))


def test_removing_the_image_keeps_its_labels_layer(sam2, qtbot, notes):
    viewer, widget = sam2
    ctl = widget.controller
    ctl.layers.points.add([[1, 20, 20]])
    idle(qtbot, widget)
    labels = ctl.layers.labels
    kept = np.array(labels.data, copy=True)
    assert kept.any()
    viewer.layers.remove("cells")
    idle(qtbot, widget)
    assert ctl.image is None and labels in viewer.layers and labels.name == "SAM2 labels [cells]"
    np.testing.assert_array_equal(labels.data, kept)
