"""numpy/dask/zarr in, masks out: everything between data and the SAM 2 network."""

from .predict import ImagePrediction
from .preprocess.frames import FrameSource
from .segmenter import Segmenter
from .tracking.session import TrackingSession

__all__ = ["FrameSource", "ImagePrediction", "Segmenter", "TrackingSession"]
