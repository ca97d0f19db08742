"""State of the widget: which image, model and session; no Qt widgets.

The prompts live in the napari layers (see :mod:`.layers`). After every edit
the layers are read again and compared with what was last sent to the
engine (:class:`~.sync.PromptSync`); every (frame, object) that differs
becomes a job that calls ``session.set_prompts`` (or ``clear_prompts``) and
writes ``session.frame_labels(frame)`` into the Labels layer. All engine calls
run in :mod:`.tasks` generators on a :class:`~.jobs.JobRunner`, one at a time.

The controller is composed of parts, each owning its state:

* :class:`~.sync.PromptSync` (``sync_state``): layer prompts vs. what the engine has;
* :class:`~.editing.Editing` (``editing``): objects, polarity, painted masks, clear frame;
* :class:`~.propagation.Propagation` (``propagation``): runs, progress bar, cancel and resume;
* :class:`~.prompt_io.PromptFiles` (``files``): save / load prompt files;
* :class:`~.lifecycle.Lifecycle` (``lifecycle``): layers deleted under the widget, shutdown;
* :class:`~.tracking.Tracking` (``tracking``): seeds from labels, divisions, track table, doubtful frames;
* :class:`~.automatic.Finder` (``finder``): *Find objects* on a frame (SAM 2's automatic mask generator);
* :class:`~.region.Region` (``region``): the region to track in (the "SAM2 region" layer).
* :class:`~.images.Images` (``images``): each image's own layers and state, parked while another is picked.

Each part takes the controller as its ``host`` and uses only what its protocol in
:mod:`.contracts` lists (e.g. :class:`~.contracts.EditingHost`); the controller
satisfies them all. The widget (and napari's console) use the controller's
public methods and properties below, the facade: they call no part directly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari.utils.notifications import show_info, show_warning
from qtpy.QtCore import QObject, QTimer, Signal

from ..engine.coords.geometry import StackGeometry
from . import tasks
from .automatic import Finder
from .editing import Editing
from .images import Images
from .jobs import Job, JobRunner, Prepared
from .layers import Key, PromptLayers, same_layer
from .lifecycle import Lifecycle
from .notify import report_error
from .prompt_io import PromptFiles
from .propagation import Propagation
from .region import Region
from .stack import AUTO, current_position, describe, frame_stack_shape, layer_data, layer_geometry
from .sync import PromptSync
from .tracking import Tracking

if TYPE_CHECKING:
    import napari
    import torch
    from napari.layers import Image, Labels
    from napari.utils.events import Event

    from ..engine.automatic import FindOptions
    from ..engine.prompts import Prompts
    from ..engine.segmenter import Segmenter
    from ..engine.tracking.divisions import DivisionRule
    from ..engine.tracking.session import TrackingSession
    from ..engine.tracking.track_table import Doubt
    from .model_picker import DownloadProgress

log = logging.getLogger(__name__)
_EDITS = {"added", "removed", "changed"}
SESSION_JOBS = ("prompt", "propagate", "edit", "save", "encode", "find")  # every job kind but "load"


class Sam2Controller(QObject):
    """Connects a viewer's layers to a :class:`~napari_sam2.engine.TrackingSession`."""

    status = Signal(str)  # what the running job does ("" when idle)
    objects_changed = Signal()
    polarity_changed = Signal(bool)
    geometry_changed = Signal(str)
    model_changed = Signal(str)
    load_failed = Signal(str)  # the message of a failed load_model
    message = Signal(str)  # the full text of the last warning or error, for the widget to keep in view
    message_step = Signal(str)  # right after a job's error message: that job's kind (what the message is about)
    step_done = Signal(str)  # the kind of a job that ran to its end without error or cancel
    table_changed = Signal()  # a new track table (tracking.rows)

    def __init__(self, viewer: napari.Viewer) -> None:
        super().__init__()
        self.viewer = viewer
        self.layers = PromptLayers(viewer)
        self.runner = JobRunner(self._report, self._runner_state, lambda job: self.step_done.emit(job.kind))
        self.image: Any = None  # the napari Image layer
        self.axis_choice: int | None = None
        self.channel_choice: int | str | None = AUTO  # the channel axis: an axis, None (none) or AUTO
        self.geometry: StackGeometry | None = None
        self.model: Segmenter | None = None
        self.model_choice: tuple = ("sam2.1_hiera_tiny", None, None)  # (source, device, dtype)
        self.session: TrackingSession | None = None
        self.closed = False
        self.download: DownloadProgress | None = None  # the progress of a running model download
        self._blocked = 0
        self.sync_state = PromptSync()
        self._encode_failed: set[tuple[int, int]] = set()  # (id(session), frame) whose background encoding failed
        self.editing = Editing(self)
        self.propagation = Propagation(self)
        self.files = PromptFiles(self)
        self.lifecycle = Lifecycle(self)
        self.tracking = Tracking(self)
        self.finder = Finder(self)
        self.region = Region(self)
        self.images = Images(self)
        viewer.layers.events.removed.connect(self.lifecycle.layer_removed)
        viewer.dims.events.current_step.connect(self._view_moved)

    # ----------------------------------- the facade (the widget and the console use only these)
    @property
    def objects(self) -> dict[int, str]:
        """``{obj_id: name}`` of the objects in the list."""
        return self.editing.objects

    @property
    def current_obj(self) -> int:
        """The selected object: new points and boxes get its id."""
        return self.editing.current_obj

    @property
    def positive(self) -> bool:
        """The polarity of the next points."""
        return self.editing.positive

    @property
    def prompts(self) -> dict[Key, Prompts]:
        """The prompts in the layers, ``{(frame, obj_id): Prompts}``."""
        return self.sync_state.prompts

    @property
    def follow(self) -> bool:
        """Move the viewer to each frame as its propagated result arrives."""
        return self.propagation.follow

    @follow.setter
    def follow(self, on: bool) -> None:
        self.propagation.follow = bool(on)

    @property
    def stop_absent_after(self) -> int | None:
        """Propagation stops tracking an object after this many absent frames in a row (None: never)."""
        return self.tracking.stop_absent_after

    @stop_absent_after.setter
    def stop_absent_after(self, n: int | None) -> None:
        self.tracking.stop_absent_after = int(n) if n else None

    @property
    def detect_divisions(self) -> DivisionRule | None:
        """Propagation divides an object whose mask splits into two parts that stay apart (the rule), or not
        (None); see ``TrackingSession.propagate``."""
        return self.propagation.detect_divisions

    @detect_divisions.setter
    def detect_divisions(self, rule: DivisionRule | None) -> None:
        self.propagation.detect_divisions = rule

    @property
    def find_options(self) -> FindOptions:
        """The settings of *Find objects* (:class:`~napari_sam2.engine.automatic.FindOptions`)."""
        return self.finder.options

    @find_options.setter
    def find_options(self, options: FindOptions) -> None:
        self.finder.options = options

    @property
    def find_min_area(self) -> int:
        """*Find objects* drops objects smaller than this (pixels)."""
        return self.finder.min_area

    @find_min_area.setter
    def find_min_area(self, pixels: int) -> None:
        self.finder.min_area = max(int(pixels), 0)

    def add_object(self, name: str | None = None) -> int:
        """A new object (selected); returns its id (see :meth:`.editing.Editing.add_object`)."""
        return self.editing.add_object(name)

    def select_object(self, obj: int) -> None:
        """Select ``obj``: new points and boxes get its id."""
        self.editing.select_object(obj)

    def rename_object(self, obj: int, name: str) -> None:
        """Rename ``obj`` in the list (and in saved prompt files)."""
        self.editing.rename_object(obj, name)

    def delete_object(self, obj: int) -> None:
        """Remove ``obj``: its prompts, labels, division links and its state in the session."""
        self.editing.delete_object(obj)
        self.tracking.forget_object(int(obj))

    def set_positive(self, positive: bool) -> None:
        """Polarity of the next points."""
        self.editing.set_positive(positive)

    def use_painted_mask(self) -> None:
        """Send the selected object's painted pixels on the frame in view as its mask prompt."""
        self.editing.use_painted_mask()

    def clear_frame(self) -> None:
        """Remove every prompt of the selected object on the frame in view."""
        self.editing.clear_frame()

    def propagate(self, direction: str = "both", first: int | None = None, last: int | None = None) -> None:
        """Track every object ``direction`` through frames ``first`` ... ``last`` (default: all)."""
        self.propagation.propagate(direction, first, last)

    def cancel(self) -> None:
        """Stop the propagation (done frames stay), the search of *Find objects* or the model download."""
        self.finder.cancel()
        self.propagation.cancel()

    def save_prompts(self, path: str | Path) -> None:
        """Write the session's prompt file to ``path`` (in the background)."""
        self.files.save(path)

    def load_prompts(self, path: str | Path) -> None:
        """Replace prompts and objects with those of a prompt file and replay it (in the background)."""
        self.files.load(path)

    def export_labels(self, path: str | Path) -> None:
        """Write the labels layer to ``path`` (.ome.tif, .ome.zarr, .zarr, .tif, .npy; in the background)."""
        self.files.export_labels(path)

    def seed_from_labels(self, layer: Labels | None) -> None:
        """Every label of ``layer`` (a napari Labels layer) on the frame in view becomes an object."""
        self.tracking.seed_from_labels(layer)

    def divide(self) -> tuple[int, int] | None:
        """The selected object divides on the frame in view; returns the daughters' ids (None: no image)."""
        return self.tracking.divide()

    def undo_division(self) -> int | None:
        """Take back the division of the selected object (its parent or a daughter); returns the parent's id
        (None: the selected object is in no division)."""
        return self.tracking.undo_division()

    def find_objects(self) -> None:
        """Find every object on the frame in view (in the region, if one is drawn); each becomes a new object."""
        self.finder.find()

    def next_doubt(self) -> Doubt | None:
        """Go to the selected object's next doubtful frame; returns it (None: there is none)."""
        return self.tracking.next_doubt()

    def track_of(self, obj_id: int) -> tuple[list[dict], list[int]]:
        """The track table rows of ``obj_id`` and its doubtful frames (after the last propagation)."""
        return self.tracking.object_rows(obj_id), [d.frame for d in self.tracking.doubts if d.obj_id == obj_id]

    def export_tracks(self, csv_path: str | Path) -> None:
        """Write the track table to ``csv_path`` and the tracks in CTC format beside it (in the background)."""
        self.tracking.export(csv_path)

    def start_region(self) -> None:
        """Create (or select) the "SAM2 region" layer to draw the region to track in."""
        self.region.start()

    def shutdown(self) -> None:
        """Stop the running job and forget viewer and layers (the widget is going away)."""
        self.lifecycle.shutdown()

    # ------------------------------------------------------------- helpers
    @contextmanager
    def quiet(self) -> Iterator[None]:
        """Edit the prompt layers without treating the edits as new prompts."""
        self._blocked += 1
        try:
            yield
        finally:
            self._blocked -= 1

    def _report(self, job: Job | None, exc: BaseException) -> None:
        """A failed job: a notification, and its full text kept in the widget."""
        report_error(job, exc)
        self.message.emit(str(exc) or type(exc).__name__)
        self.message_step.emit(getattr(job, "kind", ""))

    def _runner_state(self, job: Job | None, waiting: int) -> None:
        text = "" if job is None else job.description
        if job is not None and waiting:
            text += f" ({waiting} more waiting)"
        self.status.emit(text)
        if job is None and not waiting:
            QTimer.singleShot(0, self._view_moved)

    def _view_moved(self, event: Event | None = None) -> None:
        """While nothing else runs, encode the frame in view, so that the first click on it is quick."""
        if self.closed or self.model is None or self.geometry is None or self.runner.busy:
            return
        frame = self.current_frame()
        if (id(self.session), frame) in self._encode_failed:
            return  # reported once; a click on the frame reports it again

        def prepare() -> Prepared:
            session = self.get_session()
            if session is None or session.has_embedding(frame):
                return None
            return tasks.encode, (session, frame)

        def ended(cancelled: bool) -> None:
            session = self.session
            if not cancelled and session is not None and not session.has_embedding(frame):
                self._encode_failed.add((id(session), frame))  # e.g. NaN pixels: not tried again on every idle

        self.runner.submit(Job(("encode",), "encode", prepare, self.show, ended,
                               description=f"Preparing frame {frame} for clicks",
                               on_error=lambda exc: self._encode_failed.add((id(self.session), frame))))

    def go_to_frame(self, frame: int) -> None:
        """Show ``frame`` in the viewer."""
        geo, image = self.geometry, self.image
        if geo is None or geo.axis is None or self.viewer is None:
            return
        ax = geo.axis  # in the image layer's axes (stack space without an RGB colour axis)
        world_axis = self.viewer.dims.ndim - len(frame_stack_shape(image)) + ax
        self.viewer.dims.set_point(world_axis, frame * image.scale[ax] + image.translate[ax])

    def current_frame(self) -> int:
        """The frame shown in the viewer (0 for a 2-D image)."""
        if self.geometry is None or self.geometry.axis is None:
            return 0
        pos = current_position(self.viewer, self.image)
        return int(min(max(round(pos[self.geometry.axis]), 0), self.geometry.num_frames - 1))

    def get_session(self) -> TrackingSession | None:
        """The tracking session, opened on first use (None while no model is loaded)."""
        if self.session is None and self.model is not None and self.geometry is not None:
            self.session = self.model.open_stack(layer_data(self.image), geometry=self.geometry,
                                                 roi=self.region.roi)
        return self.session

    def _drop_session(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            self.runner.when_idle(session.close)

    # --------------------------------------------------------- image / axis
    def set_image(self, layer: Image | None, *, removed: bool = False) -> None:
        """Segment ``layer`` (a napari Image layer, or None).

        The previous image keeps its layers, renamed, with its labels and prompts (see :mod:`.images`);
        ``layer`` gets its own (those it had before, if it was picked before). ``removed``: the previous
        image left the viewer (the caller says so; "pick it again" would be no use)."""
        if layer is self.image or same_layer(layer, self.image):
            return
        text = ""
        if self.image is not None:
            self.image.events.data.disconnect(self.image_data_changed)
            text = self.images.leave(self.image)
        self.image = layer
        restore = None
        if layer is not None:
            layer.events.data.connect(self.image_data_changed)
            restore = self.images.enter(layer)
        if text and not removed:
            text = (f"Now on '{layer.name}', with its own layers; " if layer is not None else "") + text
            self.lifecycle.notify_later(show_info, text)  # (one notification when layers go together)
            self.message.emit(text)
        self.rebind(restore=restore)

    def set_channels(self, channel_axis: int | str | None) -> None:
        """Read channels along ``channel_axis`` of the image's data (None: no channels; ``AUTO``: from the
        axis labels and sizes, see :func:`~.stack.default_channel_axis`)."""
        self.channel_choice = channel_axis
        self.rebind()

    def set_axis(self, axis: int | None) -> None:
        """Propagate along ``axis`` of the image's data (None: from the axis labels)."""
        self.axis_choice = axis
        self.rebind()

    def image_data_changed(self, event: Event | None = None) -> None:
        """The image's data was replaced: start over with it (see :meth:`rebind`)."""
        self.rebind()

    def rebind(self, *, restore: StackGeometry | None = None) -> None:
        """Start a new session for the current image, axis and viewer plane; re-send every prompt.

        ``restore``: the geometry the image had when another one was picked (:meth:`.images.Images.enter`):
        its labels layer is kept as it is and the prompts are sent without redrawing.
        """
        if self.closed:
            return
        self.runner.cancel(kinds=SESSION_JOBS)
        self._drop_session()
        self.sync_state.applied = {}
        self.sync_state.edits += 1
        if self.image is None:
            self.geometry = None
            self.geometry_changed.emit("no image layer")
            return
        try:
            if restore is not None and restore.shape == tuple(layer_data(self.image).shape):
                self.geometry = restore
            else:
                restore = None
                self.geometry = layer_geometry(self.image, self.axis_choice, current_position(self.viewer, self.image),
                                               self.channel_choice)
        except ValueError as exc:
            self.geometry = None
            report_error(None, exc)
            self.geometry_changed.emit(str(exc))
            return
        with self.quiet():
            self.layers.ensure(
                self.image, self.geometry, self.points_edited, self.points_edited, self.defaults_changed
            )
            points, shapes = self.layers.prompt_layers()
            for layer in (points, shapes):
                layer.bind_key("t", self.editing.key_toggle, overwrite=True)
            points.bind_key("f", self.editing.key_flip, overwrite=True)
            if restore is None:
                self.layers.clear_labels(self.geometry)
        self.sync_state.keep_masks_for(self.geometry)
        self.layers.set_defaults(self.current_obj, self.positive)
        self.geometry_changed.emit(describe(self.image, self.geometry) + self.region.describe())
        if restore is not None:
            self.images.resend()
        else:
            self.sync()

    # -------------------------------------------------------------- prompts
    def points_edited(self, event: Event) -> None:
        """A Points or Shapes layer's data event: read the prompts again after an edit."""
        if str(getattr(event.action, "value", event.action)) in _EDITS:
            self.sync()

    def defaults_changed(self, event: Event | None = None) -> None:
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
        if self._blocked or self.closed or self.geometry is None:
            return
        changed, notes = self.sync_state.read(self.layers.points, self.layers.shapes, self.geometry)
        for note in notes:
            show_warning(note)
            self.message.emit(note)
        new_ids = self.sync_state.object_ids() - set(self.objects)
        for oid in sorted(new_ids):
            self.objects[oid] = f"object {oid}"
        if new_ids:
            self.objects_changed.emit()
        with self.quiet():
            self.layers.restyle()
        if not changed:
            return
        if self.model is None and not any(j.kind == "load" for j in self.jobs()):
            self.load_model(*self.model_choice)
        for key in changed:
            self._submit_prompt(key)

    def jobs(self) -> list[Job]:
        """The running job and the waiting ones."""
        return [j for j in (self.runner.current, *self.runner.waiting) if j is not None]

    def _submit_prompt(self, key: Key) -> None:
        frame, obj = key
        self.sync_state.edits += 1

        def prepare() -> Prepared:
            session = self.get_session()
            parent = self.tracking.marked.get(obj)
            return None if session is None else (tasks.segment, (session, frame, obj, self.prompts.get(key), parent))

        self.runner.submit(
            Job(
                ("prompt", frame, obj),
                "prompt",
                prepare,
                self.show,
                description=f"Segmenting object {obj} on frame {frame}",
            )
        )

    def show(self, value: object) -> None:
        """Show what a job yielded."""
        if isinstance(value, tasks.Status):
            self.status.emit(value.text)
        elif isinstance(value, tasks.FrameLabels) and self.geometry is not None:
            if self.layers.labels is None:
                self._recreate_labels(self.geometry)
            self.layers.write(self.geometry, value.frame, value.labels)

    def _recreate_labels(self, geometry: StackGeometry) -> None:
        with self.quiet():
            self.layers.ensure(
                self.image, geometry, self.points_edited, self.points_edited, self.defaults_changed
            )
        show_info(f"The labels layer was deleted; it was re-created as '{self.layers.labels_layer().name}'.")
        self.submit_session_task("redraw", tasks.redraw, "Redrawing the labels")

    def submit_session_task(self, key: Any, task: Callable[..., Iterator[Any]], description: str, *args: Any
                            ) -> None:
        """Queue ``task(session, *args)`` as an edit job whose yielded results are drawn by :meth:`show`."""
        if self.session is None:
            return
        self.sync_state.edits += 1
        self.runner.submit(
            Job(key, "edit", lambda: None if self.session is None else (task, (self.session, *args)), self.show,
                description=description)
        )

    # ---------------------------------------------------------------- model
    def load_model(self, source: str | Path, device: str | torch.device | None = None,
                   dtype: str | torch.dtype | None = None) -> None:
        """Load a model (a name or a .pt path) in the background; then re-send every prompt."""
        from .model_picker import DownloadProgress

        self.model_choice = (source, device, dtype)
        bar = DownloadProgress()

        def prepare() -> Prepared:
            self.download = bar
            return tasks.load, (source, device, dtype, bar)

        def end(cancelled: bool) -> None:
            bar.finish()
            self.download = None

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

    def _loaded(self, value: object) -> None:
        if isinstance(value, tasks.Loaded):
            self.set_model(value.model)
        else:
            self.show(value)

    def set_model(self, model: Segmenter) -> None:
        """Use an already loaded :class:`~napari_sam2.Segmenter` (e.g. from napari's console)."""
        self.model = model
        text = f"{model.variant} on {model.device} ({model.precision})"
        if not getattr(model, "trained", True):
            text += " with UNTRAINED weights: masks are meaningless"
        reason = getattr(model, "precision_reason", "")
        self.model_changed.emit(f"{text}\nprecision: {reason}" if reason else text)
        show_info(f"SAM 2 model loaded: {text}" + (f" ({reason})." if reason else "."))
        self.rebind()
