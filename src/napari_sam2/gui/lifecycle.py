"""Layers deleted under the widget, and shutting down (part of the controller)."""

from __future__ import annotations

import logging

from napari.utils.notifications import show_info, show_warning
from qtpy.QtCore import QTimer

from .layers import PromptLayers, same_layer, unwrap

log = logging.getLogger(__name__)


class LifecycleMixin:
    """Reactions to layer removal and the clean shutdown of :class:`~.controller.Sam2Controller`."""

    def _notify_later(self, show, message: str) -> None:
        """Notify after the current event, unless the viewer is closing (it removes every layer first)."""

        def later():
            # the real viewer behind napari's plugin proxy, which hides private attributes
            window = getattr(unwrap(self.viewer), "window", None) if self.viewer is not None else None
            if not self._closed and getattr(window, "_qt_window", None) is not None:
                show(message)

        QTimer.singleShot(0, later)

    def _layer_removed(self, event) -> None:
        layer = event.value
        if same_layer(layer, self.image):
            self._notify_later(
                show_warning,
                f"The image layer '{layer.name}' was removed: its session was closed. "
                f"Pick another image layer to go on.",
            )
            self.set_image(None)
        elif self.layers.owns(layer):
            owned = next(x for x in (self.layers.points, self.layers.shapes, self.layers.labels)
                         if same_layer(x, layer))
            which = self.layers.forget(layer)
            layer = owned  # the reference the handlers were connected through
            if which in ("points", "shapes"):
                self._notify_later(
                    show_info,
                    f"'{layer.name}' was deleted, and with it its prompts (propagated "
                    f"frames keep their labels).",
                )
                layer.events.data.disconnect(self._points_edited)
                if which == "points":
                    layer.events.current_properties.disconnect(self._defaults_changed)
                self.sync()

    def shutdown(self) -> None:
        """Stop the running job and forget viewer and layers (the widget is going away)."""
        if self._closed:
            return
        self._closed = True
        self._close_bar()
        if self._download is not None:
            self._download.cancel()
            self._download.finish()
        session, self.session = self.session, None
        self.runner.shutdown(then=session.close if session is not None else None)
        try:
            self.viewer.layers.events.removed.disconnect(self._layer_removed)
            if self.image is not None:
                self.image.events.data.disconnect(self._image_data_changed)
            self.layers.disconnect(self._points_edited, self._shapes_edited, self._defaults_changed)
            for layer in (self.layers.points, self.layers.shapes):
                if layer is not None:
                    layer.bind_key("t", None)
            if self.layers.points is not None:
                self.layers.points.bind_key("f", None)
        except (RuntimeError, AttributeError, KeyError, ValueError):
            log.debug("napari-sam2: disconnecting during shutdown", exc_info=True)
        self.viewer = self.image = None
        self.layers = PromptLayers(None)
