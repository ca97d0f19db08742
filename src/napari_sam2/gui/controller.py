"""State of the widget: which image, model, session, objects and prompts; no Qt widgets.

The prompts live in the napari layers (see :mod:`.layers`). After every edit
the layers are read again and compared with what was last sent to the
engine; every (frame, object) that differs becomes a job that calls
``session.set_prompts`` (or ``clear_prompts``) and writes
``session.frame_labels(frame)`` into the Labels layer. All engine calls run in
:mod:`.tasks` generators on a :class:`~.jobs.JobRunner`, one at a time.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager

from napari.utils.notifications import show_info, show_warning
from qtpy.QtCore import QObject, QTimer, Signal

from . import tasks
from .editing import EditingMixin
from .jobs import Job, JobRunner
from .layers import FramePrompt, Key, PromptLayers, collect, same_layer
from .lifecycle import LifecycleMixin
from .notify import report_error
from .prompt_io import PromptFileMixin
from .propagation import PropagationMixin
from .stack import StackGeometry, axis_names, current_position, layer_data

log = logging.getLogger(__name__)
_EDITS = {"added", "removed", "changed"}
SESSION_JOBS = ("prompt", "propagate", "edit", "save", "encode")  # every job kind but "load"


class Sam2Controller(QObject, EditingMixin, PropagationMixin, PromptFileMixin, LifecycleMixin):
    """Connects a viewer's layers to a :class:`~napari_sam2.engine.TrackingSession`."""

    status = Signal(str)  # what the running job does ("" when idle)
    objects_changed = Signal()
    polarity_changed = Signal(bool)
    geometry_changed = Signal(str)
    model_changed = Signal(str)
    load_failed = Signal(str)  # the message of a failed load_model
    message = Signal(str)  # the full text of the last warning or error, for the widget to keep in view

    def __init__(self, viewer) -> None:
        super().__init__()
        self.viewer = viewer
        self.layers = PromptLayers(viewer)
        self.runner = JobRunner(self._report, self._runner_state)
        self.image = None
        self.axis_choice: int | None = None
        self.geometry: StackGeometry | None = None
        self.model = None
        self.model_choice: tuple = ("sam2.1_hiera_tiny", None, None)  # (source, device, dtype)
        self.session = None
        self.objects: dict[int, str] = {1: "object 1"}
        self.current_obj = 1
        self.positive = True
        self.masks: dict[Key, object] = {}
        self.prompts: dict[Key, FramePrompt] = {}  # as the layers are now
        self.applied: dict[Key, FramePrompt] = {}  # as last sent to the engine
        self._notes: set[str] = set()
        self._blocked = 0
        self._closed = False
        self._download = None
        self._init_propagation()
        viewer.layers.events.removed.connect(self._layer_removed)
        viewer.dims.events.current_step.connect(self._view_moved)

    # ------------------------------------------------------------- helpers
    @contextmanager
    def quiet(self):
        """Edit the prompt layers without treating the edits as new prompts."""
        self._blocked += 1
        try:
            yield
        finally:
            self._blocked -= 1

    def _report(self, job, exc: BaseException) -> None:
        """A failed job: a notification, and its full text kept in the widget."""
        report_error(job, exc)
        self.message.emit(str(exc) or type(exc).__name__)

    def _runner_state(self, job: Job | None, waiting: int) -> None:
        text = "" if job is None else job.description
        if job is not None and waiting:
            text += f" ({waiting} more waiting)"
        self.status.emit(text)
        if job is None and not waiting:
            QTimer.singleShot(0, self._view_moved)

    def _view_moved(self, event=None) -> None:
        """While nothing else runs, encode the frame in view, so that the first click on it is quick."""
        if self._closed or self.model is None or self.geometry is None or self.runner.busy:
            return
        frame = self.current_frame()

        def prepare():
            session = self._get_session()
            if session is None or session.has_embedding(frame):
                return None
            return tasks.encode, (session, frame)

        self.runner.submit(Job(("encode",), "encode", prepare, self._show,
                               description=f"Preparing frame {frame} for clicks"))

    def current_frame(self) -> int:
        """The frame shown in the viewer (0 for a 2-D image)."""
        if self.geometry is None or self.geometry.axis is None:
            return 0
        pos = current_position(self.viewer, self.image)
        return int(min(max(round(pos[self.geometry.axis]), 0), self.geometry.num_frames - 1))

    def _get_session(self):
        """The tracking session, opened on first use (None while no model is loaded)."""
        if self.session is None and self.model is not None and self.geometry is not None:
            self.session = self.geometry.open_session(self.model, layer_data(self.image))
        return self.session

    def _drop_session(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            self.runner.when_idle(session.close)

    # --------------------------------------------------------- image / axis
    def set_image(self, layer) -> None:
        """Segment ``layer`` (a napari Image layer, or None)."""
        if layer is self.image or same_layer(layer, self.image):
            return
        if self.image is not None:
            self.image.events.data.disconnect(self._image_data_changed)
        self.image = layer
        if layer is not None:
            layer.events.data.connect(self._image_data_changed)
        self.rebind()

    def set_axis(self, axis: int | None) -> None:
        """Propagate along ``axis`` of the image's data (None: from the axis labels)."""
        self.axis_choice = axis
        self.rebind()

    def _image_data_changed(self, event=None) -> None:
        self.rebind()

    def rebind(self) -> None:
        """Start a new session for the current image, axis and viewer plane; re-send every prompt."""
        if self._closed:
            return
        self.runner.cancel(kinds=SESSION_JOBS)
        self._drop_session()
        self.applied = {}
        self.edits += 1
        if self.image is None:
            self.geometry = None
            self.geometry_changed.emit("no image layer")
            return
        try:
            self.geometry = StackGeometry.from_layer(
                self.image, self.axis_choice, current_position(self.viewer, self.image)
            )
        except ValueError as exc:
            self.geometry = None
            report_error(None, exc)
            self.geometry_changed.emit(str(exc))
            return
        with self.quiet():
            self.layers.ensure(
                self.image, self.geometry, self._points_edited, self._shapes_edited, self._defaults_changed
            )
            for layer in (self.layers.points, self.layers.shapes):
                layer.bind_key("t", self._key_toggle, overwrite=True)
            self.layers.points.bind_key("f", self._key_flip, overwrite=True)
            self.layers.clear_labels()
        self.masks = {
            k: m
            for k, m in self.masks.items()
            if k[0] < self.geometry.num_frames and m.shape == self.geometry.frame_hw
        }
        self.layers.set_defaults(self.current_obj, self.positive)
        self.geometry_changed.emit(self.geometry.describe(axis_names(self.image)))
        self.sync()

    # -------------------------------------------------------------- prompts
    def _points_edited(self, event) -> None:
        if str(getattr(event.action, "value", event.action)) in _EDITS:
            self.sync()

    _shapes_edited = _points_edited

    def _defaults_changed(self, event=None) -> None:
        """napari sets a Points layer's defaults from the selected points: follow it."""
        if self._blocked or self.layers.points is None:
            return
        defaults = self.layers.points.feature_defaults
        obj, pos = int(defaults["obj_id"].iloc[0]), bool(defaults["positive"].iloc[0])
        if obj in self.objects and obj != self.current_obj:
            self.select_object(obj)
        if pos != self.positive:
            self.set_positive(pos)

    def sync(self) -> None:
        """Read the prompt layers and send every changed (frame, object) to the engine."""
        if self._blocked or self._closed or self.geometry is None:
            return
        self.prompts, notes = collect(self.layers.points, self.layers.shapes, self.geometry, self.masks)
        for note in sorted(set(notes) - self._notes):
            show_warning(note)
            self.message.emit(note)
        self._notes = set(notes)
        new_ids = {k[1] for k in self.prompts} - set(self.objects)
        for oid in sorted(new_ids):
            self.objects[oid] = f"object {oid}"
        if new_ids:
            self.objects_changed.emit()
        changed = sorted(
            k
            for k in set(self.prompts) | set(self.applied)
            if k not in self.prompts or not self.prompts[k].same_as(self.applied.get(k))
        )
        with self.quiet():
            self.layers.restyle()
        if not changed:
            return
        if self.model is None and not any(j.kind == "load" for j in self._jobs()):
            self.load_model(*self.model_choice)
        for key in changed:
            if key in self.prompts:
                self.applied[key] = self.prompts[key]
            else:
                self.applied.pop(key, None)
            self._submit_prompt(key)

    def _jobs(self) -> list[Job]:
        return [j for j in (self.runner.current, *self.runner.waiting) if j is not None]

    def _submit_prompt(self, key: Key) -> None:
        frame, obj = key
        self.edits += 1

        def prepare():
            session = self._get_session()
            return None if session is None else (tasks.segment, (session, frame, obj, self.prompts.get(key)))

        self.runner.submit(
            Job(
                ("prompt", frame, obj),
                "prompt",
                prepare,
                self._show,
                description=f"Segmenting object {obj} on frame {frame}",
            )
        )

    def _show(self, value) -> None:
        """Show what a job yielded."""
        if isinstance(value, tasks.Status):
            self.status.emit(value.text)
        elif isinstance(value, tasks.FrameLabels) and self.geometry is not None:
            if self.layers.labels is None:
                self._recreate_labels()
            self.layers.write(self.geometry, value.frame, value.labels)

    def _recreate_labels(self) -> None:
        with self.quiet():
            self.layers.ensure(
                self.image, self.geometry, self._points_edited, self._shapes_edited, self._defaults_changed
            )
        show_info(f"The labels layer was deleted; it was re-created as '{self.layers.labels.name}'.")
        self._submit_session_task("redraw", tasks.redraw, "Redrawing the labels")

    def _submit_session_task(self, key: str, task, description: str) -> None:
        """Queue ``task(session)`` as an edit job whose yielded results are drawn by ``_show``."""
        if self.session is None:
            return
        self.edits += 1
        self.runner.submit(
            Job(key, "edit", lambda: None if self.session is None else (task, (self.session,)), self._show,
                description=description)
        )

    # ---------------------------------------------------------------- model
    def load_model(self, source, device=None, dtype=None) -> None:
        """Load a model (a name or a .pt path) in the background; then re-send every prompt."""
        from .model_picker import DownloadProgress

        self.model_choice = (source, device, dtype)
        bar = DownloadProgress()

        def prepare():
            self._download = bar
            return tasks.load, (source, device, dtype, bar)

        def end(cancelled: bool) -> None:
            bar.finish()
            self._download = None

        self.runner.submit(
            Job(
                "load",
                "load",
                prepare,
                self._loaded,
                end,
                description="Loading the model",
                on_error=lambda exc: self.load_failed.emit(str(exc)),
            )
        )

    def _loaded(self, value) -> None:
        if isinstance(value, tasks.Loaded):
            self.set_model(value.model)
        else:
            self._show(value)

    def set_model(self, model) -> None:
        """Use an already loaded :class:`~napari_sam2.Segmenter` (e.g. from napari's console)."""
        self.model = model
        text = f"{model.variant} on {model.device} ({model.precision})"
        if not getattr(model, "trained", True):
            text += " with UNTRAINED weights: masks are meaningless"
        self.model_changed.emit(text)
        show_info(f"SAM 2 model loaded: {text}.")
        self.rebind()
