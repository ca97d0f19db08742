"""Lazy access to the frames of a stack, and their conversion to model input.

A stack is any array-like with ``shape``, ``dtype`` and numpy-style slicing:
numpy, dask, zarr, h5py, a tifffile memory map. Frames are read one at a
time, only when the model needs them; nothing is converted up front.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch.nn import functional as F

from ..errors import ImageDataError
from .intensity import DEFAULT_PERCENTILES, IntensityWindow, apply_window, channels_to_rgb, compute_window
from .transforms import normalize

#: Frames sampled (evenly spaced) to compute a stack's intensity window.
WINDOW_SAMPLE_FRAMES = 16


def _resolve_axis(ax: int, ndim: int, what: str) -> int:
    if not -ndim <= ax < ndim:
        raise ImageDataError(f"{what} {ax} does not exist in a {ndim}-D stack.")
    return ax % ndim


class FrameSource:
    """The frames of ``stack`` along ``axis``, as (H, W, C) numpy arrays.

    Args:
        stack: array-like, 2-D to 5-D.
        axis: the axis to propagate along (t or z).
        channel_axis: axis holding 1-4 channels, if any. ``None`` treats a
            trailing axis of length <= 4 of a 4-D array (e.g. (T, H, W, 3))
            as channels.
        fixed: ``{axis: index}`` for every extra axis to hold still, e.g.
            ``{1: 12}`` to track along t in z-slice 12 of a (T, Z, Y, X) stack.
        contrast_limits: (low, high) intensity window for non-uint8 data;
            ``None`` computes robust percentiles once for the whole stack.
    """

    def __init__(
        self,
        stack,
        axis: int = 0,
        channel_axis: int | None = None,
        fixed: Mapping[int, int] | None = None,
        contrast_limits: tuple[float, float] | None = None,
        percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
    ) -> None:
        if isinstance(stack, (list, tuple)):
            shapes = [np.shape(f) for f in stack]
            odd = next((i for i, s in enumerate(shapes) if s != shapes[0]), None)
            if odd is not None:
                raise ImageDataError(f"The frames have different sizes: frame {odd} is {shapes[odd]}, frame 0 is "
                                     f"{shapes[0]}. Crop or pad them to one size first.")
            stack = np.stack(stack) if stack else np.zeros((0, 0, 0), np.uint8)
        elif not hasattr(stack, "shape") or not hasattr(stack, "dtype"):
            stack = np.asarray(stack)
        self.stack = stack
        shape = tuple(int(s) for s in stack.shape)
        ndim = len(shape)
        if ndim < 2:
            raise ImageDataError(f"A stack needs at least 2 dimensions (rows, cols); got shape {shape}.")
        if np.dtype(stack.dtype).kind not in "uifb":
            raise ImageDataError(f"Unsupported pixel type {stack.dtype}; use integer, float or bool data.")
        fixed = {_resolve_axis(a, ndim, "fixed axis"): int(i) for a, i in (fixed or {}).items()}
        for a, i in fixed.items():
            if not 0 <= i < shape[a]:
                raise ImageDataError(f"fixed index {i} is outside axis {a} of length {shape[a]}.")
        if channel_axis is None and ndim - len(fixed) == 4 and shape[-1] <= 4 and ndim - 1 not in fixed:
            channel_axis = ndim - 1
        ch = None if channel_axis is None else _resolve_axis(channel_axis, ndim, "channel_axis")
        if ch is not None and not 1 <= shape[ch] <= 4:
            raise ImageDataError(f"channel_axis {channel_axis} has {shape[ch]} entries; 1-4 channels are supported.")
        free = [a for a in range(ndim) if a not in fixed and a != ch]
        if ndim == 2 or (len(free) == 2 and ch is not None and ndim == 3):
            self.axis = None  # a single image
        else:
            self.axis = _resolve_axis(axis, ndim, "axis")
            if self.axis in fixed or self.axis == ch:
                raise ImageDataError(f"axis {axis} is also given as fixed or channel axis.")
            if len(free) != 3:
                raise ImageDataError(
                    f"A {ndim}-D stack of shape {shape} has {len(free)} free axes; after the frame axis only "
                    f"(rows, cols) may remain. Fix the extra axes, e.g. open_stack(data, axis=0, "
                    f"fixed={{1: 0}}) to track along axis 0 in plane 0 of axis 1, and name a channel "
                    f"axis with channel_axis=..."
                )
        spatial = [a for a in free if a != self.axis]
        self.spatial_axes = tuple(spatial)
        self.channel_axis = ch
        self.fixed = fixed
        self.frame_hw = (shape[spatial[0]], shape[spatial[1]])
        self.num_frames = 1 if self.axis is None else shape[self.axis]
        if self.num_frames == 0 or 0 in self.frame_hw:
            raise ImageDataError(f"The stack is empty (shape {shape}); it needs at least one frame of 1 x 1 pixels.")
        self.dtype = np.dtype(stack.dtype)
        self._contrast_limits = contrast_limits
        self._percentiles = percentiles
        self._window: IntensityWindow | None = None

    def __len__(self) -> int:
        return self.num_frames

    def read(self, index: int) -> np.ndarray:
        """Frame ``index`` as an (H, W, C) numpy array (C = 1 without a channel axis)."""
        if not 0 <= index < self.num_frames:
            raise IndexError(f"frame {index} is outside the stack (0 ... {self.num_frames - 1}).")
        key: list = [slice(None)] * len(self.stack.shape)
        for a, i in self.fixed.items():
            key[a] = i
        if self.axis is not None:
            key[self.axis] = index
        frame = np.asarray(self.stack[tuple(key)])
        kept = [a for a in range(len(self.stack.shape)) if not isinstance(key[a], int)]
        order = [kept.index(a) for a in self.spatial_axes]
        if self.channel_axis is not None:
            order.append(kept.index(self.channel_axis))
            frame = frame.transpose(order)
        else:
            frame = frame.transpose(order)[..., None]
        if frame.dtype == bool:
            frame = frame.astype(np.uint8) * 255
        return frame

    @property
    def window(self) -> IntensityWindow:
        """The stack's intensity window, computed once from a few evenly spaced frames."""
        if self._window is None:
            channels = 1 if self.channel_axis is None else int(self.stack.shape[self.channel_axis])
            if self.dtype in (np.uint8, bool) or self._contrast_limits is not None:
                sample = np.zeros((1, 1, channels), np.uint8 if self.dtype == bool else self.dtype)
            else:
                picks = np.unique(np.linspace(0, self.num_frames - 1, min(WINDOW_SAMPLE_FRAMES, self.num_frames)))
                sample = np.stack([self.read(int(i)) for i in picks])
            self._window = compute_window(sample, self._contrast_limits, self._percentiles)
        return self._window

    def model_input(self, index: int, size: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """Frame ``index`` as a normalised (1, 3, size, size) tensor.

        uint8 frames are resized exactly as Meta's video predictor resizes
        its frames (Pillow bicubic on 8-bit RGB); other data is windowed to
        float and resized with antialiased bicubic in float, never rounded to
        8 bits.
        """
        frame = self.read(index)
        if not np.issubdtype(frame.dtype, np.integer) and not np.isfinite(frame).all():
            raise ImageDataError(f"Frame {index} contains NaN or infinite pixels; replace them (numpy.nan_to_num).")
        win = self.window
        if win.is_uint8 and frame.dtype == np.uint8:
            from PIL import Image

            rgb8 = channels_to_rgb(frame)
            resized = np.asarray(Image.fromarray(rgb8, "RGB").resize((size, size), Image.Resampling.BICUBIC))
            x = torch.from_numpy(resized.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
        else:
            rgb = torch.from_numpy(apply_window(frame, win)).permute(2, 0, 1)[None]
            x = F.interpolate(rgb, size=(size, size), mode="bicubic", align_corners=False, antialias=True)
            x = x.clamp(0.0, 1.0)
        return normalize(x.to(device), dtype)
