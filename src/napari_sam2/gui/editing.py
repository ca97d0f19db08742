"""Objects, polarity and the mask / clear-frame actions: a part of the controller."""

from __future__ import annotations

from typing import TYPE_CHECKING

from napari.utils.notifications import show_info, show_warning

from ..engine.prompts import MAX_OBJ_ID
from . import tasks
from .contracts import EditingHost

if TYPE_CHECKING:
    from napari.layers import Layer


class Editing:
    """Object list, polarity and per-frame prompt actions of a :class:`~.controller.Sam2Controller`.

    Attributes:
        objects: ``{obj_id: name}`` in the order they were made.
        current_obj: the object that new points and boxes get.
        positive: the polarity of the next points.
    """

    def __init__(self, host: EditingHost) -> None:
        self.host = host
        self.objects: dict[int, str] = {1: "object 1"}
        self.current_obj = 1
        self.positive = True

    def use_painted_mask(self) -> None:
        """Send the selected object's painted pixels on the current frame as its mask prompt."""
        host = self.host
        if host.geometry is None or host.layers.labels is None:
            show_warning("Pick an image layer first; then paint the object into the labels layer.")
            return
        frame = host.current_frame()
        mask = host.layers.read(host.geometry, frame) == self.current_obj
        if not mask.any():
            show_info(
                f"Nothing of object {self.current_obj} is painted on frame {frame}: it is sent as "
                f"'object absent on this frame'."
            )
        host.sync_state.masks[(frame, self.current_obj)] = mask
        host.sync()

    def clear_frame(self) -> None:
        """Remove every prompt of the selected object on the current frame."""
        host = self.host
        if host.geometry is None:
            return
        frame = host.current_frame()
        host.sync_state.masks.pop((frame, self.current_obj), None)
        with host.quiet():
            host.layers.clear_frame(host.geometry, frame, self.current_obj)
        host.sync()

    # ------------------------------------------------------------- polarity
    def set_positive(self, positive: bool) -> None:
        """Polarity of the next points."""
        self.positive = bool(positive)
        with self.host.quiet():
            self.host.layers.set_defaults(self.current_obj, self.positive)
        self.host.polarity_changed.emit(self.positive)

    def key_toggle(self, layer: Layer | None = None) -> None:
        """Key T: switch the polarity of the next points."""
        self.set_positive(not self.positive)

    def key_flip(self, layer: Layer | None = None) -> None:
        """Key F: flip the polarity of the selected points."""
        with self.host.quiet():
            flipped = self.host.layers.flip_selected()
        if flipped:
            self.host.sync()

    # -------------------------------------------------------------- objects
    def add_object(self, name: str | None = None) -> int:
        """A new object after the largest id (or the smallest free id once that reaches ``MAX_OBJ_ID``, the
        largest a label image holds); selects it and returns its id."""
        obj = max(self.objects, default=0) + 1
        if obj > MAX_OBJ_ID:
            obj = min(set(range(1, len(self.objects) + 2)) - set(self.objects))
        self.objects[obj] = name or f"object {obj}"
        self.host.objects_changed.emit()
        self.select_object(obj)
        return obj

    def select_object(self, obj: int) -> None:
        self.current_obj = int(obj)
        with self.host.quiet():
            self.host.layers.set_defaults(self.current_obj, self.positive)
        self.host.objects_changed.emit()

    def rename_object(self, obj: int, name: str) -> None:
        self.objects[int(obj)] = name
        self.host.objects_changed.emit()

    def replace_objects(self, objects: dict[int, str]) -> None:
        """A new object list (e.g. from a prompt file); selects the first object."""
        self.objects = dict(objects) or {1: "object 1"}
        self.select_object(min(self.objects))

    def delete_object(self, obj: int) -> None:
        """Remove an object: its prompts, its labels and its state in the session."""
        obj = int(obj)
        host = self.host
        with host.quiet():
            host.layers.remove_object(obj)
        host.sync_state.forget_object(obj)
        self.objects.pop(obj, None)
        host.submit_session_task(("remove", obj), tasks.remove_object, f"Removing object {obj}", obj)
        if not self.objects:
            self.add_object()
        elif obj == self.current_obj:
            self.select_object(min(self.objects))
        else:
            host.objects_changed.emit()
