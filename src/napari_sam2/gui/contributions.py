"""The functions napari's manifest (napari.yaml) names as writers and reader: thin, engine/io does the work.

* :func:`write_ome_tiff`, :func:`write_ome_zarr`: *File ▸ Save Selected Layers…* (and
  ``viewer.layers.save(path, selected=True, plugin="napari-sam2")``) of one Labels layer -- ours or any --
  through :func:`~napari_sam2.engine.io.label_files.write_labels`, as the widget's *Export labels…* writes.
* :func:`get_prompt_reader`: a prompt file (*Save prompts…*, ``session.save_prompts``) dropped onto napari
  is replayed in the open SAM 2 widget (its *Load prompts…*), adding no layer.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari.utils.notifications import show_warning

from ..engine.io.label_files import write_labels
from ..engine.io.prompt_file import FORMAT
from ..errors import LabelFormatError
from .stack import CHANNEL_AXIS_LABELS, TRACK_AXIS_LABELS

if TYPE_CHECKING:
    import napari

    from .widget import Sam2Widget

#: Extensions of the OME-TIFF writer (the first is added to a name without one of them).
OME_TIFF_EXTENSIONS = (".ome.tif", ".ome.tiff")
#: Extensions of the OME-Zarr writer.
OME_ZARR_EXTENSIONS = (".ome.zarr",)
#: The name napari gives the widget's dock when it is opened from the Plugins menu.
DOCK_NAME = "SAM 2 tracking (napari-sam2)"
#: How much of a .json file :func:`is_prompt_file` reads: prompt files start with their "format" key.
SNIFF_BYTES = 64 * 1024

_FORMAT_KEY = re.compile(rb'"format"\s*:\s*' + re.escape(json.dumps(FORMAT).encode()))
_NULL_LAYER: list[tuple[None]] = [(None,)]  # napari's "file claimed, no layers" answer of a reader


# ------------------------------------------------------------------ writers
def write_ome_tiff(path: str, data: Any, meta: Mapping[str, Any]) -> list[str]:
    """Write one Labels layer (``data``, ``meta`` as napari's layer data tuple) to an OME-TIFF.

    ``path`` gets ``.ome.tif`` unless it ends with ``.ome.tif`` / ``.ome.tiff`` (a plain ``.tif`` /
    ``.tiff`` is replaced). Returns the written path, as napari's writer contributions do.
    """
    return [str(_write(_with_extension(path, OME_TIFF_EXTENSIONS), data, meta))]


def write_ome_zarr(path: str, data: Any, meta: Mapping[str, Any]) -> list[str]:
    """Write one Labels layer to an OME-Zarr (NGFF v0.4 image-label) folder; ``path`` gets ``.ome.zarr``
    unless it has it (a plain ``.zarr`` is replaced). Returns the written path."""
    return [str(_write(_with_extension(path, OME_ZARR_EXTENSIONS), data, meta))]


def _write(path: Path, data: Any, meta: Mapping[str, Any]) -> Path:
    """``write_labels`` of the layer's full-resolution data with axes from its axis labels, replacing
    ``path`` (napari's save dialog has asked)."""
    labels = data[0] if meta.get("multiscale") else data
    axes = label_axes_from_names(meta.get("axis_labels") or (), len(labels.shape))
    name = str(meta.get("name") or path.name)
    return write_labels(path, labels, axes=axes, overwrite=True, name=name)


def _with_extension(path: str | os.PathLike, extensions: Sequence[str]) -> Path:
    """``path`` if its name ends with one of ``extensions`` (any case), else with ``extensions[0]`` in place
    of the extension's last part (``cells.tif`` -> ``cells.ome.tif``) or added (``cells`` -> ``cells.ome.tif``)."""
    path = Path(path)
    if path.name.lower().endswith(tuple(extensions)):
        return path
    family = {Path(e).suffix for e in extensions}  # {".tif", ".tiff"}, {".zarr"}
    stem = path.name[: -len(path.suffix)] if path.suffix.lower() in family else path.name
    return path.with_name(stem + extensions[0])


def label_axes_from_names(names: Sequence[object], ndim: int) -> str:
    """OME axis letters for labels of ``ndim`` dimensions from napari axis labels (one per axis).

    The last two axes are ``Y``, ``X``; a leading axis named t/time/frame(s) is ``T``, z/slice/plane/depth
    ``Z``, c/ch/channel(s) ``C``; the others (unnamed: napari's default ``-3``, ``-2``, ... or ``0``, ``1``, ...)
    take the first free letter of ``T``, ``Z``, ``C``: ``"YX"``, ``"TYX"``, ``"TZYX"``, ``"TZCYX"``.

    Raises:
        LabelFormatError: ``ndim`` is below 2 or above 5 (OME has five axes).
    """
    if not 2 <= ndim <= 5:
        raise LabelFormatError(
            f"A labels layer of {ndim} dimensions cannot be written as OME (2 to 5 axes: T, Z, C, Y, X); "
            "save a 2-D to 5-D labels layer, or use File ▸ Save Selected Layers… with a plain .tif."
        )
    lowered = [str(n).strip().lower() for n in names] if len(names) == ndim else [""] * ndim
    groups = (("T", TRACK_AXIS_LABELS[0]), ("Z", TRACK_AXIS_LABELS[1]), ("C", CHANNEL_AXIS_LABELS))
    letters: list[str] = [""] * (ndim - 2) + ["Y", "X"]
    for i in range(ndim - 2):
        for letter, group in groups:
            if lowered[i] in group and letter not in letters:
                letters[i] = letter
    for i in range(ndim - 2):
        if not letters[i]:
            letters[i] = next(x for x in "TZC" if x not in letters)
    return "".join(letters)


# ------------------------------------------------------------------ reader
def is_prompt_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` looks like a napari-sam2 prompt file: its first 64 KiB hold
    ``"format": "napari-sam2 prompts"`` (prompt files written by napari-sam2 start with it). Reads no more."""
    try:
        with open(path, "rb") as file:
            head = file.read(SNIFF_BYTES)
    except OSError:
        return False
    return _FORMAT_KEY.search(head) is not None


def get_prompt_reader(path: str | Sequence[str]) -> Callable[[str], list[tuple[None]]] | None:
    """napari's ``get_reader`` for ``*.json``: :func:`read_prompt_file` for a napari-sam2 prompt file, None
    (not claimed) for any other file or for a list of paths."""
    if not isinstance(path, (str, os.PathLike)) or not is_prompt_file(path):
        return None
    return read_prompt_file


def read_prompt_file(path: str) -> list[tuple[None]]:
    """Replay the prompt file ``path`` in the SAM 2 widget of the current viewer (as *Load prompts…* does),
    or say to open the widget first. Adds no layer (returns napari's ``[(None,)]``)."""
    import napari

    widget = find_widget(napari.current_viewer())
    if widget is None:
        show_warning(
            f"{Path(path).name} is a SAM 2 prompt file: open Plugins ▸ SAM 2 tracking, pick the image it "
            "belongs to, then open the file again (or use the widget's Load prompts…)."
        )
    else:
        widget.controller.load_prompts(path)
    return _NULL_LAYER


def find_widget(viewer: napari.Viewer | None) -> Sam2Widget | None:
    """The open (not closed) SAM 2 widget docked in ``viewer``'s window: the one the Plugins menu opened
    (dock ``SAM 2 tracking (napari-sam2)``) first, else any; None if there is none."""
    from .widget import Sam2Widget

    window = getattr(viewer, "window", None)
    docks: Mapping[str, object] | None = getattr(window, "dock_widgets", None)
    if docks is not None:  # napari >= 0.6.2: name -> the docked (inner) widget
        candidates = [docks.get(DOCK_NAME), *docks.values()]
    else:  # older napari: name -> the dock wrapper, which holds the widget as a child
        wrapped: Mapping[str, Any] = getattr(window, "_dock_widgets", None) or {}
        candidates = [w for dock in wrapped.values() for w in dock.findChildren(Sam2Widget)]
    return next((w for w in candidates if isinstance(w, Sam2Widget) and not w.controller.closed), None)
