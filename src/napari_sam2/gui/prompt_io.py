"""Save and load the session's prompts as JSON (part of the controller).

Same file format as the command line (:mod:`napari_sam2.engine.prompt_file`).
"""

from __future__ import annotations

from napari.utils.notifications import show_info, show_warning

from ..engine.prompt_file import load_prompts
from ..errors import PromptError
from . import tasks
from .jobs import Job
from .notify import report_error


class PromptFileMixin:
    """``save_prompts`` / ``load_prompts`` for :class:`~.controller.Sam2Controller`."""

    def save_prompts(self, path) -> None:
        """Write every prompt of the session, with the object names, to ``path`` (in the background)."""
        if self.session is None:
            show_warning("There are no prompts to save yet.")
            return
        names = dict(self.objects)
        axis = None if self.geometry is None else self.geometry.axis

        def prepare():
            return None if self.session is None else (tasks.save, (self.session, str(path), names, axis))

        self.runner.submit(
            Job(("save", str(path)), "save", prepare, self._saved, description="Saving prompts")
        )

    def _saved(self, value) -> None:
        if isinstance(value, tasks.Saved):
            show_info(f"Saved the prompts of {value.n_objects} object(s) to {value.path}.")

    def load_prompts(self, path) -> None:
        """Replace all prompts and objects with those of a prompt file, and segment their frames again."""
        if self.geometry is None:
            show_warning("Pick the image layer the prompts belong to first.")
            return
        try:
            objects = load_prompts(path, self.geometry.frame_hw, self.geometry.num_frames)
        except PromptError as exc:
            report_error(None, exc)
            return
        self.runner.cancel(kinds=("prompt", "propagate", "edit"))
        with self.quiet():
            self.layers.fill(objects, self.geometry)
            self.layers.clear_labels()
        self.masks = {
            (f, o.obj_id): p.mask for o in objects for f, p in o.frames.items() if p.mask is not None
        }
        self.objects = {o.obj_id: o.name or f"object {o.obj_id}" for o in objects} or {1: "object 1"}
        self.select_object(min(self.objects))
        self._submit_session_task("reset", tasks.reset, "Resetting")
        self.applied = {}
        self.sync()
        show_info(f"Loaded the prompts of {len(objects)} object(s) from {path}.")
