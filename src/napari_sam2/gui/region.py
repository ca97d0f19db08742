"""The region to track in (small objects in large frames): a rectangle in the "SAM2 region" layer —
a part of the controller.

The session then sees only that region, at the model's full resolution
(``open_stack(..., roi=...)``); prompts and labels stay in the image's
coordinates. No rectangle: the whole frame.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from napari.layers import Shapes
from napari.utils.notifications import show_info, show_warning

from .contracts import RegionHost
from .layers import layer_transform, same_layer, unwrap
from .stack import frame_stack_shape, label_coords

if TYPE_CHECKING:
    from napari.utils.events import Event

REGION_NAME = "SAM2 region"


class Region:
    """The ``SAM2 region`` layer of a :class:`~.controller.Sam2Controller` and the region it sets.

    Attributes:
        layer: the Shapes layer (None until *Region…* is pressed).
        roi: (row0, col0, row1, col1) of the last rectangle in it, or None (the whole frame).
    """

    def __init__(self, host: RegionHost) -> None:
        self.host = host
        self.layer: Shapes | None = None
        self.roi: tuple[int, int, int, int] | None = None

    def start(self) -> None:
        """Create (or select) the region layer in rectangle mode."""
        host = self.host
        geo, image = host.geometry, host.image
        if geo is None:
            show_warning("Pick an image layer first.")
            return
        viewer = unwrap(host.viewer)
        if self.layer is None or self.layer not in viewer.layers:
            self.layer = viewer.add_shapes(ndim=len(frame_stack_shape(image)), name=REGION_NAME,
                                           face_color=[0, 0, 0, 0], edge_color="yellow",
                                           edge_width=max(2.0, min(geo.frame_hw) / 200),
                                           **layer_transform(image, geo))
            self.layer.events.data.connect(self.edited)
        viewer.layers.selection.active = self.layer
        self.layer.mode = "add_rectangle"
        text = ("Draw a rectangle in 'SAM2 region': SAM 2 then works on that region at full resolution (small "
                "objects in large frames). Delete the rectangle to use the whole frame again.")
        show_info(text)
        self.host.message.emit(text)

    def edited(self, event: Event | None = None) -> None:
        """The rectangles changed: the last one is the region (none: the whole frame)."""
        if event is not None and str(getattr(event.action, "value", event.action)) not in {"added", "removed",
                                                                                              "changed"}:
            return
        self.set_roi(self.read())

    def read(self) -> tuple[int, int, int, int] | None:
        """(row0, col0, row1, col1) of the layer's last rectangle on the tracked plane, or None."""
        geo = self.host.geometry
        if self.layer is None or geo is None or not len(self.layer.data):
            return None
        rects = [d for d, kind in zip(self.layer.data, self.layer.shape_type) if kind == "rectangle"]
        if not rects:
            return None
        rc = geo.rc(label_coords(geo, rects[-1]))
        (r0, c0), (r1, c1) = np.floor(rc.min(axis=0) + 0.5), np.ceil(rc.max(axis=0) + 0.5)
        h, w = geo.frame_hw
        return int(max(r0, 0)), int(max(c0, 0)), int(min(r1, h)), int(min(c1, w))

    def set_roi(self, roi: tuple[int, int, int, int] | None) -> None:
        """Track in ``roi`` from now on: a new session (prompts are sent again)."""
        if roi is not None and (roi[2] - roi[0] < 8 or roi[3] - roi[1] < 8):
            show_warning(f"The region {roi} is smaller than 8 x 8 pixels inside the image; draw a larger one.")
            return
        if roi == self.roi:
            return
        self.roi = roi
        self.host.rebind()

    def forget(self, layer: object) -> bool:
        """The region layer left the viewer: track the whole frame again. Returns whether it was ours."""
        if self.layer is None or not same_layer(layer, self.layer):
            return False
        self.layer.events.data.disconnect(self.edited)
        self.layer = None
        self.set_roi(None)
        return True

    def describe(self) -> str:
        """The region in words, to append to the geometry's description ("" for the whole frame)."""
        if self.roi is None:
            return ""
        r0, c0, r1, c1 = self.roi
        return f"; region rows {r0}-{r1 - 1}, cols {c0}-{c1 - 1}"
