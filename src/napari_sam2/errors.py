"""Exceptions shared by the layers of napari-sam2.

Every message says what is wrong and what to do about it.
"""


class CheckpointError(RuntimeError):
    """A checkpoint could not be found, downloaded, read, recognised or loaded."""


class PromptError(ValueError):
    """A prompt (point, box, mask, frame, object id) is not usable."""


class ImageDataError(ValueError):
    """Image data has a shape, dtype or values the model cannot take."""


class OutputError(ValueError):
    """An output path cannot be used: unknown extension, missing folder, or it exists and may not be replaced."""


class SessionClosedError(RuntimeError):
    """A tracking session was used after ``close()``."""
