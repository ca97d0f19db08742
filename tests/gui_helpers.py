"""Helpers of the GUI tests (their fixtures are in conftest.py): sizes, waiting, opening the widget."""

from __future__ import annotations

T, SIZE = 6, 64
TIMEOUT = 120_000
WIDGET_NAME = "SAM 2 tracking"


def idle(qtbot, widget, timeout=TIMEOUT):
    qtbot.waitUntil(lambda: not widget.controller.runner.busy, timeout=timeout)


def open_widget(viewer, route: str):
    """The widget as the demo builds it ("direct") or as Plugins ▸ SAM 2 opens it ("plugin": napari
    then hands the widget a proxy of the viewer)."""
    from napari_sam2.gui import Sam2Widget

    if route == "plugin":
        _dock, widget = viewer.window.add_plugin_dock_widget("napari-sam2", WIDGET_NAME)
        return widget
    widget = Sam2Widget(viewer)
    viewer.window.add_dock_widget(widget, name="SAM 2")
    return widget
