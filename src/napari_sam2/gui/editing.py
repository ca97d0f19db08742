"""Objects, polarity and the mask / clear-frame actions (part of the controller)."""

from __future__ import annotations

from napari.utils.notifications import show_info, show_warning

from . import tasks
from .jobs import Job


class EditingMixin:
    """Object list, polarity and per-frame prompt actions of :class:`~.controller.Sam2Controller`."""

    def use_painted_mask(self) -> None:
        """Send the selected object's painted pixels on the current frame as its mask prompt."""
        if self.geometry is None or self.layers.labels is None:
            show_warning("Pick an image layer first; then paint the object into the labels layer.")
            return
        frame = self.current_frame()
        mask = self.layers.labels.data[self.geometry.index(frame)] == self.current_obj
        if not mask.any():
            show_info(
                f"Nothing of object {self.current_obj} is painted on frame {frame}: it is sent as "
                f"'object absent on this frame'."
            )
        self.masks[(frame, self.current_obj)] = mask
        self.sync()

    def clear_frame(self) -> None:
        """Remove every prompt of the selected object on the current frame."""
        if self.geometry is None:
            return
        frame = self.current_frame()
        self.masks.pop((frame, self.current_obj), None)
        with self.quiet():
            self.layers.clear_frame(self.geometry, frame, self.current_obj)
        self.sync()

    # ------------------------------------------------------------- polarity
    def set_positive(self, positive: bool) -> None:
        """Polarity of the next points."""
        self.positive = bool(positive)
        with self.quiet():
            self.layers.set_defaults(self.current_obj, self.positive)
        self.polarity_changed.emit(self.positive)

    def _key_toggle(self, layer=None) -> None:
        self.set_positive(not self.positive)

    def _key_flip(self, layer=None) -> None:
        with self.quiet():
            flipped = self.layers.flip_selected()
        if flipped:
            self.sync()

    # -------------------------------------------------------------- objects
    def add_object(self, name: str | None = None) -> int:
        obj = max(self.objects, default=0) + 1
        self.objects[obj] = name or f"object {obj}"
        self.objects_changed.emit()
        self.select_object(obj)
        return obj

    def select_object(self, obj: int) -> None:
        self.current_obj = int(obj)
        with self.quiet():
            self.layers.set_defaults(self.current_obj, self.positive)
        self.objects_changed.emit()

    def rename_object(self, obj: int, name: str) -> None:
        self.objects[int(obj)] = name
        self.objects_changed.emit()

    def delete_object(self, obj: int) -> None:
        """Remove an object: its prompts, its labels and its state in the session."""
        obj = int(obj)
        with self.quiet():
            self.layers.remove_object(obj)
        self.masks = {k: m for k, m in self.masks.items() if k[1] != obj}
        self.prompts = {k: p for k, p in self.prompts.items() if k[1] != obj}
        self.applied = {k: p for k, p in self.applied.items() if k[1] != obj}
        self.objects.pop(obj, None)
        self.runner.submit(
            Job(
                ("remove", obj),
                "edit",
                lambda: None if self.session is None else (tasks.remove_object, (self.session, obj)),
                self._show,
                description=f"Removing object {obj}",
            )
        )
        if not self.objects:
            self.add_object()
        elif obj == self.current_obj:
            self.select_object(min(self.objects))
        else:
            self.objects_changed.emit()
