"""Exceptions shared by the layers of napari-sam2.

Every message says what is wrong and what to do about it.
"""


def plural(n: int, noun: str) -> str:
    """``n`` and ``noun`` as a message says them: ``1 frame``, ``12 frames``, ``0 frames``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


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
