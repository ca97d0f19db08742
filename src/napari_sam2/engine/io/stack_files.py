"""Open an image stack from a file without reading it: TIFF / OME-TIFF, zarr / OME-Zarr, ``.npy``.

:func:`read_stack` returns a :class:`StackFile` whose ``data`` is lazy wherever the format allows:

- ``.tif .tiff .ome.tif .ome.tiff``: a read-only ``numpy.memmap`` when the pixels are uncompressed and
  contiguous, else a read-only ``zarr`` array over the TIFF (compressed or tiled files); ``axes`` from tifffile.
- ``.zarr .ome.zarr``: the ``zarr`` array itself, level 0 of an OME-NGFF multiscale image (``axes`` from its
  metadata), or the array ``"0"`` of a plain group.
- ``.npy``: a read-only ``numpy.memmap``; ``axes`` is ``None``.

Only series 0, level 0 (full resolution) of a TIFF is used. Pixels are read when ``data`` is sliced, one
plane at a time if the caller slices that way (``data[i]``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
import zarr

from ...errors import ImageDataError

#: Extensions :func:`read_stack` understands (matched case-insensitively, longest first).
STACK_FORMATS = (".ome.tiff", ".ome.tif", ".ome.zarr", ".tiff", ".tif", ".zarr", ".npy")

#: tifffile axis letters that are renamed; every other letter is kept as tifffile reports it
#: (``T Z C Y X`` as they are; ``I`` = generic image sequence, ``Q`` = unknown, ``A``/``P``/``R``/``H``/``E``/
#: ``L``/``V``/``M``/``O`` = angle/phase/tile/lifetime/lambda/exposure/event/mosaic/other), so that the
#: caller decides what an ambiguous axis means.
_TIFF_AXIS_RENAME = {"S": "C"}  # samples (RGB(A) components) are channels


@dataclass(frozen=True)
class StackFile:
    """An image stack opened lazily from a file.

    Attributes:
        data: array-like with ``.shape``, ``.dtype`` and numpy basic slicing (``numpy.memmap``, zarr array);
            axes in file order, dtype as stored (e.g. uint8, uint16, float32).
        axes: one upper-case letter per axis of ``data`` (``"TZYX"``, ``"TYXC"``, ``"ZYX"``, ...), or ``None``
            when the file does not say.
        path: the file or folder that was opened.
    """

    data: Any
    axes: str | None
    path: Path

    def close(self) -> None:
        """Release the file handle held by a zarr view of a TIFF (memory maps close when dropped)."""
        store = getattr(self.data, "store", None)
        if store is not None and hasattr(store, "close"):
            store.close()


def read_stack(path: str | Path) -> StackFile:
    """Open the image stack stored at ``path`` without reading its pixels.

    Args:
        path: a ``.tif``/``.tiff``/``.ome.tif``/``.ome.tiff`` file, a ``.zarr``/``.ome.zarr`` folder (a zarr
            array, an OME-NGFF image group, or a group with an array named ``"0"``) or a ``.npy`` file.

    Returns:
        A :class:`StackFile`; see the module docstring for what ``data`` and ``axes`` are per format.

    Raises:
        ImageDataError: the path does not exist, its extension is not supported, the file cannot be read
            (damaged, incomplete, not what its extension says) or a zarr group holds no image.
    """
    path = Path(path)
    if not path.exists():
        raise ImageDataError(f"{path} does not exist; check the path (spelling, folder, mounted drive).")
    kind = stack_format(path)
    if kind in (".npy",):
        return _read_npy(path)
    if kind.endswith(".zarr"):
        return _read_zarr(path)
    return _read_tiff(path)


def stack_format(path: str | Path) -> str:
    """The extension of ``path`` from :data:`STACK_FORMATS` (lower case, longest match), else ImageDataError."""
    name = Path(path).name.lower()
    for suffix in STACK_FORMATS:  # longest first, so ".ome.tif" wins over ".tif"
        if name.endswith(suffix):
            return suffix
    raise ImageDataError(
        f"{Path(path).name} is not a supported stack file; use one of {', '.join(sorted(STACK_FORMATS))} "
        "(convert it first, e.g. with napari or Fiji)."
    )


def _damaged(path: Path, what: str, exc: BaseException) -> ImageDataError:
    """The error for a file that exists but cannot be read; wraps the library's own message."""
    return ImageDataError(
        f"Cannot read {path} as {what} ({type(exc).__name__}: {exc}); the file may be damaged, incomplete "
        "or not what its extension says: re-export it, or check that it opens in another program."
    )


# --- .npy ---------------------------------------------------------------------------------------------


def _read_npy(path: Path) -> StackFile:
    """Memory-map a ``.npy`` file read-only; its axes are unknown (``None``)."""
    try:
        data = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:  # any failure means the file is not a usable .npy
        raise _damaged(path, "a NumPy .npy file", exc) from exc
    if not isinstance(data, np.ndarray):  # a .npz archive renamed to .npy
        raise ImageDataError(f"{path} holds several arrays, not one image; save a single array with numpy.save.")
    return StackFile(data=data, axes=None, path=path)


# --- TIFF ---------------------------------------------------------------------------------------------


def _read_tiff(path: Path) -> StackFile:
    """Series 0, level 0 of a TIFF: memory-mapped when its pixels are contiguous and uncompressed, else zarr."""
    try:
        with tifffile.TiffFile(path) as tif:
            if not tif.series:
                raise ValueError("the file holds no image series")
            series = tif.series[0]
            shape, raw_axes, mappable = tuple(series.shape), series.axes, series.dataoffset is not None
        if mappable:
            data = tifffile.memmap(path, mode="r", series=0, level=0)
        else:
            data = zarr.open(tifffile.imread(path, aszarr=True, series=0, level=0), mode="r")
    except Exception as exc:  # tifffile raises many types for damaged files
        raise _damaged(path, "a TIFF file", exc) from exc
    axes = tiff_axes(raw_axes) if tuple(data.shape) == shape else None
    return StackFile(data=data, axes=axes, path=path)


def tiff_axes(raw: str) -> str:
    """tifffile's axis letters -> ours: ``S`` (samples, e.g. RGB) becomes ``C`` unless that would repeat a letter.

    Every other letter is kept (see ``_TIFF_AXIS_RENAME``); e.g. ``"TZCYX"`` -> ``"TZCYX"``,
    ``"YXS"`` -> ``"YXC"``, ``"IYX"`` -> ``"IYX"``.
    """
    axes = "".join(_TIFF_AXIS_RENAME.get(a, a) for a in raw.upper())
    return axes if len(set(axes)) == len(axes) else raw.upper()


# --- zarr / OME-Zarr ----------------------------------------------------------------------------------


def _read_zarr(path: Path) -> StackFile:
    """A zarr array, level 0 of an OME-NGFF multiscale group, or the array ``"0"`` of a plain group."""
    try:
        node = zarr.open(str(path), mode="r")
    except Exception as exc:  # zarr raises many types for damaged stores
        raise _damaged(path, "a zarr array or group", exc) from exc
    if isinstance(node, zarr.Array):
        return StackFile(data=node, axes=_dimension_axes(dict(node.attrs), node.ndim), path=path)
    attrs = dict(node.attrs)
    multiscales = attrs.get("multiscales") or attrs.get("ome", {}).get("multiscales")  # NGFF v0.4 | v0.5
    if multiscales:
        return _read_multiscale(path, node, multiscales[0])
    if "0" in node and isinstance(node["0"], zarr.Array):
        array = node["0"]
        return StackFile(data=array, axes=_dimension_axes(dict(array.attrs), array.ndim), path=path)
    arrays = sorted(node.array_keys())
    inside = f"it contains the arrays {', '.join(arrays)}; " if arrays else "it contains no array; "
    raise ImageDataError(
        f"{path} is a zarr group without an image (no OME-NGFF 'multiscales' metadata and no array '0'): "
        f"{inside}pass the path of the array itself, e.g. {path / (arrays[0] if arrays else '<array>')}."
    )


def _read_multiscale(path: Path, group: Any, multiscale: dict) -> StackFile:
    """Level 0 (``datasets[0]``) of one OME-NGFF ``multiscales`` entry, with its axis names upper-cased."""
    try:
        array = group[multiscale["datasets"][0]["path"]]
    except Exception as exc:  # missing key, missing array, damaged metadata
        raise _damaged(path, "an OME-Zarr image (its level 0 array is missing)", exc) from exc
    names = [a if isinstance(a, str) else a.get("name", "") for a in multiscale.get("axes", [])]
    return StackFile(data=array, axes=_letters(names, array.ndim), path=path)


def _dimension_axes(attrs: dict, ndim: int) -> str | None:
    """Axes of a plain zarr array from the xarray convention ``_ARRAY_DIMENSIONS`` (written by label_files)."""
    return _letters(attrs.get("_ARRAY_DIMENSIONS") or [], ndim)


def _letters(names: list, ndim: int) -> str | None:
    """``["t", "y", "x"]`` -> ``"TYX"``; ``None`` unless there is one distinct single-letter name per axis."""
    axes = "".join(str(n).upper() for n in names)
    if len(names) != ndim or len(axes) != ndim or len(set(axes)) != ndim:
        return None
    return axes
