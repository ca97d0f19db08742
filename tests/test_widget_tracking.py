"""The widget's tracking tools with a real viewer: seeds from a Labels layer, divisions, doubtful frames,
the Tracks layer and track exports (both on a widget built directly and one opened from Plugins)."""

from __future__ import annotations

import numpy as np
import pytest

from gui_helpers import SIZE, T, idle


def seed_image() -> np.ndarray:
    seeds = np.zeros((T, SIZE, SIZE), np.uint16)
    seeds[0, 10:22, 10:22] = 7
    seeds[0, 35:50, 30:48] = 12
    return seeds


@pytest.mark.parametrize("sam2", ["direct", "plugin"], indirect=True)
def test_objects_from_a_labels_layer(sam2, qtbot):
    """Every label of a Labels layer (Cellpose-style) on the frame in view becomes an object with its id;
    the seed frame's labels are exact, and nothing is sent twice."""
    viewer, widget = sam2
    ctl = widget.controller
    seeds = seed_image()
    viewer.add_labels(seeds, name="cellpose")
    viewer.dims.set_point(0, 0)
    qtbot.waitUntil(lambda: widget.seed_combo.findText("cellpose") >= 0)
    assert widget.seed_combo.findText("SAM2 labels") < 0
    widget.seed_combo.setCurrentText("cellpose")
    widget.seed_button.click()
    idle(qtbot, widget)
    assert {7, 12} <= set(ctl.objects) and ctl.session.object_ids == [7, 12]
    np.testing.assert_array_equal(np.asarray(ctl.layers.labels.data[0]), seeds[0])
    ctl.select_object(7)
    ctl.layers.points.add([[2, 15, 15]])  # another prompt: the seeds are not re-sent
    idle(qtbot, widget)
    assert [type(r).__name__ for r in ctl.session.history] == ["SetMasks", "SetPrompts"]
    assert {r["obj_id"] for r in ctl.tracking.rows} == {7, 12}


def test_divide_marks_the_lineage_and_shows_tracks(sam2, qtbot, tmp_path):
    viewer, widget = sam2
    ctl = widget.controller
    viewer.dims.set_point(0, 0)
    ctl.layers.points.add([[0, 20, 20]])
    idle(qtbot, widget)
    widget.forward_button.click()
    idle(qtbot, widget)
    assert ctl.session.frames_with_output(1) == list(range(T))
    viewer.dims.set_point(0, 3)
    widget.divide_button.click()
    a, b = 2, 3
    assert ctl.objects[a] == "object 1.1" and ctl.current_obj == a and ctl.tracking.parents == {a: 1, b: 1}
    ctl.layers.points.add([[3, 15, 15]])
    ctl.select_object(b)
    ctl.layers.points.add([[3, 40, 40]])
    idle(qtbot, widget)
    assert ctl.session.lineage == {a: 1, b: 1}
    assert ctl.session.frames_with_output(1) == [0, 1, 2]  # the parent ends where its daughters start
    assert not np.isin(np.asarray(ctl.layers.labels.data[3:]), [1]).any()
    widget.forward_button.click()
    idle(qtbot, widget)
    tracks = ctl.tracking.tracks
    assert tracks is not None and tracks.name == "SAM2 tracks"
    present = {r["obj_id"] for r in ctl.tracking.rows if r["area"] > 0}
    assert {1, a, b} <= present and dict(tracks.graph) == {a: [1], b: [1]}
    assert viewer.layers.selection.active is not None and viewer.layers.selection.active.name == "SAM2 points"
    # export: the track table and a CTC folder beside it, which traccuracy loads
    import traccuracy.loaders as traccuracy
    ctl.tracking.export(tmp_path / "tracks.csv")
    idle(qtbot, widget)
    assert (tmp_path / "tracks.csv").is_file()
    graph = traccuracy.load_ctc_data(str(tmp_path / "tracks_CTC"), str(tmp_path / "tracks_CTC" / "res_track.txt"))
    labels = ctl.session.labels()  # one node per object visible in a frame of the label image
    assert graph.graph.number_of_nodes() == sum(len(np.unique(f[f > 0])) for f in labels)
    # and a TrackMate file for Fiji with the same spots and the division's two links
    import xml.etree.ElementTree as ET

    model = ET.parse(tmp_path / "tracks_trackmate.xml").getroot().find("Model")
    assert model is not None and len(model.findall("./AllSpots/SpotsInFrame/Spot")) == graph.graph.number_of_nodes()
    edges = model.findall("./AllTracks/Track/Edge")
    assert len(edges) == graph.graph.number_of_edges()


def test_the_lineage_is_the_sessions_plus_the_marks_not_sent_yet(sam2, qtbot):
    """The session owns the lineage: the widget shows its links, and the divisions marked for daughters the
    session has no prompt of yet; deleting an object drops its marks, as the session drops its links."""
    viewer, widget = sam2
    ctl = widget.controller
    viewer.dims.set_point(0, 0)
    ctl.layers.points.add([[0, 20, 20]])
    idle(qtbot, widget)
    viewer.dims.set_point(0, 3)
    a, b = ctl.divide()
    ctl.layers.points.add([[3, 15, 15]])  # daughter a: the session takes its link
    idle(qtbot, widget)
    assert ctl.session.lineage == {a: 1} and ctl.tracking.parents == {a: 1, b: 1}
    ctl.session.set_parent(a, None)  # e.g. from napari's console: the widget reads the session
    assert ctl.tracking.parents == {b: 1}
    ctl.delete_object(b)
    idle(qtbot, widget)
    assert ctl.tracking.parents == {} and ctl.tracking.ids_in_use() == {1, a}


def test_next_doubtful_frame_and_the_plot(sam2, qtbot):
    """The plot and "Next doubtful frame" follow the track table: here a table where object 1 vanishes on
    frame 4 and jumps in size on frame 2 (the numbers a propagation would deliver)."""
    viewer, widget = sam2
    ctl = widget.controller

    def row(frame, area, score=0.95):
        return {"frame": frame, "obj_id": 1, "present_score": score, "present_logit": 3.0, "iou": 0.9,
                "area": area, "centroid_row": 20.0, "centroid_col": 20.0, "prompted": frame == 0}

    rows = [row(0, 100), row(1, 100), row(2, 300), row(3, 290), row(4, 0, 0.01), row(5, 0, 0.01)]
    viewer.dims.set_point(0, 0)
    ctl.tracking.show_table(rows, {})
    assert widget.track_plot.doubts == [2, 4] and len(widget.track_plot.rows) == 6
    widget.doubt_button.click()
    assert ctl.current_frame() == 2 and "area jump" in widget.message_label.text()
    widget.doubt_button.click()
    assert ctl.current_frame() == 4 and "vanished" in widget.message_label.text()
    widget.doubt_button.click()  # wraps around
    assert ctl.current_frame() == 2
    qtbot.mouseClick(widget.track_plot, __import__("qtpy").QtCore.Qt.MouseButton.LeftButton,
                     pos=__import__("qtpy").QtCore.QPoint(widget.track_plot.width() - 5, 20))
    assert ctl.current_frame() == T - 1 and widget.track_plot.current == T - 1


@pytest.mark.parametrize("sam2", ["direct", "plugin"], indirect=True)
def test_a_region_rectangle_sets_the_sessions_region(sam2, qtbot):
    viewer, widget = sam2
    ctl = widget.controller
    widget.region_button.click()
    layer = viewer.layers["SAM2 region"]
    assert layer.mode == "add_rectangle"
    layer.add_rectangles(np.array([[0, 10, 12], [0, 10, 52], [0, 50, 52], [0, 50, 12]], float))
    assert ctl.region.roi == (10, 12, 51, 53)  # pixel edges: the corner pixels are inside
    assert "region rows 10-50, cols 12-52" in widget.geometry_label.text()
    viewer.dims.set_point(0, 1)
    ctl.layers.points.add([[1, 30, 30]])
    idle(qtbot, widget)
    assert ctl.session.roi == (10, 12, 51, 53)
    labels = np.asarray(ctl.layers.labels.data[1])
    assert not labels[:10].any() and not labels[:, :12].any() and not labels[51:].any()
    viewer.layers.remove(layer)  # no region: the whole frame again, the prompt is sent to a new session
    idle(qtbot, widget)
    assert ctl.region.roi is None and ctl.session.roi is None and 1 in ctl.session.object_ids


def test_loading_a_prompt_file_with_seeds_and_a_division(sam2, qtbot, tmp_path):
    """A prompt file with seeds (from Python) and a division replays in the widget: same labels, the lineage
    in the Tracks layer, the table for the plot."""
    viewer, widget = sam2
    ctl = widget.controller
    seeds = seed_image()[0]
    session = ctl.model.open_stack(np.asarray(viewer.layers["cells"].data))
    session.add_objects_from_labels(0, seeds)
    session.set_prompts(3, 20, points=[[14, 14]])
    session.set_prompts(3, 21, points=[[20, 30]])
    session.set_parent(20, 7)
    session.set_parent(21, 7)
    list(session.propagate(start=0))
    list(session.propagate(start=3))
    path = session.save_prompts(tmp_path / "lineage.json")
    expected = session.labels()
    session.close()
    ctl.load_prompts(path)
    idle(qtbot, widget)
    np.testing.assert_array_equal(np.asarray(ctl.layers.labels.data), expected)
    assert ctl.session.lineage == {20: 7, 21: 7} and ctl.tracking.parents == {20: 7, 21: 7}
    assert {7, 12, 20, 21} <= set(ctl.objects) and {r["obj_id"] for r in ctl.tracking.rows} == {7, 12, 20, 21}


def test_loading_a_prompt_file_made_in_a_region(sam2, qtbot, tmp_path):
    """Load prompts… replays in the region the file was made in (else its labels would differ)."""
    viewer, widget = sam2
    ctl = widget.controller
    data = np.asarray(viewer.layers["cells"].data)
    session = ctl.model.open_stack(data, roi=(8, 10, 56, 60))
    session.set_prompts(1, 1, points=[[30, 30]])
    list(session.propagate(direction="both"))
    path = session.save_prompts(tmp_path / "region.json")
    expected = session.labels()
    session.close()
    ctl.load_prompts(path)
    idle(qtbot, widget)
    assert ctl.region.roi == (8, 10, 56, 60) and ctl.session.roi == (8, 10, 56, 60)
    assert "region rows 8-55, cols 10-59" in widget.geometry_label.text()
    np.testing.assert_array_equal(np.asarray(ctl.layers.labels.data), expected)
