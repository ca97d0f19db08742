"""The command line (``napari-sam2 ...``) and batches on dask.distributed: thin layers over the engine."""

from .main import main

__all__ = ["main"]
