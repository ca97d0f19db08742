"""napari's own Save (writer contributions) and drag-and-drop of prompt files (reader contribution), with a real
viewer: File ▸ Save Selected Layers of a Labels layer writes OME-TIFF / OME-Zarr through our label writers; a
prompt file opened in napari replays in the SAM 2 widget."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from gui_helpers import SIZE, T, idle
from napari_sam2.errors import LabelFormatError
from napari_sam2.gui.contributions import get_prompt_reader, is_prompt_file, label_axes_from_names


def labels_data(shape=(4, 24, 20), dtype=np.int32):
    rng = np.random.default_rng(1)
    return rng.integers(0, 7, size=shape).astype(dtype)


# ------------------------------------------------------------------ writers
@pytest.mark.parametrize(("names", "ndim", "axes"), [
    (("t", "y", "x"), 3, "TYX"),
    (("-3", "-2", "-1"), 3, "TYX"),  # napari's default labels: no names
    (("0", "1"), 2, "YX"),
    (("Z", "row", "col"), 3, "ZYX"),
    (("slice", "time", "y", "x"), 4, "ZTYX"),
    (("channel", "-3", "-2", "-1"), 4, "CTYX"),
    ((), 5, "TZCYX"),
])
def test_label_axes_from_napari_axis_labels(names, ndim, axes):
    assert label_axes_from_names(names, ndim) == axes


def test_more_than_five_axes_cannot_be_ome():
    with pytest.raises(LabelFormatError, match="2 to 5 axes"):
        label_axes_from_names((), 6)


def test_writer_selection_by_extension():
    """.ome.tif(f)/.ome.zarr come to us (the longest matching extension wins over napari's .tif); a plain .tif
    stays with napari's builtin labels writer."""
    from npe2 import PluginManager

    pm = PluginManager.instance()
    pm.discover()  # napari's builtins and this plugin
    for name in ("cells.ome.tif", "cells.OME.TIFF", "cells.ome.zarr"):
        writer, _ = pm.get_writer(name, ["labels"])
        assert writer is not None and writer.plugin_name == "napari-sam2", name
    writer, _ = pm.get_writer("cells.tif", ["labels"])
    assert writer is not None and writer.plugin_name == "napari"
    writer, _ = pm.get_writer("cells.ome.tif", ["image"])  # labels only
    assert writer is None or writer.plugin_name != "napari-sam2"


def check_ome_tiff(path, expected, name, axes=("size_t", 4)):
    import ome_types

    ome = ome_types.from_tiff(path)
    with tifffile.TiffFile(path) as tif:
        assert tif.is_ome and ome_types.from_xml(tif.ome_metadata) == ome
        pixels_on_disk = tif.asarray()
    image = ome.images[0]
    assert image.name == name and getattr(image.pixels, axes[0]) == axes[1]
    np.testing.assert_array_equal(pixels_on_disk, expected)


def test_save_selected_labels_layer_as_ome_tiff(gui_display, make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    data = labels_data()
    viewer.add_image(np.zeros((4, 24, 20), np.uint8), name="image")
    layer = viewer.add_labels(data, name="nuclei", axis_labels=("t", "y", "x"))
    viewer.layers.selection = {layer}
    out = tmp_path / "nuclei.ome.tif"
    assert viewer.layers.save(str(out), selected=True, plugin="napari-sam2") == [str(out)]
    check_ome_tiff(out, data, "nuclei")
    # the extension alone picks our writer (no plugin named), and .ome.tiff too
    out2 = tmp_path / "again.ome.tiff"
    assert viewer.layers.save(str(out2), selected=True) == [str(out2)]
    check_ome_tiff(out2, data, "nuclei")


def test_save_dialog_offers_our_writers_and_adds_the_extension(gui_display, make_napari_viewer, tmp_path):
    """What File ▸ Save Selected Layers… does after the dialog: the filter the user picked names the writer,
    which gets the file name as typed (here without an extension, or with a plain .tif)."""
    from napari._qt.qt_viewer import _npe2_decode_selected_filter
    from napari.plugins._npe2 import file_extensions_string_for_layers

    viewer = make_napari_viewer()
    data = labels_data((24, 20), np.uint8)
    layer = viewer.add_labels(data, name="mask")
    viewer.layers.selection = {layer}
    ext_str, writers = file_extensions_string_for_layers([layer])
    entries = ext_str.split(";;")
    ours = next(e for e in entries if "*.ome.tif" in e)
    assert "OME-TIFF labels" in ours and any("*.ome.zarr" in e and "OME-Zarr labels" in e for e in entries)
    writer = _npe2_decode_selected_filter(ext_str, ours, writers)
    assert writer is not None and writer.plugin_name == "napari-sam2"
    for typed, written in (("mask", "mask.ome.tif"), ("plain.tif", "plain.ome.tif")):
        assert viewer.layers.save(str(tmp_path / typed), selected=True, _writer=writer) == [str(tmp_path / written)]
        check_ome_tiff(tmp_path / written, data, "mask", axes=("size_y", 24))


def test_save_selected_labels_layer_as_ome_zarr(gui_display, make_napari_viewer, tmp_path):
    from ome_zarr.format import FormatV04
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Multiscales, Reader

    viewer = make_napari_viewer()
    data = labels_data((3, 2, 24, 20), np.uint16)
    layer = viewer.add_labels(data, name="cells", axis_labels=("z", "t", "y", "x"))
    viewer.layers.selection = {layer}
    out = tmp_path / "cells.ome.zarr"
    assert viewer.layers.save(str(out), selected=True, plugin="napari-sam2") == [str(out)]
    node = list(Reader(parse_url(out, fmt=FormatV04()))())[0]
    assert node.load(Label) is not None and node.load(Multiscales) is not None
    assert [a["name"] for a in node.metadata["axes"]] == ["t", "z", "y", "x"]  # NGFF order
    assert node.metadata["name"] == "cells"
    np.testing.assert_array_equal(node.data[0].compute(), data.transpose(1, 0, 2, 3))


def test_a_multiscale_labels_layer_saves_its_full_resolution(gui_display, make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    full = labels_data((2, 32, 32), np.uint8)
    layer = viewer.add_labels([full, full[:, ::2, ::2]], name="pyramid", multiscale=True)
    viewer.layers.selection = {layer}
    out = tmp_path / "pyramid.ome.tif"
    assert viewer.layers.save(str(out), selected=True, plugin="napari-sam2") == [str(out)]
    check_ome_tiff(out, full, "pyramid", axes=("size_t", 2))


# ------------------------------------------------------------------ reader
@pytest.fixture
def prompt_file(tiny_model, tmp_path):
    """A prompt file saved by a session over the widget fixture's time-lapse, and that session's labels."""
    from napari_sam2.sample_data import make_timelapse

    session = tiny_model.open_stack(make_timelapse(T, SIZE))
    session.set_prompts(1, 1, points=[[20, 20]], labels=[1])
    session.set_prompts(3, 2, box=(30, 30, 55, 55))
    list(session.propagate(direction="both"))
    path = session.save_prompts(tmp_path / "prompts.json", names={1: "cell A"})
    labels = np.asarray(session.labels())
    session.close()
    return path, labels


def test_a_foreign_json_is_not_claimed(tmp_path):
    other = tmp_path / "config.json"
    other.write_text(json.dumps({"format": "something else", "objects": []}))
    broken = tmp_path / "broken.json"
    broken.write_bytes(b"\xff\x00not json")
    ours = tmp_path / "ours.json"
    ours.write_text(json.dumps({"format": "napari-sam2 prompts", "version": 2}, indent=1))
    assert get_prompt_reader(str(other)) is None and get_prompt_reader(str(broken)) is None
    assert get_prompt_reader(str(tmp_path / "missing.json")) is None
    assert get_prompt_reader([str(ours), str(ours)]) is None  # a stack of files is not ours
    assert is_prompt_file(ours) and get_prompt_reader(str(ours)) is not None


def test_a_foreign_json_is_refused_by_napari(gui_display, make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    other = tmp_path / "config.json"
    other.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(Exception, match="napari-sam2"):  # napari: the named plugin cannot read it
        viewer.open(str(other), plugin="napari-sam2")
    assert len(viewer.layers) == 0


def test_prompt_file_without_the_widget_says_to_open_it(gui_display, make_napari_viewer, prompt_file, notes):
    from gui_helpers import WIDGET_NAME

    path, _ = prompt_file
    viewer = make_napari_viewer()
    assert viewer.open(str(path), plugin="napari-sam2") == []
    assert len(viewer.layers) == 0
    said = [m for _, m in notes() if "prompts.json" in m]
    assert len(said) == 1 and "open Plugins ▸ SAM 2 tracking" in said[0]
    # a widget that was opened and closed again does not count
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-sam2", WIDGET_NAME)
    viewer.window.remove_dock_widget(widget)
    assert viewer.open(str(path), plugin="napari-sam2") == []
    said = [m for _, m in notes() if "prompts.json" in m]
    assert len(said) == 2 and "open Plugins ▸ SAM 2 tracking" in said[1]


@pytest.mark.parametrize("sam2", ["plugin", "direct"], indirect=True)  # Plugins menu, or docked by the demo
def test_opening_a_prompt_file_replays_it_in_the_widget(sam2, qtbot, prompt_file, notes):
    viewer, widget = sam2
    ctl = widget.controller
    path, expected = prompt_file
    assert viewer.open(str(path), plugin="napari-sam2") == []  # dropped onto napari: no layer of its own
    idle(qtbot, widget)
    assert "prompts" not in viewer.layers
    assert ctl.objects == {1: "cell A", 2: "object 2"}
    qtbot.waitUntil(lambda: widget.objects_list.list.count() == 2)
    assert len(ctl.layers.points.data) == 1 and len(ctl.layers.shapes.data) == 1
    assert any("Loaded 2 object(s)" in m for _, m in notes())
    # the same model replays the same history: the saved session's labels
    np.testing.assert_array_equal(np.asarray(ctl.layers.labels.data), expected)
