"""The engine's :class:`~napari_sam2.engine.coords.geometry.StackGeometry` of a napari image layer.

The last two axes of a layer's data (after dropping the colour axis of an
RGB layer) are the frame's rows and columns. One other axis is the
propagation axis (t or z), chosen from the axis labels; one may hold channels
(named c/ch/channel, or of length 2-4 in unnamed 4-D data, or chosen in the
widget); any further axis is held at the viewer's position when the geometry
is made (``fixed``).

The widget's Points, Shapes and Labels layers have the image layer's axes
(*layer space*: the stack without the colour axis of an RGB layer). The
channel axis of a non-RGB layer is kept there with length 1, stretched over
all channels (:func:`~.layers.layer_transform`), so that they show and take
prompts at every channel; :func:`label_coords` drops it (label space).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..engine.coords.geometry import StackGeometry
from ..errors import ImageDataError

if TYPE_CHECKING:
    import napari
    from napari.layers import Image, Layer

#: Axis labels that name a propagation axis, in order of preference.
TRACK_AXIS_LABELS = (("t", "time", "frame", "frames"), ("z", "slice", "plane", "depth"))
#: Axis labels that name a channel axis.
CHANNEL_AXIS_LABELS = ("c", "ch", "channel", "channels")
#: ``channel_axis`` of :func:`layer_geometry`: the default channel axis (:func:`default_channel_axis`).
AUTO = "auto"


def layer_data(layer: Image) -> Any:
    """The full-resolution data of an image layer (level 0 of a multiscale layer): an array-like
    (NumPy, dask, zarr, ...) of the layer's data shape."""
    return layer.data[0] if getattr(layer, "multiscale", False) else layer.data


def frame_stack_shape(layer: Image) -> tuple[int, ...]:
    """The layer's data shape without the colour axis of an RGB layer."""
    shape = tuple(int(s) for s in layer_data(layer).shape)
    return shape[:-1] if getattr(layer, "rgb", False) else shape


def axis_names(layer: Layer) -> list[str]:
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


def candidate_axes(layer: Image) -> list[int]:
    """Axes that can be the propagation axis (all but the last two)."""
    return list(range(max(len(frame_stack_shape(layer)) - 2, 0)))


def _unnamed(layer: Image) -> bool:
    return all(n == f"axis {i}" for i, n in enumerate(axis_names(layer)))


def default_axis(layer: Image) -> int | None:
    """The propagation axis from the axis labels (t, then z), else the first axis that does not look like
    channels (named c/ch/channel, or of length <= 4 in unnamed 4-D data), else axis 0; None for a 2-D image."""
    axes = candidate_axes(layer)
    if not axes:
        return None
    names = [n.strip().lower() for n in axis_names(layer)]
    for group in TRACK_AXIS_LABELS:
        for ax in axes:
            if names[ax] in group:
                return ax
    shape = frame_stack_shape(layer)
    unnamed4 = _unnamed(layer) and len(shape) == 4 and not getattr(layer, "rgb", False)
    for ax in axes:
        if names[ax] not in CHANNEL_AXIS_LABELS and not (unnamed4 and shape[ax] <= 4):
            return ax
    return axes[0]


def channel_candidates(layer: Image, axis: int | None) -> list[int]:
    """Axes of a non-RGB layer that can hold the channels (2-4 entries, not rows/cols, not ``axis``)."""
    if getattr(layer, "rgb", False):
        return []
    shape = frame_stack_shape(layer)
    return [a for a in candidate_axes(layer) if a != axis and 2 <= shape[a] <= 4]


def default_channel_axis(layer: Image, axis: int | None) -> int | None:
    """The channel axis of a non-RGB layer propagated along ``axis``: an axis named c/ch/channel(s);
    in unnamed 4-D data (e.g. a ZCYX file), the other leading axis when it has 2-4 entries; else None."""
    candidates = channel_candidates(layer, axis)
    names = [n.strip().lower() for n in axis_names(layer)]
    named = [a for a in candidates if names[a] in CHANNEL_AXIS_LABELS]
    if named:
        return named[0]
    if _unnamed(layer) and len(frame_stack_shape(layer)) == 4 and candidates:
        return candidates[0]
    return None


def axis_item(layer: Image, axis: int) -> str:
    """How the widget lists an axis: its name and length, e.g. ``"z (40)"`` or ``"axis 0 (40)"``."""
    return f"{axis_names(layer)[axis]} ({frame_stack_shape(layer)[axis]})"


def describe(layer: Image, geometry: StackGeometry) -> str:
    """The geometry in the layer's axis names, e.g. ``"along axis 0 (40 frames); channels: axis 1 (2)"``."""
    names = axis_names(layer)
    text = geometry.describe(names + ["colour"] * (geometry.ndim - len(names)))
    ch = geometry.channel_axis
    if ch is None:
        return text
    what = "RGB colour" if getattr(layer, "rgb", False) else names[ch]
    return f"{text}; channels: {what} ({geometry.shape[ch]})"


def has_channel_axis(geometry: StackGeometry, ndim: int) -> bool:
    """Whether a layer (or coordinates) of ``ndim`` axes over the stack carries its channel axis: a non-RGB
    image with channels, whose layers have every stack axis (an RGB layer's colour axis is no dimension)."""
    return layer_channel_axis(geometry, ndim) is not None


def layer_channel_axis(geometry: StackGeometry, ndim: int) -> int | None:
    """The channel axis that a layer (or coordinates) of ``ndim`` axes carries (see :func:`has_channel_axis`),
    or None."""
    return geometry.channel_axis if ndim == geometry.ndim else None


def label_coords(geometry: StackGeometry, coords: npt.ArrayLike) -> np.ndarray:
    """Layer-space coordinates (one row per point, or one point; float) in label space: without the channel
    column when the layer has the channel axis (a non-RGB layer with channels)."""
    c = np.asarray(coords, float)
    ch = layer_channel_axis(geometry, c.shape[-1])
    if ch is not None:
        c = np.delete(c, ch, axis=-1)
    return c


def layer_coords(geometry: StackGeometry, coords: npt.ArrayLike, ndim: int) -> np.ndarray:
    """Label-space coordinates ``(N, label_ndim)`` in a layer of ``ndim`` axes (float; channel column 0 when
    the layer has the channel axis)."""
    c = np.asarray(coords, float)
    ch = layer_channel_axis(geometry, ndim)
    if ch is not None:
        c = np.insert(c, ch, 0.0, axis=-1)
    return c


def frame_axis_kind(layer: Image, geometry: StackGeometry | None) -> str | None:
    """What the propagation axis is, from the layer's axis names: ``"time"`` (t, time, frame),
    ``"z"`` (z, slice, plane, depth), or None when the axis is unnamed (or there is none)."""
    if geometry is None or geometry.axis is None:
        return None
    # the layer's non-colour axes are the stack's axes (an RGB layer's colour axis is the last one)
    name = axis_names(layer)[geometry.axis].strip().lower()
    for kind, group in zip(("time", "z"), TRACK_AXIS_LABELS):
        if name in group:
            return kind
    return None


def label_axes(layer: Image, geometry: StackGeometry) -> str:
    """OME axis letters (T, Z, C, Y, X) of the labels over ``layer`` (label space), from its axis names:
    t/time and z/slice names as they say, the frame axis T unless named otherwise, rows and cols Y X."""
    names = [n.strip().lower() for n in axis_names(layer)]
    ch = layer_channel_axis(geometry, len(names))
    if ch is not None:
        del names[ch]  # the labels have no channel axis
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
    return "".join(x for x in letters if x is not None)  # (every one is set by now)


def layer_geometry(layer: Image, axis: int | None, position: npt.ArrayLike | None = None,
                   channel_axis: int | str | None = AUTO) -> StackGeometry:
    """The engine's geometry of ``layer`` along ``axis``; other axes fixed at ``position``.

    ``axis`` None (or not a possible axis) takes :func:`default_axis`. ``position`` is in the layer's
    data coordinates without the colour axis (see :func:`current_position`); extra axes of 4-D and
    5-D data are held at it (rounded, clipped). The colour axis of an RGB layer is the channel axis;
    for other layers ``channel_axis`` is an axis of :func:`channel_candidates`, None (no channels) or
    :data:`AUTO` (:func:`default_channel_axis`).
    Raises :class:`~napari_sam2.errors.ImageDataError` for data the engine cannot track.
    """
    shape = frame_stack_shape(layer)
    if len(shape) < 2:
        raise ImageDataError(f"The image layer {layer.name!r} has {len(shape)} dimension(s); it needs rows and "
                             f"columns.")
    if len(shape) > 2 and (axis is None or axis not in candidate_axes(layer)):
        axis = default_axis(layer)
    rgb = bool(getattr(layer, "rgb", False))
    ch: int | None
    if rgb:
        ch = len(shape)
    elif channel_axis == AUTO:
        ch = default_channel_axis(layer, axis)
    else:
        ch = next((a for a in channel_candidates(layer, axis) if a == channel_axis), None)
    pos = np.zeros(len(shape)) if position is None else np.asarray(position, float)[-len(shape):]
    fixed = {a: int(np.clip(round(pos[a]), 0, shape[a] - 1)) for a in range(len(shape) - 2)
             if a != axis and a != ch}
    full = tuple(int(s) for s in layer_data(layer).shape)
    return StackGeometry.resolve(full, 0 if axis is None else axis, ch, fixed)


def current_position(viewer: napari.Viewer, layer: Image) -> np.ndarray:
    """The viewer's current position in ``layer``'s data coordinates (non-colour axes; float, one per axis)."""
    pos = np.asarray(layer.world_to_data(viewer.dims.point), float)
    return pos[-len(frame_stack_shape(layer)) :]
