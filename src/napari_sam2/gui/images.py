"""Several image layers in one widget: each image keeps its own SAM2 layers and prompts — a part of the
controller.

Picking another image layer stops what runs for the previous image (the frames already drawn stay in its
labels layer), renames its layers (``SAM2 labels [cells]``, ...) and leaves them in the viewer untouched;
the new image gets fresh layers, the objects list starts over and nothing of the previous image goes to
the new session. Picking the previous image again attaches its layers again: its labels layer is kept
as it is, and its prompts go to a new session without redrawing (propagate again to go on tracking).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.utils.notifications import show_info

from ..engine.coords.geometry import StackGeometry
from ..engine.prompts import CroppedMask, Prompts
from . import tasks
from .contracts import ImagesHost
from .jobs import Job, Prepared
from .layers import BOXES_NAME, LABELS_NAME, POINTS_NAME, Key, PromptLayers, unwrap
from .region import REGION_NAME
from .tracking import TRACKS_NAME

if TYPE_CHECKING:
    import napari
    from napari.layers import Image, Layer, Shapes, Tracks

    from ..engine.tracking.session import TrackingSession


@dataclass
class Parked:
    """What the widget had for one image layer while another one is picked."""

    image: Image
    layers: PromptLayers
    geometry: StackGeometry | None
    objects: dict[int, str]
    current_obj: int
    marked: dict[int, int]  # the division marks (Tracking.marked)
    prompts: dict[Key, Prompts] = field(default_factory=dict)
    masks: dict[Key, np.ndarray | CroppedMask] = field(default_factory=dict)
    region: Shapes | None = None
    roi: tuple[int, int, int, int] | None = None
    tracks: Tracks | None = None


def _in_viewer(viewer: napari.Viewer, layer: Layer | None) -> bool:
    return layer is not None and unwrap(layer) in unwrap(viewer).layers


def _rename(layer: Layer | None, name: str) -> None:
    if layer is not None:
        layer.name = name


class Images:
    """The parked state of the images not picked now, for a :class:`~.controller.Sam2Controller`."""

    def __init__(self, host: ImagesHost) -> None:
        self.host = host
        self.parked: dict[int, Parked] = {}

    def leave(self, image: Image) -> str:
        """Stop the work on ``image`` and park its layers and state; returns what happened, in words."""
        host = self.host
        stopped = any(j.kind == "propagate" for j in host.jobs())
        host.runner.cancel(kinds=("prompt", "propagate", "edit", "encode"))  # late results are dropped
        host.propagation.resume = None  # a cancelled run of this image must not continue on another
        layers = host.layers
        layers.disconnect(host.points_edited, host.points_edited, host.defaults_changed)
        for layer in (layers.points, layers.shapes):
            if layer is not None:
                layer.bind_key("t", None)
        if layers.points is not None:
            layers.points.bind_key("f", None)
        tracking, region = host.tracking, host.region
        parked = Parked(image, layers, host.geometry, dict(host.objects), host.current_obj, dict(tracking.marked),
                        dict(host.sync_state.prompts), dict(host.sync_state.masks), region.layer, region.roi,
                        tracking.tracks)
        tag = f" [{image.name}]"
        for layer, name in ((layers.points, POINTS_NAME), (layers.shapes, BOXES_NAME), (layers.labels, LABELS_NAME),
                            (region.layer, REGION_NAME), (tracking.tracks, TRACKS_NAME)):
            if _in_viewer(host.viewer, layer):
                _rename(layer, name + tag)
        if region.layer is not None:
            region.layer.events.data.disconnect(region.edited)
        region.layer, region.roi = None, None
        tracking.tracks, tracking.rows, tracking.doubts, tracking.marked = None, [], [], {}
        host.sync_state.prompts, host.sync_state.applied, host.sync_state.masks = {}, {}, {}
        self.parked[id(unwrap(image))] = parked
        host.layers = PromptLayers(host.viewer)
        text = f"'{image.name}' keeps its results in '{LABELS_NAME}{tag}'"
        if stopped:
            text += " (its propagation was stopped; the frames done are there)"
        return text + f"; pick '{image.name}' again to go on with it."

    def enter(self, image: Image) -> StackGeometry | None:
        """Attach the parked layers and state of ``image`` (none: a fresh start); returns the geometry
        it had, or None."""
        host = self.host
        parked = self.parked.pop(id(unwrap(image)), None)
        if parked is None or unwrap(parked.image) is not unwrap(image) or not _in_viewer(host.viewer,
                                                                                       parked.layers.labels):
            host.editing.replace_objects({})
            return None
        old = parked.layers
        for layer, name in ((old.points, POINTS_NAME), (old.shapes, BOXES_NAME), (old.labels, LABELS_NAME),
                            (parked.region, REGION_NAME), (parked.tracks, TRACKS_NAME)):
            if _in_viewer(host.viewer, layer):
                _rename(layer, name)
        layers = host.layers
        layers.labels, layers.output, layers.shown, layers.ndim = old.labels, old.output, old.shown, old.ndim
        # points and boxes are found again by name (and connected) when the controller rebinds
        host.editing.objects = dict(parked.objects)
        host.editing.select_object(parked.current_obj if parked.current_obj in parked.objects else min(parked.objects))
        host.tracking.marked = dict(parked.marked)
        if _in_viewer(host.viewer, parked.tracks):
            host.tracking.tracks = parked.tracks
        if parked.region is not None and _in_viewer(host.viewer, parked.region):
            host.region.layer, host.region.roi = parked.region, parked.roi
            parked.region.events.data.connect(host.region.edited)
        host.sync_state.masks = dict(parked.masks)
        return parked.geometry

    def resend(self) -> None:
        """Send the prompts in the layers to the new session without drawing: the labels layer already
        shows them, and what was propagated from them."""
        host = self.host
        state = host.sync_state
        if host.geometry is None:
            return  # no image to send to (the controller resends only after it made the geometry)
        state.read(host.layers.points, host.layers.shapes, host.geometry)
        items = sorted(state.prompts.items())
        if not items:
            return
        state.edits += 1
        parents = dict(host.tracking.marked)

        def prepare() -> Prepared:
            session = host.get_session()
            return None if session is None else (_quietly, (session, items, parents))

        host.runner.submit(Job(("resend",), "prompt", prepare, host.show,
                               description=f"Sending the prompts of {len(items)} (frame, object) pairs again"))
        host.lifecycle.notify_later(  # (a transient pick while viewer.layers.clear() runs says nothing)
            show_info, f"Back on '{host.image.name}': its layers are in use again, the labels as they were; its "
                       f"prompts go to a new session (propagate again to go on tracking).")


def _quietly(session: TrackingSession, items: list[tuple[Key, Prompts]], parents: dict[int, int]
             ) -> Iterator[Any]:
    """``tasks.segment`` for every ((frame, object), prompts), without the frame labels (the other values
    that it yields: :class:`~.tasks.Status`)."""
    for (frame, obj), prompts in items:
        for value in tasks.segment(session, frame, obj, prompts, parents.get(obj)):
            if not isinstance(value, tasks.FrameLabels):
                yield value
