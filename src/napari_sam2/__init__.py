"""napari-sam2: Meta's SAM 2 for scientific image stacks, in napari and Python."""

from .engine import ImagePrediction, Segmenter
from .errors import (
    CheckpointError,
    ClusterError,
    DeviceError,
    ImageDataError,
    LabelDtypeError,
    LabelFormatError,
    ManifestError,
    MissingExtraError,
    NapariSam2Error,
    OutputError,
    PromptError,
    SessionClosedError,
    WriteError,
)
from .loading import load_model

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "ClusterError",
    "DeviceError",
    "ImageDataError",
    "ImagePrediction",
    "LabelDtypeError",
    "LabelFormatError",
    "ManifestError",
    "MissingExtraError",
    "NapariSam2Error",
    "OutputError",
    "PromptError",
    "Segmenter",
    "SessionClosedError",
    "WriteError",
    "load_model",
]
