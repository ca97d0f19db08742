"""The label image of a stack, written frame by frame: in RAM when small, zarr on disk when large.

One class for every place that holds labels: ``TrackingSession.labels()``,
the napari widget's Labels layer and the file writers. Below
:data:`LABELS_IN_MEMORY_BYTES` the image is a numpy array; above it, a zarr
array chunked by frame plane in a folder (a temporary one unless ``path``
is given). Frames never written take no memory and no disk (they read as 0),
and a frame written is compressed on disk at once, so resident memory stays
bounded for any stack size.
"""

from __future__ import annotations

import itertools
import tempfile
import weakref
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ...errors import LabelDtypeError
from ..coords.geometry import StackGeometry
from ..io.atomic import remove
from .zarr_format import ZARR_V2

#: Label images larger than this live in a zarr array on disk instead of in RAM.
LABELS_IN_MEMORY_BYTES = 256 * 2**20
#: The dtypes a label image grows through as object ids grow.
LABEL_DTYPES = (np.dtype(np.uint16), np.dtype(np.uint32))


def label_dtype_for(max_id: int) -> np.dtype:
    """uint16, or uint32 for ids above 65535."""
    for dtype in LABEL_DTYPES:
        if max_id <= np.iinfo(dtype).max:
            return dtype
    raise LabelDtypeError(f"object id {max_id} is too large for a label image; use ids up to "
                          f"{np.iinfo(LABEL_DTYPES[-1]).max}.")


class LabelOutput:
    """A label image of a stack, written one frame plane at a time.

    Args:
        geometry: the stack's geometry.
        dtype: an unsigned integer dtype (uint16 holds ids up to 65535).
        full_stack: True: the image has the stack's :attr:`~StackGeometry.label_shape` (every axis
            but the channel axis, as napari's Labels layer over the image); False: (T, H, W), one
            plane per frame of the geometry.
        ram_bytes: the largest image kept in RAM (default :data:`LABELS_IN_MEMORY_BYTES`).
        path: where the zarr array goes when it is on disk (default: a temporary folder removed
            with this object).
    """

    def __init__(self, geometry: StackGeometry, dtype: npt.DTypeLike = np.uint16, *, full_stack: bool = False,
                 ram_bytes: int | None = None, path: str | Path | None = None) -> None:
        self.geometry = geometry
        self.full_stack = full_stack
        self.dtype = np.dtype(dtype)
        if self.dtype.kind != "u":
            raise LabelDtypeError(f"A label image needs an unsigned integer dtype; got {self.dtype}.")
        self.shape = geometry.label_shape if full_stack else (geometry.num_frames, *geometry.frame_hw)
        nbytes = int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize
        budget = LABELS_IN_MEMORY_BYTES if ram_bytes is None else ram_bytes
        self.on_disk = path is not None or nbytes > budget
        self.path: Path | None = None
        if self.on_disk:
            self.array = self._create_zarr(path)
        else:
            self.array = np.zeros(self.shape, self.dtype)  # calloc: untouched frames take no RAM

    def _create_zarr(self, path: str | Path | None) -> Any:
        import zarr

        folder = None
        if path is None:
            folder = tempfile.mkdtemp(prefix="napari-sam2-labels-")
            path = Path(folder) / "labels.zarr"
        self.path = Path(path)
        rows, cols = self._spatial()
        chunks = tuple(min(n, 2048) if a in (rows, cols) else 1 for a, n in enumerate(self.shape))
        array = zarr.open_array(str(self.path), mode="w", shape=self.shape, chunks=chunks, dtype=self.dtype,
                                fill_value=0, **ZARR_V2)
        if folder is not None:  # the temporary folder lives as long as the array (which callers keep)
            weakref.finalize(array, remove, Path(folder))
        return array

    def _spatial(self) -> tuple[int, int]:
        """The (row, col) axes of :attr:`array`."""
        if not self.full_stack:
            return len(self.shape) - 2, len(self.shape) - 1
        key = self.geometry.index(0)
        free = [a for a, k in enumerate(key) if isinstance(k, slice) and a != self.geometry.label_axis]
        return free[0], free[1]

    def planes(self) -> Iterator[tuple[int | slice, ...]]:
        """Every (H, W) plane index of :attr:`array` (all frames, and with ``full_stack`` every other plane)."""
        rows, cols = self._spatial()
        loops: list[Iterable[int | slice]] = [range(n) if a not in (rows, cols) else [slice(None)]
                                              for a, n in enumerate(self.shape)]
        return itertools.product(*loops)

    @property
    def num_frames(self) -> int:
        return self.geometry.num_frames

    def index(self, frame: int) -> tuple:
        """The numpy index of ``frame``'s (H, W) plane in :attr:`array`."""
        return self.geometry.index(frame) if self.full_stack else (int(frame),)

    def write(self, frame: int, plane: np.ndarray) -> None:
        """Store ``frame``'s (H, W) labels. Raises if an id does not fit :attr:`dtype` (see :meth:`grown`)."""
        plane = np.asarray(plane)
        if plane.shape != self.geometry.frame_hw:
            raise ValueError(f"frame {frame} labels have shape {plane.shape}; expected {self.geometry.frame_hw}.")
        if plane.size and plane.dtype != self.dtype and int(plane.max()) > np.iinfo(self.dtype).max:
            raise LabelDtypeError(f"label {int(plane.max())} does not fit a {self.dtype} label image; use grown().")
        self.array[self.index(frame)] = plane.astype(self.dtype, copy=False)

    def read(self, frame: int) -> np.ndarray:
        """``frame``'s (H, W) labels."""
        return np.asarray(self.array[self.index(frame)])

    def grown(self, dtype: npt.DTypeLike) -> LabelOutput:
        """This image in a wider ``dtype`` (a new output; every plane copied). ``self`` if wide enough."""
        dtype = np.dtype(dtype)
        if dtype.itemsize <= self.dtype.itemsize:
            return self
        out = LabelOutput(self.geometry, dtype, full_stack=self.full_stack,
                          ram_bytes=-1 if self.on_disk else None)
        for key in self.planes():
            plane = np.asarray(self.array[key])
            if plane.any():
                out.array[key] = plane.astype(dtype)
        return out
