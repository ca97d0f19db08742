"""Where the frames of a stack are: propagation axis, fixed planes, channel axis, (row, col).

One :class:`StackGeometry` describes a stack for every part of napari-sam2:
the frame reader (:mod:`.frames`), the tracking session, the label output
(:mod:`.labels`), the prompt file and the napari widget (whose layers hold
the stack without its colour axis, the *label space*).

Two coordinate spaces are used:

* **stack space**: every axis of the data, channel axis included;
* **label space**: the stack's axes without the channel axis. This is the
  shape of a label image of the whole stack, and of napari's Labels, Points
  and Shapes layers drawn over an image layer (whose RGB axis is not a
  dimension).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from ...errors import ImageDataError, plural


def _resolve_axis(ax: int, ndim: int, what: str) -> int:
    if isinstance(ax, bool) or not isinstance(ax, (int, np.integer)):
        raise ImageDataError(f"{what} must be an integer axis index; got {ax!r}.")
    if not -ndim <= ax < ndim:
        raise ImageDataError(f"{what} {ax} does not exist in a {ndim}-D stack.")
    return int(ax) % ndim


@dataclass(frozen=True)
class StackGeometry:
    """The frames of a stack of shape :attr:`shape` along :attr:`axis`.

    Build it with :meth:`resolve`, which checks the combination.

    Args:
        shape: the stack's shape (stack space, channel axis included).
        axis: the propagation axis (t or z) in stack space, or None for a single 2-D frame.
        fixed: ``{axis: index}`` (stack space) for every extra axis held still.
        channel_axis: the axis holding 1-4 channels (stack space), or None.
        spatial_axes: the (row, col) axes in stack space.
    """

    shape: tuple[int, ...]
    axis: int | None
    fixed: Mapping[int, int] = field(default_factory=dict)
    channel_axis: int | None = None
    spatial_axes: tuple[int, int] = (-2, -1)

    @classmethod
    def resolve(cls, shape: Sequence[int], axis: int = 0, channel_axis: int | None = None,
                fixed: Mapping[int, int] | None = None) -> StackGeometry:
        """Check and complete a geometry for a stack of ``shape``.

        ``channel_axis=None`` treats a trailing axis of length <= 4 of a 4-D
        stack without fixed axes (e.g. (T, H, W, 3)) as channels. A 2-D
        stack, or a 3-D one with a channel axis, is a single frame (``axis``
        becomes None). Every axis other than the frame axis, the channel
        axis and (rows, cols) must be fixed.

        Raises :class:`~napari_sam2.errors.ImageDataError` saying what to change.
        """
        shape = tuple(int(s) for s in shape)
        ndim = len(shape)
        if ndim < 2:
            raise ImageDataError(f"A stack needs at least 2 dimensions (rows, cols); got shape {shape}.")
        fixed = {_resolve_axis(a, ndim, "fixed axis"): int(i) for a, i in (fixed or {}).items()}
        for a, i in fixed.items():
            if not 0 <= i < shape[a]:
                raise ImageDataError(f"fixed index {i} is outside axis {a} of length {shape[a]}.")
        if channel_axis is None and ndim - len(fixed) == 4 and shape[-1] <= 4 and ndim - 1 not in fixed:
            channel_axis = ndim - 1
        ch = None if channel_axis is None else _resolve_axis(channel_axis, ndim, "channel_axis")
        if ch is not None and not 1 <= shape[ch] <= 4:
            raise ImageDataError(f"channel_axis {channel_axis} has {shape[ch]} entries; 1-4 channels are supported.")
        if ch is not None and ch in fixed:
            raise ImageDataError(f"axis {ch} is given both as channel axis and as fixed axis.")
        free = [a for a in range(ndim) if a not in fixed and a != ch]
        if len(free) == 2:
            frame_axis = None  # a single image
        else:
            frame_axis = _resolve_axis(axis, ndim, "axis")
            if frame_axis in fixed or frame_axis == ch:
                raise ImageDataError(f"axis {axis} is also given as fixed or channel axis.")
            if len(free) != 3:
                raise ImageDataError(
                    f"A {ndim}-D stack of shape {shape} has {len(free)} free axes; after the frame axis only "
                    f"(rows, cols) may remain. Fix the extra axes, e.g. open_stack(data, axis=0, "
                    f"fixed={{1: 0}}) to track along axis 0 in plane 0 of axis 1, and name a channel "
                    f"axis with channel_axis=..."
                )
        spatial = tuple(a for a in free if a != frame_axis)
        if len(spatial) != 2:
            raise ImageDataError(f"A stack of shape {shape} with these axes leaves no (rows, cols) plane.")
        geo = cls(shape, frame_axis, fixed, ch, (spatial[0], spatial[1]))
        if geo.num_frames == 0 or 0 in geo.frame_hw:
            raise ImageDataError(f"The stack is empty (shape {shape}); it needs at least one frame of 1 x 1 pixels.")
        return geo

    # ------------------------------------------------------------ sizes
    @property
    def ndim(self) -> int:
        """Axes in stack space."""
        return len(self.shape)

    @property
    def num_frames(self) -> int:
        return 1 if self.axis is None else self.shape[self.axis]

    @property
    def frame_hw(self) -> tuple[int, int]:
        """(rows, cols) of one frame."""
        return self.shape[self.spatial_axes[0]], self.shape[self.spatial_axes[1]]

    @property
    def channels(self) -> int:
        return 1 if self.channel_axis is None else self.shape[self.channel_axis]

    # ------------------------------------------------------- stack space
    def stack_index(self, frame: int) -> tuple:
        """The numpy index that reads ``frame`` from the stack (fixed axes and frame axis as integers)."""
        key: list = [slice(None)] * self.ndim
        for a, i in self.fixed.items():
            key[a] = i
        if self.axis is not None:
            key[self.axis] = int(frame)
        return tuple(key)

    def to_frame_array(self, block: np.ndarray) -> np.ndarray:
        """(H, W, C) view of what :meth:`stack_index` read (C = 1 without a channel axis)."""
        kept = [a for a in range(self.ndim) if a not in self.fixed and a != self.axis]
        order = [kept.index(a) for a in self.spatial_axes]
        if self.channel_axis is None:
            return block.transpose(order)[..., None]
        return block.transpose([*order, kept.index(self.channel_axis)])

    # ------------------------------------------------------- label space
    def _label_axis(self, a: int) -> int:
        """Stack axis ``a`` in label space."""
        return a - (1 if self.channel_axis is not None and a > self.channel_axis else 0)

    @property
    def label_shape(self) -> tuple[int, ...]:
        """The stack's shape without the channel axis: a label image of the whole stack."""
        return tuple(s for a, s in enumerate(self.shape) if a != self.channel_axis)

    @property
    def label_ndim(self) -> int:
        return len(self.label_shape)

    @property
    def label_axis(self) -> int | None:
        """The propagation axis in label space (None for a single frame)."""
        return None if self.axis is None else self._label_axis(self.axis)

    @property
    def label_fixed(self) -> dict[int, int]:
        """The fixed planes in label space."""
        return {self._label_axis(a): i for a, i in self.fixed.items()}

    def index(self, frame: int) -> tuple:
        """The numpy index of ``frame``'s (H, W) plane in a label image of :attr:`label_shape`."""
        key: list = [slice(None)] * self.label_ndim
        for a, i in self.label_fixed.items():
            key[a] = i
        if self.label_axis is not None:
            key[self.label_axis] = int(frame)
        return tuple(key)

    def frame_of(self, coord: npt.ArrayLike) -> int | None:
        """The frame of a point given in label-space coordinates (e.g. a napari layer's data), or None
        when it lies in another plane or outside the stack."""
        c = np.asarray(coord, float)
        if any(round(float(c[a])) != i for a, i in self.label_fixed.items()):
            return None
        if self.axis is None:
            return 0
        frame = int(round(float(c[self.label_axis])))
        return frame if 0 <= frame < self.num_frames else None

    def rc(self, coords: npt.ArrayLike) -> np.ndarray:
        """(N, 2) (row, col) of (N, label_ndim) label-space coordinates."""
        c = np.asarray(coords, float).reshape(-1, self.label_ndim)
        return c[:, [self._label_axis(a) for a in self.spatial_axes]]

    def coords(self, frame: int, rc: npt.ArrayLike) -> np.ndarray:
        """(N, label_ndim) label-space coordinates of (row, col) positions ``rc`` on ``frame``."""
        rc = np.asarray(rc, float).reshape(-1, 2)
        out = np.zeros((len(rc), self.label_ndim))
        for a, i in self.label_fixed.items():
            out[:, a] = i
        if self.label_axis is not None:
            out[:, self.label_axis] = frame
        rows, cols = (self._label_axis(a) for a in self.spatial_axes)
        out[:, rows], out[:, cols] = rc[:, 0], rc[:, 1]
        return out

    def describe(self, names: Sequence[str] | None = None) -> str:
        """E.g. ``"along t (24 frames), z = 12"``; ``names`` label the stack's axes."""
        names = list(names) if names is not None else [f"axis {a}" for a in range(self.ndim)]
        if self.axis is None:
            return "single 2-D image"
        text = f"along {names[self.axis]} ({plural(self.num_frames, 'frame')})"
        held = ", ".join(f"{names[a]} = {i}" for a, i in sorted(self.fixed.items()))
        return f"{text}, {held}" if held else text

    def as_json(self) -> dict:
        """The geometry as plain JSON values (prompt files, stores)."""
        return {"shape": list(self.shape), "axis": self.axis, "channel_axis": self.channel_axis,
                "fixed": {str(a): i for a, i in sorted(self.fixed.items())}}
