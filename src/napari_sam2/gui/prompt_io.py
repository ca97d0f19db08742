"""Save and load the session's prompt file (its history, replayed exactly): a part of the controller.

Same file as ``session.save_prompts`` and the command line (:mod:`napari_sam2.engine.io.prompt_file`).
"""

from __future__ import annotations

from pathlib import Path

from napari.utils.notifications import show_info, show_warning

from ..engine.io.label_files import label_format
from ..engine.io.prompt_file import load_annotation
from ..engine.tracking.history import final_lineage
from ..errors import OutputError, PromptError
from . import tasks
from .contracts import PromptFilesHost
from .jobs import Job, Prepared
from .notify import report_error
from .stack import label_axes


class PromptFiles:
    """Save / load prompt files for a :class:`~.controller.Sam2Controller` (no state of its own)."""

    def __init__(self, host: PromptFilesHost) -> None:
        self.host = host

    def save(self, path: str | Path) -> None:
        """Write every prompt of the session, with the object names, to ``path`` (in the background)."""
        host = self.host
        if host.session is None:
            show_warning("There are no prompts to save yet.")
            return
        names = dict(host.objects)

        def prepare() -> Prepared:
            return None if host.session is None else (tasks.save, (host.session, str(path), names))

        host.runner.submit(Job(("save", str(path)), "save", prepare, self._saved, description="Saving prompts"))

    def _saved(self, value: object) -> None:
        if isinstance(value, tasks.Saved):
            show_info(f"Saved {value.what} to {value.path}.")
        else:
            self.host.show(value)

    def export_labels(self, path: str | Path) -> None:
        """Write the labels layer to ``path`` (.ome.tif, .ome.zarr, .zarr, .tif, .npy) in the background,
        replacing an existing file (the file dialog has asked)."""
        host = self.host
        output = host.layers.output
        if output is None or host.layers.labels is None or host.image is None:
            show_warning("There are no labels to export yet.")
            return
        try:
            label_format(path)
        except OutputError as exc:
            report_error(None, exc)
            host.message.emit(str(exc))
            return
        array, axes = output.array, label_axes(host.image, output.geometry)
        host.runner.submit(Job(("export", str(path)), "save", lambda: (tasks.export, (array, str(path), axes)),
                               self._saved, description="Exporting the labels"))

    def load(self, path: str | Path) -> None:
        """Replace all prompts and objects with those of a prompt file, and replay its history in the
        background (the labels of the session that saved it, bit for bit, with the same model)."""
        host = self.host
        if host.geometry is None:
            show_warning("Pick the image layer the prompts belong to first.")
            return
        try:
            annotation = load_annotation(path, host.geometry.frame_hw, host.geometry.num_frames)
        except PromptError as exc:
            report_error(None, exc)
            host.message.emit(str(exc))
            return
        objects = annotation.objects()
        if annotation.roi != host.region.roi:  # the session replays in the region the file was made in
            host.region.set_roi(annotation.roi)
        host.runner.cancel(kinds=("prompt", "propagate", "edit", "find"))
        with host.quiet():
            host.layers.fill(objects, host.geometry)
            host.layers.clear_labels(host.geometry)
        state = host.sync_state
        state.masks = {(f, o.obj_id): p.mask for o in objects for f, p in o.frames.items() if p.mask is not None}
        kept = {o.obj_id for o in objects}
        host.editing.replace_objects({oid: name or f"object {oid}" for oid, name in annotation.names.items()
                                      if oid in kept})
        state.read(host.layers.points, host.layers.shapes, host.geometry)  # counted as sent: the replay sends it
        state.edits += 1
        if host.model is None and not any(j.kind == "load" for j in host.jobs()):
            host.load_model(*host.model_choice)

        def prepare() -> Prepared:
            session = host.get_session()
            return None if session is None else (tasks.replay, (session, annotation))


        host.runner.submit(Job(("replay", str(path)), "edit", prepare, host.show,
                               description=f"Replaying {Path(str(path)).name}"))
        host.tracking.marked = final_lineage(annotation.history)  # as Divide would have marked it
        host.tracking.refresh()  # the track table, plot and tracks layer of the replayed session
        show_info(f"Loaded {len(objects)} object(s) from {path}; replaying its {len(annotation.history)} "
                  f"step(s).")
