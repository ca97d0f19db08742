"""Resident memory of the napari widget on a lazy 2,000 x 2,048 x 2,048 uint16 stack (16 GiB of pixels).

    xvfb-run -a python benchmarks/viewer_memory.py [--frames 2000] [--size 2048] [--propagate 12]

A real napari viewer shows a lazy dask stack (each frame is made when read);
the widget (built as the Plugins menu builds it) gets sam2.1_hiera_tiny with
stand-in weights (tests/reference/seeded_weights.py: the official shapes and
file format; the numbers depend on sizes, not on training). The script
clicks an object on frame 0, propagates it, then writes a label frame into
the widget's Labels layer for *every* frame of the stack (as a propagation
through the whole stack does) and steps the viewer through the stack, printing
the process's resident memory (RSS) after each step and its peak.

Before napari-sam2 0.4 the Labels layer was an in-RAM numpy array of the
whole stack: 2,000 x 2,048 x 2,048 x 2 bytes = 16 GiB once every frame had
labels. It is now a :class:`napari_sam2.engine.storage.labels.LabelOutput`, a zarr
array on disk above 256 MiB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "reference"))


def rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def lazy_stack(frames: int, size: int):
    """(frames, size, size) uint16 dask array: a bright disc drifting over noise, made per frame."""
    import dask.array as da
    import numpy as np

    def make(block_info=None):
        t = block_info[None]["chunk-location"][0]
        rng = np.random.default_rng(t)
        img = rng.integers(900, 1100, (1, size, size), dtype=np.uint16)
        yy, xx = np.ogrid[:size, :size]
        r0, c0 = size * 0.3 + t * 0.5, size * 0.3 + t * 0.3
        img[0][(yy - r0) ** 2 + (xx - c0) ** 2 < (size / 12) ** 2] += 2000
        return img

    return da.map_blocks(make, dtype=np.uint16, chunks=((1,) * frames, (size,), (size,)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--propagate", type=int, default=12, help="frames to propagate with the model")
    ap.add_argument("--trim", action="store_true", help="also return freed heap memory to the OS after each "
                                                        "frame here (the widget does it after each frame it draws)")
    ap.add_argument("--no-redraw", action="store_true", help="write the labels without redrawing the layer "
                                                             "(to tell napari's share of memory from ours)")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()

    import napari
    import numpy as np
    import torch
    from qtpy.QtWidgets import QApplication
    from seeded_weights import official_shapes, seeded_state_dict

    import napari_sam2
    from napari_sam2.engine.tracking.heap import release_free_memory
    from napari_sam2.gui import Sam2Widget

    steps: list[tuple[str, float]] = []

    def note(what: str) -> None:
        QApplication.processEvents()
        steps.append((what, rss_mib()))
        print(f"{what:<58} RSS {steps[-1][1]:8.0f} MiB", flush=True)

    def wait(widget, timeout=3600.0):
        t0 = time.time()
        while widget.controller.runner.busy and time.time() - t0 < timeout:
            QApplication.processEvents()
            time.sleep(0.02)

    note("start (napari, torch imported)")
    viewer = napari.Viewer(show=True)
    stack = lazy_stack(a.frames, a.size)
    viewer.add_image(stack, name="lazy stack", axis_labels=("t", "y", "x"), contrast_limits=(0, 4000))
    note(f"viewer with a lazy {a.frames} x {a.size} x {a.size} uint16 stack")
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "sam2.1_hiera_tiny.pt"
        torch.save({"model": seeded_state_dict(official_shapes("sam2.1_hiera_tiny"), seed=0)}, ckpt)
        widget = Sam2Widget(viewer)
        viewer.window.add_dock_widget(widget)
        ctl = widget.controller
        ctl.set_model(napari_sam2.load_model(ckpt, device="cpu"))
        wait(widget)
        labels = ctl.layers.labels
        note(f"widget + model; labels layer: {type(labels.data).__module__}.{type(labels.data).__name__}")
        viewer.dims.set_point(0, 0)
        ctl.layers.points.add([[0, a.size * 0.3, a.size * 0.3]])
        wait(widget)
        note("one click on frame 0 (encoder + decoder)")
        if a.propagate:
            t0 = time.time()
            ctl.propagate("forward", 0, a.propagate)
            wait(widget)
            note(f"propagated {a.propagate} frames ({(time.time() - t0) / max(a.propagate, 1):.1f} s/frame)")
        geo = ctl.geometry
        plane = ctl.session.frame_labels(a.propagate if a.propagate else 0)
        t0 = time.time()
        for f in range(a.frames):  # what a propagation through the whole stack writes into the layer
            if a.no_redraw:  # the label output alone, without napari redrawing the layer
                ctl.layers.output.write(f, plane)
            else:
                ctl.layers.write(geo, f, plane)
            if a.trim:
                release_free_memory()
            if f % 250 == 0 or f == a.frames - 1:
                viewer.dims.set_point(0, f)
                note(f"labels written for frames 0-{f}, viewer on frame {f}")
        write_s = (time.time() - t0) / a.frames
        on_disk = sum(p.stat().st_size for p in Path(ctl.layers.output.path).rglob("*") if p.is_file()) \
            if ctl.layers.output.on_disk else 0
        print(f"labels: {write_s * 1000:.1f} ms/frame to write; {on_disk / 2**20:.0f} MiB on disk "
              f"(in RAM it would be {np.prod(geo.label_shape) * 2 / 2**30:.1f} GiB)")
        peak = peak_mib()
        print(f"peak RSS {peak:.0f} MiB")
        if a.json:
            a.json.write_text(json.dumps({"steps": steps, "peak_mib": peak, "label_write_ms": write_s * 1000,
                                          "labels_on_disk_mib": on_disk / 2**20, "frames": a.frames,
                                          "size": a.size}, indent=1))
        viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
