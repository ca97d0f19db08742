"""Failures of jobs as napari notifications (never as unhandled exceptions)."""

from __future__ import annotations

import logging

from napari.utils.notifications import show_error, show_info, show_warning

from ..errors import CheckpointError, ImageDataError, PromptError

log = logging.getLogger("napari_sam2")


class DownloadCancelled(Exception):
    """Raised inside a model download when the user cancels it or closes the widget."""


def report_error(job, exc: BaseException) -> None:
    """Show ``exc`` as a notification; the engine's messages already say what to do."""
    if isinstance(exc, DownloadCancelled):
        show_info("The model download was cancelled.")
    elif isinstance(exc, PromptError):
        show_warning(str(exc))
    elif isinstance(exc, (CheckpointError, ImageDataError)):
        show_error(str(exc))
    else:
        what = getattr(job, "description", "") or "napari-sam2"
        log.error("%s failed", what, exc_info=(type(exc), exc, exc.__traceback__))
        show_error(f"{what} failed: {exc}" if str(exc) else f"{what} failed: {type(exc).__name__}")
