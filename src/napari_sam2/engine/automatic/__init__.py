"""Automatic objects on one image: SAM 2's automatic mask generator (grid of clicks, filters, NMS, crops).

:func:`find_objects` / :func:`iter_find` search an image given a way to embed its crops;
``Segmenter.find_objects`` and ``TrackingSession.find_objects`` are the user-facing calls.
"""

from .options import FindOptions, FoundObject, resolve_options
from .search import EmbedCrop, FindCancelled, find_objects, iter_find

__all__ = ["EmbedCrop", "FindCancelled", "FindOptions", "FoundObject", "find_objects", "iter_find",
           "resolve_options"]
