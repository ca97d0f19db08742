"""numpy/dask/zarr in, masks out: everything between data and the SAM 2 network."""

from .image import ImagePrediction
from .segmenter import Segmenter

__all__ = ["ImagePrediction", "Segmenter"]
