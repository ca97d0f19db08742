"""napari-sam2: Meta's SAM 2 for scientific image stacks, in napari and Python."""

from .engine import ImagePrediction, Segmenter
from .errors import CheckpointError, ImageDataError, OutputError, PromptError, SessionClosedError
from .loading import load_model

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "ImageDataError",
    "ImagePrediction",
    "OutputError",
    "PromptError",
    "Segmenter",
    "SessionClosedError",
    "load_model",
]
