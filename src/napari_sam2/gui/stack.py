"""Where the frames of a napari image layer are: propagation axis, fixed planes, (row, col).

The last two axes of a layer's data (after dropping the colour axis of an
RGB layer) are the frame's rows and columns. One other axis is the
propagation axis (t or z); any further axis is held at the viewer's position
when the geometry is made (``fixed``), exactly as ``open_stack(..., fixed=...)``
does in the engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

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


@dataclass(frozen=True)
class StackGeometry:
    """How frames, planes and pixels of one image layer map to the engine's frame index.

    Args:
        shape: data shape without the colour axis (also the shape of the output labels).
        axis: the propagation axis, or None for a single 2-D frame.
        fixed: ``{axis: index}`` for the axes held still (4-D and 5-D data).
        rgb: whether the layer's data has a trailing colour axis.
    """

    shape: tuple[int, ...]
    axis: int | None
    fixed: dict[int, int] = field(default_factory=dict)
    rgb: bool = False

    @classmethod
    def from_layer(cls, layer, axis: int | None, position=None) -> StackGeometry:
        """Geometry of ``layer`` along ``axis``; extra axes fixed at ``position`` (layer data coords)."""
        shape = frame_stack_shape(layer)
        if len(shape) < 2:
            raise ValueError(
                f"The image layer {layer.name!r} has {len(shape)} dimension(s); it needs rows and columns."
            )
        if len(shape) == 2:
            axis = None
        elif axis is None or axis not in candidate_axes(layer):
            axis = default_axis(layer)
        pos = np.zeros(len(shape)) if position is None else np.asarray(position, float)[-len(shape) :]
        fixed = {a: int(np.clip(round(pos[a]), 0, shape[a] - 1)) for a in range(len(shape) - 2) if a != axis}
        return cls(shape, axis, fixed, bool(getattr(layer, "rgb", False)))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def num_frames(self) -> int:
        return 1 if self.axis is None else self.shape[self.axis]

    @property
    def frame_hw(self) -> tuple[int, int]:
        return self.shape[-2], self.shape[-1]

    def open_session(self, model, data, **kwargs):
        """``model.open_stack(data, axis, channel_axis, fixed)`` for this geometry."""
        return model.open_stack(
            data,
            axis=0 if self.axis is None else self.axis,
            channel_axis=self.ndim if self.rgb else None,
            fixed=dict(self.fixed) or None,
            **kwargs,
        )

    def frame_of(self, coord) -> int | None:
        """The frame of a point given in layer data coordinates, or None if it is in another plane."""
        c = np.asarray(coord, float)
        if any(round(c[a]) != i for a, i in self.fixed.items()):
            return None
        if self.axis is None:
            return 0
        frame = int(round(c[self.axis]))
        return frame if 0 <= frame < self.num_frames else None

    def index(self, frame: int) -> tuple:
        """The numpy index of ``frame`` in an array of :attr:`shape` (e.g. the labels)."""
        key: list = [slice(None)] * self.ndim
        for a, i in self.fixed.items():
            key[a] = i
        if self.axis is not None:
            key[self.axis] = int(frame)
        return tuple(key)

    def coords(self, frame: int, rc) -> np.ndarray:
        """(N, ndim) layer coordinates of (row, col) positions ``rc`` on ``frame``."""
        rc = np.asarray(rc, float).reshape(-1, 2)
        out = np.zeros((len(rc), self.ndim))
        for a, i in self.fixed.items():
            out[:, a] = i
        if self.axis is not None:
            out[:, self.axis] = frame
        out[:, -2:] = rc
        return out

    def describe(self, names: list[str]) -> str:
        """E.g. ``"along t (24 frames), z = 12"``."""
        if self.axis is None:
            return "single 2-D image"
        text = f"along {names[self.axis]} ({self.num_frames} frames)"
        held = ", ".join(f"{names[a]} = {i}" for a, i in sorted(self.fixed.items()))
        return f"{text}, {held}" if held else text


def current_position(viewer, layer) -> np.ndarray:
    """The viewer's current position in ``layer``'s data coordinates (non-colour axes)."""
    pos = np.asarray(layer.world_to_data(viewer.dims.point), float)
    return pos[-len(frame_stack_shape(layer)) :]
