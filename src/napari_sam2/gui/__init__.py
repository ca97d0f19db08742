"""The napari plugin widget: prompts from napari layers, SAM 2 in background workers.

* :mod:`.widget`: the dock widget (layout and wiring);
* :mod:`.controller`: image, model, session, objects and prompts state;
* :mod:`.layers`: the Points/Shapes/Labels layers and their content as prompts;
* :mod:`.stack`: frame axis, fixed planes and (row, col) of an image layer;
* :mod:`.jobs`: one job at a time off the GUI thread, coalescing, cancel;
* :mod:`.tasks`: the engine calls each job makes (no Qt);
* :mod:`.editing`, :mod:`.propagation`, :mod:`.prompt_io`, :mod:`.lifecycle`: the rest of the controller;
* :mod:`.model_picker`, :mod:`.objects`, :mod:`.notify`.
"""

from .widget import Sam2Widget

__all__ = ["Sam2Widget"]
