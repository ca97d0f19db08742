"""The engine's :class:`~napari_sam2.engine.geometry.StackGeometry` of a napari image layer.

The last two axes of a layer's data (after dropping the colour axis of an
RGB layer) are the frame's rows and columns. One other axis is the
propagation axis (t or z), chosen from the axis labels; any further axis is
held at the viewer's position when the geometry is made (``fixed``). The
layer's non-colour axes are the geometry's *label space*: the coordinates of
the widget's Points, Shapes and Labels layers.
"""

from __future__ import annotations

import numpy as np

from ..engine.geometry import StackGeometry
from ..errors import ImageDataError

#: Axis labels that name a propagation axis, in order of preference.
TRACK_AXIS_LABELS = (("t", "time", "frame", "frames"), ("z", "slice", "plane", "depth"))


def layer_data(layer):
    """The full-resolution data of an image layer (level 0 of a multiscale layer)."""
    return layer.data[0] if getattr(layer, "multiscale", False) else layer.data


def frame_stack_shape(layer) -> tuple[int, ...]:
    """The layer's data shape without the colour axis of an RGB layer."""
    shape = tuple(int(s) for s in layer_data(layer).shape)
    return shape[:-1] if getattr(layer, "rgb", False) else shape


def axis_names(layer) -> list[str]:
    """The layer's axis labels (one per non-colour axis), or ``axis 0``, ``axis 1``, ...

    napari's default labels (``-3``, ``-2``, ``-1``: the axis counted from the end) mean "no
    name" and become ``axis i`` too.
    """
    n = len(frame_stack_shape(layer))
    labels = list(getattr(layer, "axis_labels", ()) or ())

    def named(i: int) -> bool:
        text = str(labels[i]).strip() if i < len(labels) else ""
        return bool(text) and not text.lstrip("-").isdigit()

    return [str(labels[i]) if named(i) else f"axis {i}" for i in range(n)]


def candidate_axes(layer) -> list[int]:
    """Axes that can be the propagation axis (all but the last two)."""
    return list(range(max(len(frame_stack_shape(layer)) - 2, 0)))


def default_axis(layer) -> int | None:
    """The propagation axis from the axis labels (t, then z), else axis 0; None for a 2-D image."""
    axes = candidate_axes(layer)
    if not axes:
        return None
    names = [n.strip().lower() for n in axis_names(layer)]
    for group in TRACK_AXIS_LABELS:
        for ax in axes:
            if names[ax] in group:
                return ax
    return axes[0]


def label_axes(layer, geometry: StackGeometry) -> str:
    """OME axis letters (T, Z, C, Y, X) of the labels over ``layer`` (label space), from its axis names:
    t/time and z/slice names as they say, the frame axis T unless named otherwise, rows and cols Y X."""
    names = [n.strip().lower() for n in axis_names(layer)]
    n = geometry.label_ndim
    letters: list[str | None] = [None] * n
    letters[-2:] = ["Y", "X"]
    for i in range(n - 2):
        for letter, group in zip("TZ", TRACK_AXIS_LABELS):
            if names[i] in group and letter not in letters:
                letters[i] = letter
        if letters[i] is None and names[i] in ("c", "ch", "channel", "channels") and "C" not in letters:
            letters[i] = "C"
    if geometry.label_axis is not None and letters[geometry.label_axis] is None:
        letters[geometry.label_axis] = "T" if "T" not in letters else "Z"
    for i in range(n):
        if letters[i] is None:
            letters[i] = next(x for x in "ZTC" if x not in letters)
    return "".join(letters)


def layer_geometry(layer, axis: int | None, position=None) -> StackGeometry:
    """The engine's geometry of ``layer`` along ``axis``; other axes fixed at ``position``.

    ``axis`` None (or not a possible axis) takes :func:`default_axis`. ``position`` is in the layer's
    data coordinates without the colour axis (see :func:`current_position`); extra axes of 4-D and
    5-D data are held at it (rounded, clipped). The colour axis of an RGB layer is the channel axis.
    Raises :class:`~napari_sam2.errors.ImageDataError` for data the engine cannot track.
    """
    shape = frame_stack_shape(layer)
    if len(shape) < 2:
        raise ImageDataError(f"The image layer {layer.name!r} has {len(shape)} dimension(s); it needs rows and "
                             f"columns.")
    if len(shape) > 2 and (axis is None or axis not in candidate_axes(layer)):
        axis = default_axis(layer)
    pos = np.zeros(len(shape)) if position is None else np.asarray(position, float)[-len(shape):]
    fixed = {a: int(np.clip(round(pos[a]), 0, shape[a] - 1)) for a in range(len(shape) - 2) if a != axis}
    rgb = bool(getattr(layer, "rgb", False))
    full = tuple(int(s) for s in layer_data(layer).shape)
    return StackGeometry.resolve(full, 0 if axis is None else axis, len(shape) if rgb else None, fixed)


def current_position(viewer, layer) -> np.ndarray:
    """The viewer's current position in ``layer``'s data coordinates (non-colour axes)."""
    pos = np.asarray(layer.world_to_data(viewer.dims.point), float)
    return pos[-len(frame_stack_shape(layer)) :]
