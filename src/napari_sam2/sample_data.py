"""Synthetic sample data, generated in code (no download).

Both stacks are 16-bit with a camera-like offset and noise, so they exercise
the intensity conversion the way real microscopy data does.
"""

from __future__ import annotations

import numpy as np


def _blob(shape: tuple[int, int], center: tuple[float, float], radii: tuple[float, float],
          angle: float = 0.0) -> np.ndarray:
    """A soft-edged ellipse in [0, 1], (rows, cols)."""
    rr, cc = np.mgrid[: shape[0], : shape[1]].astype(np.float32)
    dr, dc = rr - center[0], cc - center[1]
    ca, sa = np.cos(angle), np.sin(angle)
    u, v = (dr * ca + dc * sa) / radii[0], (-dr * sa + dc * ca) / radii[1]
    return np.clip(1.5 - 1.5 * np.sqrt(u**2 + v**2), 0.0, 1.0) ** 0.7


def _camera(clean: np.ndarray, rng: np.random.Generator, peak: float = 3000.0) -> np.ndarray:
    """Scale to a 12-bit-like range on a 100-count offset, add shot + read noise -> uint16."""
    signal = 100.0 + peak * clean
    noisy = rng.poisson(signal).astype(np.float32) + rng.normal(0, 5, clean.shape)
    return np.clip(noisy, 0, 65535).astype(np.uint16)


def make_timelapse(n_frames: int = 24, size: int = 192, seed: int = 0) -> np.ndarray:
    """(T, Y, X) uint16: cells that drift, one that divides, one that leaves the field."""
    rng = np.random.default_rng(seed)
    frames = np.zeros((n_frames, size, size), np.float32)
    for t in range(n_frames):
        f = t / max(n_frames - 1, 1)
        # a drifting, slowly turning cell
        frames[t] += _blob((size, size), (50 + 40 * f, 50 + 30 * f), (18, 12), angle=1.5 * f)
        # a cell that divides half-way through
        if f < 0.5:
            frames[t] += _blob((size, size), (130, 70), (14 + 10 * f, 14))
        else:
            split = 22 * (f - 0.5) * 2
            frames[t] += _blob((size, size), (130 - 6 - split, 70), (11, 13))
            frames[t] += _blob((size, size), (130 + 6 + split, 70), (11, 13))
        # a cell that leaves through the right edge
        frames[t] += 0.8 * _blob((size, size), (90, 130 + 90 * f), (15, 15))
    return _camera(np.clip(frames, 0, 1), rng)


def make_zstack(n_slices: int = 32, size: int = 160, seed: int = 1) -> np.ndarray:
    """(Z, Y, X) uint16: three ellipsoids of different sizes cut by the slices."""
    rng = np.random.default_rng(seed)
    spheres = [((14, 50, 55), (9, 30, 22)), ((18, 110, 100), (11, 20, 26)), ((10, 60, 120), (6, 14, 14))]
    vol = np.zeros((n_slices, size, size), np.float32)
    for z in range(n_slices):
        for (cz, cy, cx), (az, ay, ax) in spheres:
            k = 1 - ((z - cz) / az) ** 2
            if k > 0:
                s = np.sqrt(k)
                vol[z] += _blob((size, size), (cy, cx), (ay * s + 1, ax * s + 1))
    return _camera(np.clip(vol, 0, 1), rng, peak=2500.0)


def timelapse() -> list[tuple[np.ndarray, dict, str]]:
    """napari sample-data command: the synthetic time-lapse."""
    data = make_timelapse()
    return [(data, {"name": "cells (2D+t)", "axis_labels": ("t", "y", "x"), "contrast_limits": (0, 3500)}, "image")]


def zstack() -> list[tuple[np.ndarray, dict, str]]:
    """napari sample-data command: the synthetic z-stack."""
    data = make_zstack()
    return [(data, {"name": "blobs (3D)", "axis_labels": ("z", "y", "x"), "contrast_limits": (0, 3000)}, "image")]
