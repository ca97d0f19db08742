"""The model work behind the widget, as plain generators over engine objects.

Nothing here knows Qt or napari: each function is a short sequence of
engine calls (the same ones you would type in napari's console, see
docs/console.md) that yields what the GUI should show. The widget runs them
in thread workers (:mod:`.jobs`) and writes what they yield into its layers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..engine.prompts import Prompts
from ..engine.tracking.session import TrackingSession
from ..errors import PromptError

if TYPE_CHECKING:
    import torch

    from ..engine.automatic import FindOptions
    from ..engine.io.prompt_file import Annotation
    from ..engine.segmenter import Segmenter
    from ..engine.tracking.divisions import Division, DivisionRule


@dataclass(frozen=True)
class Status:
    """A line for the busy indicator."""

    text: str


@dataclass(frozen=True)
class FrameLabels:
    """The label image of one frame, computed from the session."""

    frame: int
    labels: np.ndarray
    repeat: bool = False  # a frame drawn again in the same pass (after an automatic division, with the daughters)


@dataclass(frozen=True)
class Loaded:
    """A model has been loaded."""

    model: Segmenter
    source: str


@dataclass(frozen=True)
class Saved:
    """``what`` was written to ``path``."""

    path: str
    what: str


def load(source: str | Path, device: str | torch.device | None, dtype: str | torch.dtype | None,
         progress: Any) -> Iterator[Status | Loaded]:
    """``napari_sam2.load_model(source, device, dtype, progress)`` (``progress``: the download's progress
    callback object, e.g. :class:`~.model_picker.DownloadProgress`, or None)."""
    from ..loading import load_model

    yield Status(f"Loading {Path(str(source)).name} …")
    model = load_model(source, device=device, dtype=dtype, progress=progress)
    yield Loaded(model, str(source))


@dataclass(frozen=True)
class TrackTable:
    """``session.track_table()`` and ``session.lineage``; ``divisions``: the automatic divisions
    (``session.divisions(automatic_only=True)``) and ``prompts`` the prompts of their parents and daughters,
    ``{obj_id: {frame: Prompts}}`` (for the widget to keep, as it keeps seeds)."""

    rows: list
    lineage: dict
    divisions: list[Division] = field(default_factory=list)
    prompts: dict[int, dict[int, Prompts]] = field(default_factory=dict)


def track_table(session: TrackingSession) -> TrackTable:
    """The :class:`TrackTable` of ``session``."""
    divisions = session.divisions(automatic_only=True)
    involved = {oid for d in divisions for oid in (d.parent, *d.daughters)}
    prompts = {oid: p for oid, p in session.prompts().items() if oid in involved}
    return TrackTable(session.track_table(), session.lineage, divisions, prompts)


@dataclass(frozen=True)
class Progress:
    """``done`` of ``total`` steps of a search."""

    done: int
    total: int


@dataclass(frozen=True)
class Found:
    """The objects an automatic search found on ``frame``: an (H, W) int64 label image, label k the k-th object
    (best first), 0 elsewhere (all 0: none)."""

    frame: int
    labels: np.ndarray


@dataclass(frozen=True)
class Undone:
    """``session.undo_division(parent)`` removed ``removed`` (the daughters and theirs); ``prompts``: the
    parent's prompts now, ``{frame: Prompts}`` (it has those it gave its daughters back)."""

    parent: int
    removed: list[int]
    prompts: dict[int, Prompts]


def segment(session: TrackingSession, frame: int, obj_id: int, prompt: Prompts | None,
            parent: int | None = None) -> Iterator[Status | FrameLabels]:
    """Set (or, with ``prompt=None``, clear) the prompts of one object on one frame.

    ``prompt``: checked :class:`~napari_sam2.engine.prompts.Prompts` (from the widget's layers).
    ``parent``: the object this one divided from (``session.set_parent``, once it has a prompt).
    """
    if prompt is None:
        if obj_id not in session.object_ids:
            return
        session.clear_prompts(frame, obj_id)
    else:
        if not session.has_embedding(frame):
            yield Status(f"Computing the image embedding of frame {frame} (first visit) …")
        yield Status(f"Segmenting object {obj_id} on frame {frame} …")
        session.set_prompts(frame, obj_id, prompts=prompt)
        if parent is not None and session.lineage.get(obj_id) != parent and parent in session.object_ids:
            had = session.frames_with_output(parent)
            session.set_parent(obj_id, parent)  # drops the parent's results from this frame on
            for f in had:
                if f > frame:
                    yield FrameLabels(f, session.frame_labels(f))
    yield FrameLabels(frame, session.frame_labels(frame))


def encode(session: TrackingSession, frame: int) -> Iterator[Status]:
    """``session.embedding(frame)`` ahead of a click, so the click only runs the mask decoder.

    Bad pixel data is not reported here: the user sees that error if they prompt the frame.
    """
    from ..errors import ImageDataError

    if session.has_embedding(frame):
        return
    yield Status(f"Preparing frame {frame} for clicks …")
    try:
        session.embedding(frame)
    except ImageDataError:
        return


def propagate(session: TrackingSession, runs: list[tuple[int, str, int]],
              stop_absent_after: int | None = None,
              detect_divisions: DivisionRule | None = None) -> Iterator[FrameLabels]:
    """``session.propagate(start, direction, max_frames, stop_absent_after, detect_divisions)`` for each run;
    one result per frame. After an automatic division a forward pass goes on from the split frame: those
    frames come again (``repeat=True``), with the daughters.

    If the worker stops early, the generator is closed at a ``yield``; the engine's generator is
    closed with it and keeps every frame done so far.
    """
    for start, direction, max_frames in runs:
        frames = session.propagate(start=start, direction=direction, max_frames=max_frames,
                                   stop_absent_after=stop_absent_after, detect_divisions=detect_divisions)
        seen: set[int] = set()
        try:
            for frame, _masks in frames:
                yield FrameLabels(frame, session.frame_labels(frame), repeat=frame in seen)
                seen.add(frame)
        finally:
            frames.close()


def remove_object(session: TrackingSession, obj_id: int) -> Iterator[FrameLabels]:
    """``session.remove_object(obj_id)``, then the new labels of every frame it was on."""
    if obj_id not in session.object_ids:
        return
    frames = session.frames_with_output(obj_id)
    session.remove_object(obj_id)
    for frame in frames:
        yield FrameLabels(frame, session.frame_labels(frame))


def redraw(session: TrackingSession) -> Iterator[FrameLabels]:
    """The labels of every frame that has a result (to refill a re-created Labels layer)."""
    for frame in session.frames_with_output():
        yield FrameLabels(frame, session.frame_labels(frame))


def reset(session: TrackingSession) -> Iterator[Status]:
    """``session.reset()``: forget every object (frame embeddings stay cached)."""
    session.reset()
    yield Status("Session reset.")


def save(session: TrackingSession, path: str, names: dict[int, str]) -> Iterator[Saved]:
    """``session.save_prompts(path, names)``: the session's history, to replay exactly."""
    session.save_prompts(path, names)
    yield Saved(str(path), f"the prompts of {len(session.object_ids)} object(s)")


def export(labels: Any, path: str, axes: str) -> Iterator[Status | Saved]:
    """``write_labels(path, labels, axes, overwrite=True)``: plane by plane, atomically (``labels``: an
    integer array-like with the axes ``axes``, e.g. the Labels layer's data)."""
    from ..engine.io.label_files import write_labels

    yield Status(f"Exporting the labels to {Path(path).name} …")
    write_labels(path, labels, axes=axes, overwrite=True, name=Path(path).name)
    yield Saved(path, f"the labels ({axes}, {labels.dtype})")


def replay(session: TrackingSession, annotation: Annotation) -> Iterator[Status | FrameLabels]:
    """``session.reset()``, then the history of a prompt file, drawing every frame it changes."""
    session.reset()
    yield Status("Replaying the prompt file …")
    for kind, frame in annotation.replaying(session):
        if kind == "frame":
            yield Status(f"Replaying: frame {frame}")
        yield FrameLabels(frame, session.frame_labels(frame))


def seed(session: TrackingSession, frame: int, prompts: dict) -> Iterator[Status | FrameLabels | TrackTable]:
    """``session.set_mask_prompts(frame, prompts)`` (objects from a label image, see
    ``engine.prompts.label_prompts``), then that frame's labels and the track table."""
    if not session.has_embedding(frame):
        yield Status(f"Computing the image embedding of frame {frame} …")
    session.set_mask_prompts(frame, prompts, masks_out=False)
    yield Status(f"{len(prompts)} objects made from the labels on frame {frame}.")
    yield FrameLabels(frame, session.frame_labels(frame))
    yield track_table(session)


def table(session: TrackingSession) -> Iterator[TrackTable]:
    """``session.track_table()`` with the lineage and the automatic divisions (see :class:`TrackTable`)."""
    yield track_table(session)


def find(session: TrackingSession, frame: int, options: FindOptions, min_area: int
         ) -> Iterator[Status | Progress | Found]:
    """``session.iter_find_labels(frame, options, min_area=min_area)``: SAM 2's automatic mask generator on
    one frame (in the session's region, if any), its progress after each batch of clicks, then the label
    image of what it found. The session does not change: the widget seeds the labels (as it seeds a
    labels layer's). Closing the generator stops the search."""
    if not session.has_embedding(frame):
        yield Status(f"Computing the image embedding of frame {frame} …")
    search = session.iter_find_labels(frame, options, min_area=min_area)
    try:
        while True:
            try:
                done, total = next(search)
            except StopIteration as end:
                yield Found(frame, end.value)
                return
            yield Progress(done, total)
    finally:
        search.close()


def undo_division(session: TrackingSession, parent: int) -> Iterator[FrameLabels | Undone | TrackTable]:
    """``session.undo_division(parent)`` (a division linked with ``set_parent`` instead: its daughters and theirs
    are removed), then what changed (:class:`Undone`), the labels of every frame the removed daughters or the
    parent are on, and the track table."""
    lineage = session.lineage
    gone = {parent}
    while grown := {c for c, p in lineage.items() if p in gone} - gone:
        gone |= grown
    removed = sorted(gone - {parent})
    frames = {f for oid in removed for f in session.frames_with_output(oid)}
    try:
        session.undo_division(parent)
    except PromptError:  # a division linked with set_parent (Divide… in the widget, a rebind): its daughters go
        for oid in reversed(removed):
            if oid in session.object_ids:
                session.remove_object(oid)
    yield Undone(parent, removed, session.prompts()[parent])
    for frame in sorted(frames | set(session.frames_with_output(parent))):
        yield FrameLabels(frame, session.frame_labels(frame))
    yield track_table(session)


def export_tracks(session: TrackingSession, csv_path: str, ctc_folder: str,
                  trackmate_path: str | None = None) -> Iterator[Status | Saved]:
    """The track table as CSV, the tracks in CTC format and, if a path is given, as a TrackMate XML file
    (replacing earlier exports of the same names). The label image is made once for both exports."""
    from ..engine.tracking.track_table import write_track_table

    yield Status("Exporting the tracks …")
    write_track_table(csv_path, session.track_table())
    labels = session.labels()
    summary = session.export_ctc(ctc_folder, overwrite=True, labels=labels)
    paths = [csv_path, ctc_folder]
    if trackmate_path is not None:
        session.export_trackmate(trackmate_path, overwrite=True, labels=labels)
        paths.append(trackmate_path)
    what = f"the track table and {len(summary.tracks)} CTC track(s)" + (" (also for TrackMate)" if trackmate_path
                                                                          else "")
    yield Saved(", ".join(paths), what)
