"""Failures of jobs as napari notifications (never as unhandled exceptions)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from napari.utils.notifications import show_error, show_info, show_warning

from ..errors import NapariSam2Error, PromptError

if TYPE_CHECKING:
    from .jobs import Job

log = logging.getLogger("napari_sam2")



class DownloadCancelled(Exception):
    """Raised inside a model download when the user cancels it or closes the widget."""


def report_error(job: Job | None, exc: BaseException) -> None:
    """Show ``exc`` as a notification (``job``: the job that failed, None: not a job).

    A :class:`~napari_sam2.errors.NapariSam2Error` is the user's to fix and its message says how: shown as
    it is (a :class:`~napari_sam2.errors.PromptError` as a warning). Anything else is a bug: its traceback
    goes to the log (``napari_sam2`` logger) and the notification says what failed.
    """
    if isinstance(exc, DownloadCancelled):
        show_info("The model download was cancelled.")
    elif isinstance(exc, PromptError):
        show_warning(str(exc))
    elif isinstance(exc, NapariSam2Error):
        show_error(str(exc))
    else:
        what = getattr(job, "description", "") or "napari-sam2"
        log.error("%s failed", what, exc_info=(type(exc), exc, exc.__traceback__))
        show_error(f"{what} failed: {exc}" if str(exc) else f"{what} failed: {type(exc).__name__}")
