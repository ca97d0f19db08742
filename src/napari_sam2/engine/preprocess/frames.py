"""Lazy access to the frames of a stack, and their conversion to model input.

A stack is any array-like with ``shape``, ``dtype`` and numpy-style slicing:
numpy, dask, zarr, h5py, a tifffile memory map. Frames are read one at a
time, only when the model needs them; nothing is converted up front.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from ...errors import ImageDataError
from ..coords.geometry import StackGeometry
from ..coords.region import check_roi
from ..coords.transforms import normalize
from .intensity import DEFAULT_PERCENTILES, IntensityWindow, apply_window, channels_to_rgb, compute_window

#: Frames sampled (evenly spaced) to compute a stack's intensity window.
WINDOW_SAMPLE_FRAMES = 16


class FrameSource:
    """The frames of ``stack`` as (H, W, C) arrays, where its :class:`~.geometry.StackGeometry` says.

    Args:
        stack: array-like, 2-D to 5-D (or a list of equally sized frames).
        axis, channel_axis, fixed: where the frames are, checked by
            :meth:`StackGeometry.resolve <napari_sam2.engine.coords.geometry.StackGeometry.resolve>`
            (e.g. ``fixed={1: 12}`` tracks along t in z-slice 12 of a (T, Z, Y, X) stack).
        contrast_limits: (low, high) intensity window for non-uint8 data;
            ``None`` computes robust percentiles once for the whole stack.
        geometry: an already resolved geometry instead of ``axis``, ``channel_axis``, ``fixed``.
        roi: (row0, col0, row1, col1): read only this region of every frame (rows row0 ... row1 - 1);
            :attr:`frame_hw` is then the region's size.
    """

    def __init__(
        self,
        stack: Any,
        axis: int = 0,
        channel_axis: int | None = None,
        fixed: Mapping[int, int] | None = None,
        contrast_limits: tuple[float, float] | None = None,
        percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
        *,
        geometry: StackGeometry | None = None,
        roi: tuple[int, int, int, int] | None = None,
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
        if np.dtype(stack.dtype).kind not in "uifb":
            raise ImageDataError(f"Unsupported pixel type {stack.dtype}; use integer, float or bool data.")
        if geometry is None:
            geometry = StackGeometry.resolve(shape, axis, channel_axis, fixed)
        elif tuple(geometry.shape) != shape:
            raise ImageDataError(f"The geometry is for a stack of shape {tuple(geometry.shape)}, but the stack "
                                 f"has shape {shape}.")
        self.geometry = geometry
        self.num_frames = geometry.num_frames
        self.roi = None if roi is None else check_roi(roi, geometry.frame_hw)
        self.frame_hw = geometry.frame_hw if self.roi is None else (self.roi[2] - self.roi[0],
                                                                     self.roi[3] - self.roi[1])
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
        key = list(self.geometry.stack_index(index))
        if self.roi is not None:  # read only the region (a lazy stack reads only its chunks)
            r0, c0, r1, c1 = self.roi
            rows, cols = self.geometry.spatial_axes
            key[rows], key[cols] = slice(r0, r1), slice(c0, c1)
        frame = self.geometry.to_frame_array(np.asarray(self.stack[tuple(key)]))
        if frame.dtype == bool:
            frame = frame.astype(np.uint8) * 255
        return frame

    @property
    def window(self) -> IntensityWindow:
        """The stack's intensity window, computed once from a few evenly spaced frames."""
        if self._window is None:
            channels = self.geometry.channels
            if self.dtype in (np.uint8, bool) or self._contrast_limits is not None:
                sample = np.zeros((1, 1, channels), np.uint8 if self.dtype == bool else self.dtype)
            else:
                picks = np.unique(np.linspace(0, self.num_frames - 1, min(WINDOW_SAMPLE_FRAMES, self.num_frames)))
                sample = np.stack([self.read(int(i)) for i in picks])
            self._window = compute_window(sample, self._contrast_limits, self._percentiles)
        return self._window

    def model_input(self, index: int, size: int, device: torch.device, dtype: torch.dtype,
                    crop: tuple[int, int, int, int] | None = None) -> torch.Tensor:
        """Frame ``index`` (or its part ``crop`` = (row0, col0, row1, col1) of :attr:`frame_hw`) as a
        normalised (1, 3, size, size) tensor.

        uint8 frames are resized exactly as Meta's video predictor resizes
        its frames (Pillow bicubic on 8-bit RGB); other data is windowed to
        float and resized with antialiased bicubic in float, never rounded to
        8 bits.
        """
        frame = self.read(index)
        if crop is not None:
            frame = frame[crop[0]:crop[2], crop[1]:crop[3]]
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
