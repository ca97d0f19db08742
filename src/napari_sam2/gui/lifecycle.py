"""Layers deleted under the widget, and shutting down: a part of the controller."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from napari.utils.notifications import show_info, show_warning
from qtpy.QtCore import QTimer

from .contracts import LifecycleHost
from .layers import PromptLayers, same_layer, unwrap

if TYPE_CHECKING:
    from napari.utils.events import Event

log = logging.getLogger(__name__)


class Lifecycle:
    """Reactions to layer removal, and the clean shutdown, of a :class:`~.controller.Sam2Controller`."""

    def __init__(self, host: LifecycleHost) -> None:
        self.host = host
        self._pending: list[tuple[Callable[[str], Any], str, bool]] = []  # (show, message, about the image)

    def notify_later(self, show: Callable[[str], Any], message: str, image: bool = False) -> None:
        """Notify after the current event, unless the viewer is closing (it removes every layer first).

        Messages of one event loop turn (e.g. ``viewer.layers.clear()``) become one notification: when the
        image went (``image``), its message alone, as the widget's layers going with it is no news.
        """
        self._pending.append((show, message, image))
        if len(self._pending) == 1:
            QTimer.singleShot(0, self._notify_pending)

    def _notify_pending(self) -> None:
        host = self.host
        pending, self._pending = self._pending, []
        try:
            # the real viewer behind napari's plugin proxy, which hides private attributes
            window = getattr(unwrap(host.viewer), "window", None) if host.viewer is not None else None
            if host.closed or getattr(window, "_qt_window", None) is None:
                return
            about_image = [p for p in pending if p[2]]
            for show, message, _ in about_image[-1:] or pending:
                show(message)
        except Exception:  # noqa: BLE001 - a Qt timer callback: raised into Qt, PyQt would abort
            log.exception("napari-sam2: showing a notification failed")

    def layer_removed(self, event: Event) -> None:
        """A layer left the viewer: the image (close its session) or one of the widget's layers."""
        host = self.host
        layer = event.value
        if host.region.forget(layer):
            return
        if same_layer(layer, host.image):
            self.notify_later(
                show_warning,
                f"The image layer '{layer.name}' was removed: its session was closed. "
                f"Pick another image layer to go on.",
                image=True,
            )
            host.set_image(None, removed=True)
        elif host.layers.owns(layer):
            owned = next(x for x in (host.layers.points, host.layers.shapes, host.layers.labels)
                         if x is not None and same_layer(x, layer))
            which = host.layers.forget(layer)
            layer = owned  # the reference the handlers were connected through
            if which in ("points", "shapes"):
                self.notify_later(
                    show_info,
                    f"'{layer.name}' was deleted, and with it its prompts (propagated "
                    f"frames keep their labels).",
                )
                layer.events.data.disconnect(host.points_edited)
                if which == "points":
                    layer.events.current_properties.disconnect(host.defaults_changed)
                host.sync()

    def shutdown(self) -> None:
        """Stop the running job and forget viewer and layers (the widget is going away)."""
        host = self.host
        if host.closed:
            return
        host.closed = True
        host.propagation.close_bar()
        host.finder.close_bar()
        if host.download is not None:
            host.download.cancel()
            host.download.finish()
        session, host.session = host.session, None
        host.runner.shutdown(then=session.close if session is not None else None)
        try:
            host.viewer.layers.events.removed.disconnect(self.layer_removed)
            if host.image is not None:
                host.image.events.data.disconnect(host.image_data_changed)
            host.layers.disconnect(host.points_edited, host.points_edited, host.defaults_changed)
            for layer in (host.layers.points, host.layers.shapes):
                if layer is not None:
                    layer.bind_key("t", None)
            if host.layers.points is not None:
                host.layers.points.bind_key("f", None)
            if host.region.layer is not None:
                host.region.layer.events.data.disconnect(host.region.edited)
        except (RuntimeError, AttributeError, KeyError, ValueError):
            log.debug("napari-sam2: disconnecting during shutdown", exc_info=True)
        host.viewer = host.image = None
        host.layers = PromptLayers(None)
