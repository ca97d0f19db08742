"""Turning microscopy pixel data into the RGB input SAM 2 was trained on.

One rule, used for single images and for whole stacks:

* **uint8** data is divided by 255 — exactly what Meta's predictors do with
  8-bit RGB, so 8-bit results match the reference.
* **Any other dtype** (uint16, int, float, bool) is windowed per channel
  between a low and a high value and clipped to [0, 1]. By default the window
  is the 1st and 99.8th percentile of the data (robust to hot pixels, and
  unlike scaling by the dtype's full range it does not turn 12-bit camera data
  almost black). Pass ``contrast_limits`` — e.g. a napari layer's — to use
  exactly what you see on screen. For a stack the window is computed once for
  the whole stack from a sample of frames, so brightness does not flicker.
* **Channels** (a trailing axis of 1–4): 1 channel is repeated to gray RGB;
  2 channels become red and green (blue stays 0); 3 are RGB; of 4 the first
  three are used (RGBA: alpha dropped).

No data is quantised to 8 bits on the way: windowed values stay float32.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import ImageDataError

DEFAULT_PERCENTILES = (1.0, 99.8)


@dataclass(frozen=True)
class IntensityWindow:
    """Per-channel (low, high) window; ``None`` bounds mean uint8 /255 scaling."""

    low: tuple[float, ...] | None
    high: tuple[float, ...] | None

    @property
    def is_uint8(self) -> bool:
        return self.low is None


def split_channels(frame: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, C<=4) -> (H, W, C) view; raises for other shapes."""
    if frame.ndim == 2:
        return frame[..., None]
    if frame.ndim == 3 and 1 <= frame.shape[-1] <= 4:
        return frame
    if frame.ndim == 3 and frame.shape[0] <= 4 < min(frame.shape[1:]):
        raise ImageDataError(
            f"The image has shape {frame.shape}: that looks like channels first (C, rows, cols). Pass "
            f"(rows, cols) for gray{' (image[0])' if frame.shape[0] == 1 else ''} or move the channels to the "
            f"end (numpy.moveaxis(image, 0, -1))."
        )
    raise ImageDataError(
        f"An image must be (rows, cols) gray or (rows, cols, channels) with 1-4 channels; got shape "
        f"{frame.shape}. For a stack, open it with open_stack(...) and choose the frame axis; move a "
        f"channel axis to the end (numpy.moveaxis)."
    )


def compute_window(
    sample: np.ndarray,
    contrast_limits: tuple[float, float] | None = None,
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
) -> IntensityWindow:
    """The window for data like ``sample`` ((..., H, W, C) channels last).

    uint8 data without ``contrast_limits`` gets the exact /255 rule.
    """
    if sample.dtype == np.uint8 and contrast_limits is None:
        return IntensityWindow(None, None)
    channels = sample.shape[-1]
    if contrast_limits is not None:
        lo, hi = (float(v) for v in contrast_limits)
        if not (np.isfinite(lo) and np.isfinite(hi)) or hi <= lo:
            raise ImageDataError(f"contrast_limits must be two finite numbers, low < high; got {contrast_limits}.")
        return IntensityWindow((lo,) * channels, (hi,) * channels)
    flat = sample.reshape(-1, channels).astype(np.float32, copy=False)
    finite = np.isfinite(flat)
    if finite.all():
        lo, hi = np.percentile(flat, percentiles, axis=0)
    else:  # NaN/inf pixels do not set the window; the frames holding them are refused on their own
        if not finite.any(axis=0).all():
            raise ImageDataError("The image data has no finite pixels (all NaN or infinite). Replace them "
                                 "(e.g. numpy.nan_to_num) before segmenting.")
        lo, hi = np.nanpercentile(np.where(finite, flat, np.nan), percentiles, axis=0)
    hi = np.where(hi > lo, hi, lo + 1.0)  # flat channel: avoid dividing by zero
    return IntensityWindow(tuple(map(float, lo)), tuple(map(float, hi)))


def apply_window(frame: np.ndarray, window: IntensityWindow) -> np.ndarray:
    """(H, W, C) data -> (H, W, 3) float32 RGB in [0, 1] (see module doc)."""
    if window.is_uint8:
        if frame.dtype != np.uint8:
            raise ImageDataError(f"Expected uint8 data for this stack, got {frame.dtype}.")
        rgb = frame.astype(np.float32) / 255.0
    else:
        data = frame.astype(np.float32, copy=False)
        if not np.isfinite(data).all():
            raise ImageDataError("The image contains NaN or infinite pixels. Replace them (e.g. "
                                 "numpy.nan_to_num) before segmenting.")
        lo = np.asarray(window.low, np.float32)
        hi = np.asarray(window.high, np.float32)
        rgb = np.clip((data - lo) / (hi - lo), 0.0, 1.0)
    return channels_to_rgb(rgb)


def channels_to_rgb(arr: np.ndarray) -> np.ndarray:
    """(H, W, C) with C = 1-4 -> (H, W, 3) of the same dtype (see module doc)."""
    c = arr.shape[-1]
    if c == 1:
        return np.repeat(arr, 3, axis=-1)
    if c == 2:
        return np.concatenate([arr, np.zeros_like(arr[..., :1])], axis=-1)
    return np.ascontiguousarray(arr[..., :3])


def to_rgb01(
    image: np.ndarray, contrast_limits: tuple[float, float] | None = None
) -> np.ndarray:
    """Convert one image, (H, W) or (H, W, C), with its own window -> (H, W, 3) float32."""
    arr = split_channels(np.asarray(image))
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ImageDataError(f"The image is empty (shape {image.shape}).")
    return apply_window(arr, compute_window(arr, contrast_limits))
