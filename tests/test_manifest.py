"""The npe2 manifest is valid and its sample data can be loaded."""

from __future__ import annotations

import numpy as np


def test_manifest_is_valid_and_discoverable():
    from npe2 import PluginManifest

    pm = PluginManifest.from_distribution("napari-sam2")
    assert pm.name == "napari-sam2"
    keys = {s.key for s in pm.contributions.sample_data}
    assert keys == {"timelapse", "zstack"}


def test_sample_data_commands():
    from napari_sam2.sample_data import timelapse, zstack

    (data, meta, kind), = timelapse()
    assert kind == "image" and data.dtype == np.uint16 and data.ndim == 3 and meta["axis_labels"][0] == "t"
    (vol, meta, kind), = zstack()
    assert vol.shape[0] > 10 and meta["axis_labels"][0] == "z"
    # 12-bit-like data: far below the uint16 range, so a full-range scaling would be wrong
    assert data.max() < 5000
