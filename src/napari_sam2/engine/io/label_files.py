"""Write a label image to OME-TIFF, TIFF, OME-Zarr, zarr or ``.npy`` -- one plane at a time, atomically.

:func:`write_labels` never holds more than one (Y, X) plane of the labels in memory, writes into a hidden
temporary file or folder next to the output (``.<stem>.partial-<random><ext>``) and renames it to the output
name only once everything is written: an interrupted or failed run leaves no file that looks complete, and an
existing output is replaced only at that last step.

Formats (chosen by the output's extension, see :func:`label_format`):

- ``.ome.tif`` / ``.ome.tiff``: OME-TIFF, zlib-compressed, one page per (Y, X) plane, OME-XML with the axes
  (any order of T, Z, C before Y, X) and ``name`` as the image name; BigTIFF above 2 GiB of pixels.
- ``.tif`` / ``.tiff``: zlib-compressed TIFF, one page per plane. An ImageJ hyperstack when ImageJ can hold it
  (uint8 or uint16, axes in ImageJ's T, Z, C order, under 2 GiB), otherwise a tifffile "shaped" TIFF whose
  description records shape and axes (BigTIFF above 2 GiB).
- ``.ome.zarr``: an OME-NGFF v0.4 label image, zarr format 2: a group with ``multiscales`` (one level, ``"0"``,
  scale 1, axes ``t``/``c``/``z``/``y``/``x`` typed time/channel/space) and ``image-label``
  (``{"version": "0.4"}``, no ``source``: the labels stand alone) metadata. ``ome-zarr``'s reader, and so
  napari-ome-zarr, opens it as a labels layer. Leading axes are stored in NGFF order (T, C, Z).
- ``.zarr``: a plain zarr (format 2) array; the axes are stored as lower-case ``_ARRAY_DIMENSIONS`` (the
  xarray convention), which :func:`napari_sam2.engine.io.stack_files.read_stack` reads back.
- ``.npy``: a NumPy array file (memory-mapped while it is written); the axes are not stored.

Zarr outputs are chunked one plane per chunk, (1, ..., 1, min(Y, 1024), min(X, 1024)); zarr's default
compressor is used. TIFF formats cannot hold 64-bit integers: int64/uint64 labels are written as uint32 (each
plane is checked to fit) and bool labels as uint8. Other integer dtypes are written as they are.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
import zarr

from ...errors import LabelFormatError, OutputError
from ..storage.zarr_format import ZARR_V2
from .atomic import Counter, Progress, require_parent, staged

#: Output extensions :func:`write_labels` understands (matched case-insensitively, longest match wins).
LABEL_FORMATS = (".ome.tif", ".ome.tiff", ".ome.zarr", ".zarr", ".tif", ".tiff", ".npy")

#: Axis letters a label image may have; the last two must be ``"YX"``.
AXIS_LETTERS = "TCZYX"

_NGFF_ORDER = "TCZYX"  # OME-NGFF v0.4: time, channel, then space
_IMAGEJ_ORDER = "TZCYX"  # ImageJ hyperstacks
_NGFF_TYPES = {"T": "time", "C": "channel", "Z": "space", "Y": "space", "X": "space"}
_ZARR_MAX_CHUNK = 1024  # chunk edge (pixels) along Y and X
_BIGTIFF_BYTES = 2**31  # classic TIFF ends at 4 GiB; leave room for strip offsets and metadata
_IMAGEJ_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16))



def label_format(path: str | os.PathLike) -> str:
    """The extension of ``path`` from :data:`LABEL_FORMATS` (lower case, longest match), else OutputError."""
    name = Path(path).name.lower()
    matches = [suffix for suffix in LABEL_FORMATS if name.endswith(suffix)]
    if not matches:
        raise OutputError(
            f"Cannot tell the label file format of {Path(path).name!r}; end the output name with one of "
            f"{', '.join(LABEL_FORMATS)}."
        )
    return max(matches, key=len)


def write_labels(
    path: str | os.PathLike,
    labels: Any,
    axes: str = "TYX",
    overwrite: bool = False,
    progress: Progress | None = None,
    name: str = "labels",
) -> Path:
    """Write ``labels`` to ``path`` in the format its extension names, one (Y, X) plane at a time.

    Args:
        path: output file (``.ome.tif``, ``.ome.tiff``, ``.tif``, ``.tiff``, ``.npy``) or folder (``.ome.zarr``,
            ``.zarr``); its parent folder must exist.
        labels: array-like with ``.shape``, ``.dtype`` (integer or bool) and numpy indexing by a tuple of ints
            (numpy array or memmap, zarr or dask array), shape e.g. (T, Y, X); it is never loaded whole, so it
            may be larger than memory.
        axes: one letter per axis of ``labels`` from ``T``, ``C``, ``Z``, ``Y``, ``X`` (any case), each at most
            once, ending in ``"YX"``: ``"TYX"``, ``"ZYX"``, ``"TZYX"``, ``"YX"``, ...
        overwrite: replace an existing ``path`` (only once the new output is complete); otherwise an existing
            ``path`` raises OutputError before anything is written.
        progress: called as ``progress(done, total)`` after each plane is written; ``total`` is the number of
            (Y, X) planes (1 for 2-D labels).
        name: image name stored in OME-TIFF and OME-Zarr metadata.

    Returns:
        ``path`` as a Path. OME-Zarr and ImageJ TIFF store the leading axes in their fixed order (T, C, Z and
        T, Z, C); planes are never transposed.

    Raises:
        OutputError: unknown extension, missing parent folder, or ``path`` exists and ``overwrite`` is False.
        LabelFormatError (a ValueError): ``axes`` does not fit ``labels``, the dtype is not integer/bool, or a
            64-bit label does not fit the uint32 of a TIFF. WriteError (an OSError): writing failed. Any error
            while writing removes the temporary output and is re-raised.
    """
    path = Path(path)
    fmt = label_format(path)
    axes = check_axes(axes, labels.shape)
    dtype = np.dtype(labels.dtype)
    if dtype.kind not in "biu":
        raise LabelFormatError(f"Labels must have an integer or bool dtype, not {dtype}; convert them, e.g. to uint32.")
    _check_target(path, overwrite)
    with staged(path, fmt) as tmp:
        _WRITERS[fmt](tmp, labels, axes, Counter(progress, _plane_count(labels.shape)), name)
        _refuse_existing(path, overwrite)  # appeared while we were writing
    return path


def check_axes(axes: str, shape: tuple[int, ...]) -> str:
    """``axes`` upper-cased if it names every axis of ``shape`` (see :func:`write_labels`), else LabelFormatError."""
    upper = str(axes).upper()
    if len(upper) != len(shape):
        raise LabelFormatError(
            f"axes {axes!r} names {len(upper)} axes but the labels have {len(shape)} (shape {tuple(shape)}); "
            "give one letter per axis, e.g. 'TYX' for a (time, y, x) stack."
        )
    if set(upper) - set(AXIS_LETTERS) or len(set(upper)) != len(upper) or not upper.endswith("YX"):
        raise LabelFormatError(
            f"axes {axes!r} must use each of the letters {', '.join(AXIS_LETTERS)} at most once and end with "
            "'YX', e.g. 'TYX', 'ZYX' or 'TZYX'."
        )
    return upper


# --- paths ----------------------------------------------------------------------------------------------


def _check_target(path: Path, overwrite: bool) -> None:
    """Refuse a path whose folder is missing, or that exists when it may not be replaced."""
    require_parent(path, "path")
    _refuse_existing(path, overwrite)


def _refuse_existing(path: Path, overwrite: bool) -> None:
    """OutputError if ``path`` exists (file or folder, even empty) and ``overwrite`` is False; checked before
    writing and again at the end of the staged write."""
    if not overwrite and os.path.lexists(path):
        raise OutputError(f"{path} exists; pass overwrite=True (--overwrite) to replace it.")


# --- planes ---------------------------------------------------------------------------------------------


def _plane_count(shape: tuple[int, ...]) -> int:
    """Number of (Y, X) planes in an array of ``shape`` (..., Y, X)."""
    return int(np.prod(shape[:-2], dtype=np.int64))


def _reorder(axes: str, order: str) -> str:
    """``axes`` with its leading (non-YX) letters sorted into ``order``: ``_reorder("ZTYX", "TCZYX") == "TZYX"``."""
    return "".join(sorted(axes[:-2], key=order.index)) + "YX"


def _out_shape(shape: tuple[int, ...], axes: str, out_axes: str) -> tuple[int, ...]:
    """``shape`` (in ``axes`` order) rearranged into ``out_axes`` order."""
    sizes = dict(zip(axes, shape))
    return tuple(int(sizes[a]) for a in out_axes)


def _planes(labels: Any, axes: str, out_axes: str, dtype: np.dtype) -> Iterator[tuple[tuple[int, ...], np.ndarray]]:
    """Yield ``(index, plane)`` for every (Y, X) plane in C order of ``out_axes``.

    ``index`` is the plane's leading index in the output; ``plane`` is read from ``labels`` (axes ``axes``) as
    a C-contiguous (Y, X) array of ``dtype`` (checked to fit when narrowing).
    """
    out_shape = _out_shape(labels.shape, axes, out_axes)
    plane_shape = out_shape[-2:]
    for out_index in np.ndindex(*out_shape[:-2]):
        where = dict(zip(out_axes, out_index))
        source = tuple(where[a] for a in axes[:-2])
        plane = np.asarray(labels[source] if source else labels[...])
        if plane.shape != plane_shape:
            raise ValueError(f"Plane {source} of the labels has shape {plane.shape}, expected {plane_shape}.")
        yield out_index, _cast(plane, dtype, source)


def _cast(plane: np.ndarray, dtype: np.dtype, where: tuple[int, ...]) -> np.ndarray:
    """``plane`` as C-contiguous ``dtype``; LabelFormatError if a value does not fit a narrower integer dtype."""
    if plane.dtype != dtype and plane.dtype.kind in "iu" and plane.size:
        info = np.iinfo(dtype)
        low, high = int(plane.min()), int(plane.max())
        if low < info.min or high > info.max:
            raise LabelFormatError(
                f"Plane {where} holds labels {low}..{high}, outside the {dtype} range of this format "
                f"({info.min}..{info.max}); write .ome.zarr, .zarr or .npy instead."
            )
    return np.ascontiguousarray(plane, dtype=dtype)


def _tiff_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype a TIFF stores: 64-bit integers -> uint32, bool -> uint8, others unchanged."""
    if dtype.kind == "b":
        return np.dtype(np.uint8)
    if dtype.kind in "iu" and dtype.itemsize == 8:
        return np.dtype(np.uint32)
    return dtype


def _chunks(shape: tuple[int, ...]) -> tuple[int, ...]:
    """One chunk per plane: (1, ..., 1, Y, X), with Y and X capped at 1024."""
    return (1,) * (len(shape) - 2) + tuple(max(1, min(int(n), _ZARR_MAX_CHUNK)) for n in shape[-2:])


# --- writers: (tmp, labels, axes, counter, name) -> None -------------------------------------------------


def _write_npy(tmp: Path, labels: Any, axes: str, counter: Counter, name: str) -> None:
    """A ``.npy`` file of ``labels``' shape and dtype, filled through a memory map."""
    dtype = np.dtype(labels.dtype)
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=tuple(int(n) for n in labels.shape))
    try:
        for index, plane in _planes(labels, axes, axes, dtype):
            out[index] = plane
            counter.advance()
        out.flush()
    finally:
        del out  # close the map before the file is renamed


def _write_zarr(tmp: Path, labels: Any, axes: str, counter: Counter, name: str) -> None:
    """A plain zarr (format 2) array in ``axes`` order with ``_ARRAY_DIMENSIONS`` = lower-case axes."""
    dtype = np.dtype(labels.dtype)
    shape = tuple(int(n) for n in labels.shape)
    array = zarr.create(shape=shape, chunks=_chunks(shape), dtype=dtype, fill_value=0, store=str(tmp), **ZARR_V2)
    array.attrs["_ARRAY_DIMENSIONS"] = list(axes.lower())
    _fill_zarr(array, _planes(labels, axes, axes, dtype), counter)


def _write_ome_zarr(tmp: Path, labels: Any, axes: str, counter: Counter, name: str) -> None:
    """An OME-NGFF v0.4 image-label group (zarr format 2) with one resolution level ``"0"``."""
    dtype = np.dtype(labels.dtype)
    out_axes = _reorder(axes, _NGFF_ORDER)
    shape = _out_shape(labels.shape, axes, out_axes)
    group = zarr.open_group(str(tmp), mode="w", **ZARR_V2)
    group.attrs.update(_ngff_attrs(out_axes, name))
    array = zarr.create(
        shape=shape,
        chunks=_chunks(shape),
        dtype=dtype,
        fill_value=0,
        store=str(tmp),
        path="0",
        dimension_separator="/",  # NGFF v0.4 wants nested chunk keys
        **ZARR_V2,
    )
    _fill_zarr(array, _planes(labels, axes, out_axes, dtype), counter)


def _ngff_attrs(axes: str, name: str) -> dict:
    """Group attributes of an OME-NGFF v0.4 single-level label image with axes ``axes`` (e.g. "TZYX")."""
    multiscale = {
        "version": "0.4",
        "name": name,
        "axes": [{"name": a.lower(), "type": _NGFF_TYPES[a]} for a in axes],
        "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0] * len(axes)}]}],
    }
    return {"multiscales": [multiscale], "image-label": {"version": "0.4"}}


def _fill_zarr(array: Any, planes: Iterator[tuple[tuple[int, ...], np.ndarray]], counter: Counter) -> None:
    """Write each plane into its chunk row of ``array``."""
    for index, plane in planes:
        array[index] = plane
        counter.advance()


def _write_ome_tiff(tmp: Path, labels: Any, axes: str, counter: Counter, name: str) -> None:
    """OME-TIFF, axes as given (OME allows any T/Z/C order)."""
    _write_tiff_pages(tmp, labels, axes, counter, {"axes": axes, "Name": name}, ome=True, imagej=False)


def _write_plain_tiff(tmp: Path, labels: Any, axes: str, counter: Counter, name: str) -> None:
    """ImageJ hyperstack when the dtype, axis order and size allow it, else a tifffile shaped TIFF."""
    dtype = _tiff_dtype(np.dtype(labels.dtype))
    nbytes = _plane_count(labels.shape) * int(np.prod(labels.shape[-2:], dtype=np.int64)) * dtype.itemsize
    imagej = dtype in _IMAGEJ_DTYPES and axes == _reorder(axes, _IMAGEJ_ORDER) and nbytes <= _BIGTIFF_BYTES
    _write_tiff_pages(tmp, labels, axes, counter, {"axes": axes}, ome=False, imagej=imagej)


def _write_tiff_pages(
    tmp: Path, labels: Any, axes: str, counter: Counter, metadata: dict, *, ome: bool, imagej: bool
) -> None:
    """One zlib-compressed page per (Y, X) plane in ``axes`` order, fed to tifffile from a generator."""
    dtype = _tiff_dtype(np.dtype(labels.dtype))
    shape = tuple(int(n) for n in labels.shape)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize

    def pages() -> Iterator[np.ndarray]:
        for i, (_, plane) in enumerate(_planes(labels, axes, axes, dtype)):
            if i:
                counter.advance()  # tifffile asks for the next page once the previous one is written
            yield plane

    bigtiff = nbytes > _BIGTIFF_BYTES and not imagej
    with tifffile.TiffWriter(tmp, bigtiff=bigtiff, imagej=imagej, ome=ome, shaped=not (ome or imagej)) as tif:
        tif.write(pages(), shape=shape, dtype=dtype, photometric="minisblack", compression="zlib", metadata=metadata)
    counter.finish()


_WRITERS: dict[str, Callable[[Path, Any, str, Counter, str], None]] = {
    ".ome.tif": _write_ome_tiff,
    ".ome.tiff": _write_ome_tiff,
    ".tif": _write_plain_tiff,
    ".tiff": _write_plain_tiff,
    ".ome.zarr": _write_ome_zarr,
    ".zarr": _write_zarr,
    ".npy": _write_npy,
}
