"""The README's demo: napari on the synthetic time-lapse, with the SAM 2 widget docked.

    napari-sam2 demo [--headless] [--model NAME_OR_PATH]     (or python -m napari_sam2.demo ...)

Opens napari on the sample time-lapse with the plugin's widget, starts
loading the model in the background (``sam2.1_hiera_tiny`` is downloaded
once; the napari progress bar shows the download) and clicks one cell on the
first frame, so its mask appears as soon as the model is ready. Then click
more cells, press Propagate, correct a frame: see docs/user-guide.md.

When the weights cannot be had (no network), it says how to get them and
carries on with untrained random weights so the workflow can still be seen;
those masks are meaningless. ``--headless`` prints the first mask's size
instead of opening napari.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

import numpy as np

from .errors import CheckpointError
from .sample_data import make_timelapse

if TYPE_CHECKING:
    import napari

    from .engine import Segmenter
    from .gui.widget import Sam2Widget

CLICK = (0, 50.0, 50.0)  # (frame, row, col) of the drifting cell
UNTRAINED = "Continuing with UNTRAINED random weights: the masks are meaningless."


def _untrained_model() -> Segmenter:
    import torch

    from .engine import Segmenter
    from .loading import set_precision
    from .model import VARIANTS, Sam2Model

    torch.manual_seed(0)
    net = Sam2Model(VARIANTS["sam2.1_hiera_tiny"]).eval()
    reason = set_precision(net, None)  # the same rule as a loaded checkpoint
    return Segmenter(net, trained=False, precision_reason=reason)


def _headless(model_source: str) -> int:
    from . import load_model

    try:
        model = load_model(model_source)
    except CheckpointError as exc:
        print(f"\n{exc}\n\n{UNTRAINED}\n", file=sys.stderr)
        model = _untrained_model()
    print(model)
    stack = make_timelapse()
    result = model.predict_image(stack[CLICK[0]], points=np.array([CLICK[1:]]), labels=[1])
    print(f"frame 0: mask of {int(result.masks[0].sum())} pixels, predicted IoU {result.scores[0]:.3f}")
    return 0


def open_demo(model_source: str = "sam2.1_hiera_tiny", viewer: napari.Viewer | None = None,
              model: Segmenter | None = None) -> tuple[napari.Viewer, Sam2Widget]:
    """Open (or use) a viewer with the sample time-lapse and the docked widget; returns (viewer, widget).

    The widget loads ``model_source`` in the background, or uses ``model`` (a loaded Segmenter) if given.
    """
    import napari
    from napari.qt.threading import create_worker
    from napari.utils.notifications import show_warning

    from .gui import Sam2Widget
    from .sample_data import timelapse

    viewer = viewer or napari.Viewer(title="napari-sam2 demo")
    ((data, meta, _),) = timelapse()
    viewer.add_image(data, **meta)
    widget = Sam2Widget(viewer)
    viewer.window.add_dock_widget(widget, name="SAM 2 tracking", area="right")
    ctl = widget.controller

    def fall_back(message: str) -> None:  # offline or a bad file: show the workflow on random weights
        print(f"\n{message}\n\n{UNTRAINED}\n", file=sys.stderr)
        show_warning(UNTRAINED)
        create_worker(_untrained_model, _connect={"returned": ctl.set_model})

    ctl.load_failed.connect(fall_back)
    if model is not None:
        ctl.set_model(model)
    else:
        widget.model_picker.set_source(model_source)
        ctl.load_model(model_source)
    viewer.dims.set_point(0, CLICK[0])
    assert ctl.layers.points is not None  # made by set_image
    ctl.layers.points.add([list(CLICK)])
    return viewer, widget


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="sam2.1_hiera_tiny", help="model name or .pt file")
    parser.add_argument("--headless", "--no-gui", dest="headless", action="store_true",
                        help="print the result instead of opening napari")
    args = parser.parse_args(argv)
    if args.headless:
        return _headless(args.model)

    import napari

    open_demo(args.model)
    napari.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
