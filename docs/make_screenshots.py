#!/usr/bin/env python3
"""Screenshots of the widget at work for docs/user-guide.md, from a real napari window.

    python docs/make_screenshots.py [--model NAME_OR_PATH] [--out docs/images]

Runs the README's demo (sample time-lapse, widget docked, one click), then
adds a box as a second object, propagates both ways and corrects a frame,
saving a PNG after each step; then, for docs/tracking.md, makes objects from
a labels layer, marks a division and shows the tracks, and takes the automatic path (Find objects,
Propagate with divisions detected). Without a display it starts a virtual one
(Xvfb, via pyvirtualdisplay from the `testing` extra); `xvfb-run` works too.

By default it uses the test suite's miniature SAM 2 with random weights
(tests/conftest.py), so it runs in a minute on a CPU, but its masks are
meaningless shapes. Pass ``--model sam2.1_hiera_tiny`` (downloaded once) or a
.pt path to show real masks.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

WIDTH, HEIGHT = 1440, 900
MAX_BYTES = 300_000


def _display():
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
        from pyvirtualdisplay import Display

        display = Display(visible=False, size=(WIDTH + 80, HEIGHT + 80), color_depth=24)
        display.start()
        return display
    return None


def wait(qapp, until, timeout=900.0):
    t0 = time.monotonic()
    while not until():
        qapp.processEvents()
        time.sleep(0.02)
        if time.monotonic() - t0 > timeout:
            raise TimeoutError("the widget did not finish in time")


def save(viewer, path: Path) -> None:
    """A screenshot of the whole window, as a small palette PNG."""
    from PIL import Image

    rgba = viewer.screenshot(canvas_only=False, flash=False)
    img = Image.fromarray(np.asarray(rgba)[..., :3])
    for colors in (256, 128, 64):
        img.quantize(colors=colors, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
        if path.stat().st_size < MAX_BYTES:
            break
    print(f"{path} ({path.stat().st_size // 1024} KB)")


def tiny_random_model():
    """The test suite's miniature SAM 2.1 with seeded random weights (fast, meaningless masks)."""
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from conftest import TINY_CONFIG, tiny_state_dict
    from napari_sam2.engine import Segmenter
    from napari_sam2.model import Sam2Model

    net = Sam2Model(TINY_CONFIG)
    net.load_state_dict(tiny_state_dict())
    return Segmenter(net.eval().to(torch.device("cpu")))


def close_toasts(qapp) -> None:
    """Close napari's notification pop-ups so they do not cover the canvas."""
    for w in qapp.allWidgets():
        if type(w).__name__ == "NapariQtNotification":
            w.close()
    qapp.processEvents()


def timelapse_viewer(qapp, model, source: str | None, labels: np.ndarray | None = None, labels_name: str = ""):
    """A napari window on the sample time-lapse (and ``labels`` as a Labels layer), the widget docked and the
    model loaded: ``(viewer, widget, idle)``, ``idle()`` true when no job runs."""
    import napari

    from napari_sam2 import load_model
    from napari_sam2.gui import Sam2Widget
    from napari_sam2.sample_data import timelapse

    viewer = napari.Viewer(title="napari-sam2", show=True)
    viewer.window.resize(WIDTH, HEIGHT)
    ((data, meta, _),) = timelapse()
    viewer.add_image(data, **meta)
    if labels is not None:
        viewer.add_labels(labels, name=labels_name)
    widget = Sam2Widget(viewer)
    viewer.window.add_dock_widget(widget, name="SAM 2 tracking", area="right")
    ctl = widget.controller
    ctl.set_model(model if model is not None else load_model(source))
    idle = lambda: not ctl.runner.busy  # noqa: E731
    wait(qapp, idle)
    return viewer, widget, idle


def tracking_screenshots(qapp, out: Path, model, source: str | None) -> None:
    """docs/tracking.md: objects from a labels layer (thresholded frame 0), a division, the tracks."""
    from scipy import ndimage

    from napari_sam2.sample_data import timelapse

    ((data, _, _),) = timelapse()
    seeds = np.zeros(data.shape, np.uint16)
    found, _ = ndimage.label(data[0] > 1500)
    seeds[0] = np.where(found > 0, found + 10, 0)  # "Cellpose output" for frame 0
    viewer, widget, idle = timelapse_viewer(qapp, model, source, seeds, "cellpose (frame 0)")
    ctl = widget.controller
    viewer.dims.set_point(0, 0)
    widget.seed_combo.setCurrentText("cellpose (frame 0)")
    widget.seed_button.click()
    wait(qapp, idle)
    widget.forward_button.click()
    wait(qapp, idle)
    viewer.layers["cellpose (frame 0)"].visible = False
    mother = int(seeds[0, 130, 70])
    ctl.select_object(mother)
    viewer.dims.set_point(0, 0)
    widget.show_part(widget.export_tracks_button)
    close_toasts(qapp)
    save(viewer, out / "seeds.png")

    frame = 12  # the cell divides here: two daughters, one click each
    viewer.dims.set_point(0, frame)
    a, b = ctl.tracking.divide()
    viewer.layers.selection.active = ctl.layers.points
    ctl.layers.points.add([[frame, 123.0, 70.0]])
    ctl.select_object(b)
    ctl.layers.points.add([[frame, 137.0, 70.0]])
    wait(qapp, idle)
    widget.first_spin.setValue(frame)
    widget.forward_button.click()
    wait(qapp, idle)
    ctl.select_object(a)
    viewer.dims.set_point(0, 18)
    widget.show_part(widget.export_tracks_button)
    close_toasts(qapp)
    save(viewer, out / "division.png")
    viewer.close()


def automatic_screenshot(qapp, out: Path, model, source: str | None) -> None:
    """docs/tracking.md section 7: Find objects on frame 0, then Propagate with divisions detected."""
    viewer, widget, idle = timelapse_viewer(qapp, model, source)
    ctl = widget.controller
    if model is not None:  # the miniature random model's scores are low: search with loose thresholds
        ctl.find_options = ctl.find_options.replace(points_per_side=8, pred_iou_thresh=0.0,
                                                    stability_score_thresh=0.0, box_nms_thresh=0.5)
    viewer.dims.set_point(0, 0)
    widget.find_min_spin.setValue(30)
    widget.find_button.click()
    wait(qapp, idle)
    widget.detect_check.setChecked(True)
    widget.forward_button.click()
    wait(qapp, idle)
    viewer.dims.set_point(0, 6)
    widget.show_part(widget.find_button)
    close_toasts(qapp)
    save(viewer, out / "automatic.png")
    viewer.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=None, help="model name or .pt file (default: tiny random weights)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "images"), help="output folder")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    display = _display()
    try:
        import napari
        from qtpy.QtWidgets import QApplication

        from napari_sam2.demo import open_demo

        viewer = napari.Viewer(title="napari-sam2", show=True)
        viewer.window.resize(WIDTH, HEIGHT)
        qapp = QApplication.instance()
        model = None if args.model else tiny_random_model()
        if model is not None:  # the miniature model is too quick to be caught half-way: pace it
            from napari_sam2.engine.tracking.session import TrackingSession

            track_frame = TrackingSession._track_frame
            TrackingSession._track_frame = lambda *a, **k: (time.sleep(0.2), track_frame(*a, **k))[1]
        viewer, widget = open_demo(args.model or "", viewer, model=model)
        ctl = widget.controller
        idle = lambda: ctl.model is not None and not ctl.runner.busy  # noqa: E731
        wait(qapp, idle)
        close_toasts(qapp)
        save(viewer, out / "click.png")

        ctl.add_object("dividing cell")  # a box around the cell that divides, on frame 0
        viewer.layers.selection.active = ctl.layers.shapes
        ctl.layers.shapes.add_rectangles(np.array([[0, 112, 52], [0, 112, 88], [0, 148, 88], [0, 148, 52]]))
        wait(qapp, idle)
        save(viewer, out / "box.png")

        ctl.select_object(1)
        viewer.layers.selection.active = ctl.layers.points
        activity = getattr(viewer.window._qt_window, "_activity_dialog", None)  # napari's progress panel
        if activity is not None:
            activity.show()
        shown, half, taken = ctl.propagation.propagated, ctl.geometry.num_frames // 2, []

        def capture(value):  # the screenshot is taken half-way, while the job runs
            shown(value)
            if ctl.propagation.done >= half and not taken:
                taken.append(True)
                close_toasts(qapp)
                save(viewer, out / "propagate.png")

        ctl.propagation.propagated = capture
        widget.both_button.click()
        wait(qapp, idle)
        ctl.propagation.propagated = shown
        if activity is not None:
            activity.hide()

        frame = 16  # a correction: a negative click on frame 16, then re-propagate from there
        viewer.dims.set_point(0, frame)
        widget.negative_button.click()
        ctl.layers.points.add([[frame, 60.0, 150.0]])
        wait(qapp, idle)
        widget.first_spin.setValue(frame)
        widget.forward_button.click()
        wait(qapp, idle)
        viewer.dims.set_point(0, frame)
        close_toasts(qapp)
        save(viewer, out / "correction.png")
        viewer.close()
        tracking_screenshots(qapp, out, model, args.model)
        automatic_screenshot(qapp, out, model, args.model)
    finally:
        if display is not None:
            display.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
