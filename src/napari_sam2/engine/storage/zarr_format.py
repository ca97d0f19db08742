"""The one zarr on-disk format napari-sam2 writes, whatever zarr release is installed.

zarr 3 writes format 3 by default and zarr 2 only knows format 2; OME-Zarr 0.4 readers
(napari-ome-zarr, ome-zarr-py, Fiji's N5 plugin) read format 2. Every zarr array or group
napari-sam2 creates -- label files, OME-Zarr, GEFF, temporary label images and the persistent
embedding store -- passes :data:`ZARR_V2` so they are all format 2.
"""

from __future__ import annotations

import zarr

#: Keyword arguments for ``zarr.create`` / ``open_array`` / ``open_group``: format 2 on zarr 3, nothing on zarr 2.
ZARR_V2: dict[str, int] = {"zarr_format": 2} if int(zarr.__version__.split(".")[0]) >= 3 else {}
