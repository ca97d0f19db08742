"""The README's demo, the console example in docs/console.md and the screenshot script still work."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 120_000


def idle(qtbot, ctl):
    qtbot.waitUntil(lambda: ctl.model is not None and not ctl.runner.busy, timeout=TIMEOUT)


def test_demo_opens_the_widget_with_one_click(gui_display, make_napari_viewer, qtbot, tiny_checkpoint):
    from napari_sam2.demo import open_demo

    viewer, widget = open_demo(str(tiny_checkpoint), make_napari_viewer())
    ctl = widget.controller
    idle(qtbot, ctl)
    assert [layer.name for layer in viewer.layers][0] == "cells (2D+t)"
    assert ctl.session.prompts()[1][0].points.tolist() == [[50, 50]]
    np.testing.assert_array_equal(ctl.layers.labels.data[0], ctl.session.frame_labels(0))


def test_demo_falls_back_to_untrained_weights_offline(
    gui_display, make_napari_viewer, qtbot, tmp_path, monkeypatch, capsys
):
    from napari.utils.notifications import notification_manager

    from napari_sam2.demo import open_demo

    monkeypatch.setenv("NAPARI_SAM2_CACHE", str(tmp_path))
    monkeypatch.setenv("NAPARI_SAM2_BASE_URL", "http://127.0.0.1:9")
    start = len(notification_manager.records)
    viewer, widget = open_demo("sam2.1_hiera_tiny", make_napari_viewer())
    ctl = widget.controller
    idle(qtbot, ctl)
    messages = [n.message for n in notification_manager.records[start:]]
    assert any("could not be downloaded" in m for m in messages) and any("UNTRAINED" in m for m in messages)
    assert "UNTRAINED" in capsys.readouterr().err
    assert ctl.model.variant == "sam2.1_hiera_tiny"
    assert "UNTRAINED" in widget.model_picker.loaded.text()  # the widget itself says so
    np.testing.assert_array_equal(ctl.layers.labels.data[0], ctl.session.frame_labels(0))


def test_demo_without_gui(tiny_checkpoint, capsys):
    from napari_sam2.demo import main

    assert main(["--no-gui", "--model", str(tiny_checkpoint)]) == 0
    assert "frame 0: mask of" in capsys.readouterr().out


def test_console_example_runs(tiny_model, tmp_path, monkeypatch):
    """The first code block of docs/console.md, in a headless viewer model with the tiny model."""
    from napari.components import ViewerModel

    import napari_sam2
    from napari_sam2.sample_data import timelapse

    code = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "console.md").read_text(), re.S)[0]
    viewer = ViewerModel()
    ((data, meta, _),) = timelapse()
    viewer.add_image(data, **meta)
    monkeypatch.setattr(napari_sam2, "load_model", lambda *a, **k: tiny_model)
    monkeypatch.chdir(tmp_path)
    scope = {"viewer": viewer}
    exec(compile(code, "docs/console.md", "exec"), scope)
    labels = viewer.layers["console labels"].data
    assert labels.shape == data.shape and labels[16].any()
    assert (tmp_path / "prompts.json").is_file() and scope["again"].object_ids == [1, 2]


def test_screenshot_script(gui_display, tmp_path):
    out = tmp_path / "images"
    run = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "make_screenshots.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["automatic.png", "box.png", "click.png", "correction.png", "division.png", "propagate.png",
                    "seeds.png"]
    assert all(0 < (out / p).stat().st_size < 300_000 for p in pngs)


@pytest.mark.parametrize("name, doc", [("click", "user-guide"), ("box", "user-guide"), ("propagate", "user-guide"),
                                       ("correction", "user-guide"), ("seeds", "tracking"), ("division", "tracking"),
                                       ("automatic", "tracking")])
def test_screenshots_are_committed(name, doc):
    """Each screenshot the docs show is a real, small PNG of the napari window, not a blank or broken file."""
    from PIL import Image

    path = ROOT / "docs" / "images" / f"{name}.png"
    assert path.is_file() and path.stat().st_size < 300_000
    assert f"images/{name}.png" in (ROOT / "docs" / f"{doc}.md").read_text()
    with Image.open(path) as im:
        assert im.format == "PNG" and im.width >= 800 and im.height >= 500
        rgb = np.asarray(im.convert("RGB")).reshape(-1, 3)
    _, counts = np.unique(rgb, axis=0, return_counts=True)
    assert len(counts) >= 100 and counts.max() < 0.6 * len(rgb)  # a window with content, not one colour


def test_screenshots_are_all_different():
    """Seven screenshots of seven steps: none is a copy of another (a step that failed to draw would be)."""
    from PIL import Image

    pixels = {}
    for name in ("click", "box", "propagate", "correction", "seeds", "division", "automatic"):
        with Image.open(ROOT / "docs" / "images" / f"{name}.png") as im:
            pixels[name] = np.asarray(im.convert("RGB"))
    names = list(pixels)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert pixels[a].shape != pixels[b].shape or not np.array_equal(pixels[a], pixels[b]), (a, b)
