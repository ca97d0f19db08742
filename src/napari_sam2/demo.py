"""The README's demo: segment a cell in the synthetic time-lapse.

    python -m napari_sam2.demo [--model NAME_OR_PATH] [--no-gui]

Loads the model (downloading ``sam2.1_hiera_tiny`` once if needed), clicks
one cell on the first frame and shows image, click and mask in napari. When
the weights cannot be had (no network), it says how to get them and carries
on with untrained random weights so the pipeline can still be seen; those
masks are meaningless.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from .errors import CheckpointError
from .sample_data import make_timelapse


def _untrained_model():
    import torch

    from .engine import Segmenter
    from .model import VARIANTS, Sam2Model

    torch.manual_seed(0)
    return Segmenter(Sam2Model(VARIANTS["sam2.1_hiera_tiny"]).eval())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="sam2.1_hiera_tiny", help="model name or .pt file")
    parser.add_argument("--no-gui", action="store_true", help="print the result instead of opening napari")
    args = parser.parse_args(argv)

    from . import load_model

    try:
        model = load_model(args.model)
    except CheckpointError as exc:
        print(f"\n{exc}\n\nContinuing with UNTRAINED random weights: the masks below are meaningless.\n",
              file=sys.stderr)
        model = _untrained_model()
    print(model)

    stack = make_timelapse()
    click = np.array([[50.0, 50.0]])  # (row, col) of the drifting cell on frame 0
    result = model.predict_image(stack[0], points=click, labels=[1])
    print(f"frame 0: mask of {int(result.masks[0].sum())} pixels, predicted IoU {result.scores[0]:.3f}")
    if args.no_gui:
        return 0

    import napari

    viewer = napari.Viewer(title="napari-sam2 demo")
    viewer.add_image(stack, name="cells (2D+t)", axis_labels=("t", "y", "x"), contrast_limits=(0, 3500))
    labels = np.zeros(stack.shape, np.uint8)
    labels[0][result.masks[0]] = 1
    viewer.add_labels(labels, name="SAM 2 mask", opacity=0.5)
    viewer.add_points(np.c_[np.zeros(1), click], name="click", face_color="lime", size=6)
    napari.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
