"""Exceptions shared by the layers of napari-sam2.

Every message says what is wrong and what to do about it.
"""


def plural(n: int, noun: str) -> str:
    """``n`` and ``noun`` as a message says them: ``1 frame``, ``12 frames``, ``0 frames``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


class NapariSam2Error(Exception):
    """Base of every error napari-sam2 raises for a problem the user can fix (a file, a prompt, a setting).

    Its message says what is wrong and what to do; the command line prints it as one line and the widget
    as a notification, without a traceback. Each subclass also derives from the built-in exception it was
    before this base existed (``PromptError`` is a ``ValueError``, ``WriteError`` an ``OSError``, ...), so
    code that catches those still catches it. Any other exception escaping napari-sam2 is a bug.
    """


class CheckpointError(NapariSam2Error, RuntimeError):
    """A checkpoint could not be found, downloaded, read, recognised or loaded."""


class DeviceError(NapariSam2Error, ValueError):
    """A device (``cpu``, ``cuda:1``, ...) or precision (dtype) is unknown or not available on this machine."""


class PromptError(NapariSam2Error, ValueError):
    """A prompt (point, box, mask, frame, object id) is not usable."""


class LabelDtypeError(PromptError):
    """A label image (seeds, or the labels a session keeps) has a dtype that cannot hold its labels: not an
    integer dtype, or an id too large for it. A :class:`PromptError`, since label images are prompts too."""


class ImageDataError(NapariSam2Error, ValueError):
    """Image data has a shape, dtype or values the model cannot take."""


class OutputError(NapariSam2Error, ValueError):
    """An output path cannot be used: unknown extension, missing folder, or it exists and may not be replaced."""


class LabelFormatError(OutputError):
    """Labels cannot be written in the chosen output format: dtype, value range (a CTC mask holds ids up to
    65535) or axes do not fit it. Nothing was written."""


class WriteError(OutputError, OSError):
    """Writing an output failed (full disk, no permission, name too long, ...); the message keeps the
    system's reason. The partial output was removed. Also an ``OSError``."""


class ManifestError(NapariSam2Error, ValueError):
    """A batch manifest cannot be used: missing, unreadable, empty, without a needed column, or colliding rows."""


class ClusterError(NapariSam2Error, OSError):
    """The dask scheduler of a batch cannot be reached. Also an ``OSError``."""


class MissingExtraError(NapariSam2Error, ImportError):
    """A command needs an optional part that is not installed (napari for ``demo``, dask.distributed for
    ``batch``); the message names the pip extra that installs it. Also an ``ImportError``."""


class SessionClosedError(NapariSam2Error, RuntimeError):
    """A tracking session was used after ``close()``."""
