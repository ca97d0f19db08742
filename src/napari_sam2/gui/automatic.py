"""*Find objects*: SAM 2's automatic mask generator on the frame in view, with a napari progress bar and
Cancel — a part of the controller.

The search runs as a job (:func:`.tasks.find`) and changes nothing in the session; what it found comes back
as a label image of the frame, which goes the way of every seed (:meth:`.tracking.Tracking.seed_plane`):
new objects "auto N" with fresh ids, prompted with their masks, kept in the widget's prompts.
"""

from __future__ import annotations

import numpy as np
from napari.utils import progress
from napari.utils.notifications import show_info, show_warning

from ..engine.automatic import FindOptions
from ..errors import plural
from . import tasks
from .contracts import FinderHost
from .jobs import Job, Prepared


class Finder:
    """Find objects on a frame for a :class:`~.controller.Sam2Controller`.

    Attributes:
        options: the search settings (:class:`~napari_sam2.engine.automatic.FindOptions`; e.g. lower
            ``pred_iou_thresh`` and ``stability_score_thresh`` to find more).
        min_area: objects with fewer pixels (after overlaps are resolved) are dropped.
        bar: napari's progress bar of the running search (None when none runs).
    """

    def __init__(self, host: FinderHost) -> None:
        self.host = host
        self.options = FindOptions()
        self.min_area = 0
        self.bar: progress | None = None

    def find(self) -> None:
        """Search the frame in view (in the region, when one is drawn: the session sees only that) for
        objects; each becomes a new object."""
        host = self.host
        if host.geometry is None:
            show_warning("Pick an image layer first.")
            return
        frame = host.current_frame()
        options, min_area = self.options, int(self.min_area)
        if host.model is None and not any(j.kind == "load" for j in host.jobs()):
            host.load_model(*host.model_choice)

        def prepare() -> Prepared:
            session = host.get_session()
            if session is None:
                return None
            self.close_bar()
            self.bar = progress(total=0, desc=f"SAM 2: finding objects on frame {frame}")
            return tasks.find, (session, frame, options, min_area)

        where = " in the region" if host.region.roi is not None else ""
        host.runner.submit(Job(("find", frame), "find", prepare, self._found, self._ended,
                               description=f"Finding objects on frame {frame}{where}"))

    def cancel(self) -> None:
        """Stop the search (nothing of it is kept)."""
        self.host.runner.cancel(kinds=("find",))

    def close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def _found(self, value: object) -> None:
        host = self.host
        if isinstance(value, tasks.Progress):
            bar = self.bar
            if bar is not None:
                if bar.total != value.total:
                    bar.total = value.total
                bar.update(value.done - bar.n)
            host.status.emit(f"Finding objects: {value.done} of {value.total} clicks")
        elif isinstance(value, tasks.Found):
            self._seed(value)
        else:
            host.show(value)

    def _seed(self, found: tasks.Found) -> None:
        host = self.host
        n = int(found.labels.max(initial=0))
        if n == 0:
            text = (f"No objects found on frame {found.frame}: lower 'min size' ({self.min_area} px), or the "
                    f"search's thresholds in napari's console (widget.controller.find_options = "
                    f"widget.controller.find_options.replace(pred_iou_thresh=0.5, stability_score_thresh=0.8)).")
            show_info(text)
            host.message.emit(text)
            return
        top = max(host.tracking.ids_in_use(), default=0)  # fresh ids: after every id in use, best first
        plane = np.where(found.labels > 0, found.labels + top, 0)
        if host.tracking.seed_plane(plane, found.frame, "the automatic search", "auto"):
            text = f"Found {plural(n, 'object')} on frame {found.frame} (objects {top + 1} to {top + n})."
            show_info(text)
            host.message.emit(text)

    def _ended(self, cancelled: bool) -> None:
        self.close_bar()
        if cancelled:
            text = "Find objects cancelled; no object was added."
            show_info(text)
            self.host.message.emit(text)
