"""numpy/dask/zarr in, masks out: everything between data and the SAM 2 network."""

from .frames import FrameSource
from .image import ImagePrediction
from .segmenter import Segmenter
from .session import TrackingSession

__all__ = ["FrameSource", "ImagePrediction", "Segmenter", "TrackingSession"]
