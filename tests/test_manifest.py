"""The npe2 manifest is valid and its sample data can be loaded."""

from __future__ import annotations

import numpy as np


def test_manifest_is_valid_and_discoverable():
    from npe2 import PluginManifest

    pm = PluginManifest.from_distribution("napari-sam2")
    assert pm.name == "napari-sam2"
    keys = {s.key for s in pm.contributions.sample_data}
    assert keys == {"timelapse", "zstack"}
    (widget,) = pm.contributions.widgets
    assert widget.display_name == "SAM 2 tracking"
    command = next(c for c in pm.contributions.commands if c.id == widget.command)
    assert command.python_name == "napari_sam2.gui:Sam2Widget"
    assert [m.command for m in pm.contributions.menus["napari/layers/segment"]] == [widget.command]


def test_manifest_writers_and_reader():
    """Labels layers save as OME-TIFF / OME-Zarr (napari's Save Selected Layers); prompt files open as .json."""
    from npe2 import PluginManifest

    pm = PluginManifest.from_distribution("napari-sam2")
    writers = {w.command: w for w in pm.contributions.writers}
    assert set(writers) == {"napari-sam2.write_ome_tiff", "napari-sam2.write_ome_zarr"}
    assert all(w.layer_types == ["labels"] for w in writers.values())
    assert writers["napari-sam2.write_ome_tiff"].filename_extensions == [".ome.tif", ".ome.tiff"]
    assert writers["napari-sam2.write_ome_zarr"].filename_extensions == [".ome.zarr"]
    (reader,) = pm.contributions.readers
    assert reader.command == "napari-sam2.get_prompt_reader" and reader.filename_patterns == ["*.json"]
    assert not reader.accepts_directories


def test_manifest_commands_resolve():
    from npe2 import PluginManifest
    from npe2.manifest.utils import import_python_name

    pm = PluginManifest.from_distribution("napari-sam2")  # parsing validates the schema
    for command in pm.contributions.commands:  # every python_name resolves
        assert callable(import_python_name(command.python_name))


def test_sample_data_commands():
    from napari_sam2.sample_data import timelapse, zstack

    (data, meta, kind), = timelapse()
    assert kind == "image" and data.dtype == np.uint16 and data.ndim == 3 and meta["axis_labels"][0] == "t"
    (vol, meta, kind), = zstack()
    assert vol.shape[0] > 10 and meta["axis_labels"][0] == "z"
    # 12-bit-like data: far below the uint16 range, so a full-range scaling would be wrong
    assert data.max() < 5000
