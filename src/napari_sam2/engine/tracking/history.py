"""What was done in a tracking session, in order, so that it can be done again exactly.

A :class:`~napari_sam2.engine.tracking.session.TrackingSession` appends one record per
call that changes its results: prompts set or cleared, objects removed, and
propagation runs (with the number of frames they actually computed, so that a
run stopped early replays as far as it went). Replaying the records on a new
session of the same stack, with the same model, device and precision, gives
bit-identical results: corrections stay corrections, because they are
replayed after the propagation that preceded them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ..prompts import Prompts
from .lineage import Lineage

#: The directions of a propagation run.
DIRECTIONS = ("forward", "backward", "both")


@dataclass(frozen=True)
class SetPrompts:
    """``session.set_prompts(frame, obj_id, prompts=prompts)``."""

    frame: int
    obj_id: int
    prompts: Prompts


@dataclass(frozen=True)
class SetMasks:
    """``session.set_mask_prompts(frame, prompts)``: mask prompts of many objects at once (e.g. seeds from
    a label image), ``{obj_id: Prompts}``."""

    frame: int
    prompts: dict[int, Prompts]


@dataclass(frozen=True)
class ClearPrompts:
    """``session.clear_prompts(frame, obj_id)`` (``obj_id`` None: every object)."""

    frame: int
    obj_id: int | None


@dataclass(frozen=True)
class RemoveObject:
    """``session.remove_object(obj_id)``."""

    obj_id: int


@dataclass(frozen=True)
class SetParent:
    """``session.set_parent(child_id, parent_id)`` (a division; ``parent_id`` None removes it)."""

    child_id: int
    parent_id: int | None


@dataclass
class PropagationRun:
    """``session.propagate(start, direction, max_frames)``, of which ``frames`` results were taken.

    ``start`` is the resolved first frame (never None); ``failed``: the run ended with an error
    (e.g. a frame with NaN pixels) after ``frames`` results.
    """

    start: int
    direction: str
    max_frames: int | None
    frames: int = 0
    failed: bool = False
    stop_absent_after: int | None = None


Record = SetPrompts | SetMasks | ClearPrompts | RemoveObject | SetParent | PropagationRun


def replaying(session, records: Iterable[Record]) -> Iterator[tuple[str, int]]:
    """Do ``records`` again on ``session``, in order, yielding what changed: ``("prompt", frame)``
    after a prompt edit, ``("frame", frame)`` for every propagated frame. Closing the generator
    early leaves the session consistent (as far as it got)."""
    for rec in records:
        if isinstance(rec, SetPrompts):
            session.set_prompts(rec.frame, rec.obj_id, prompts=rec.prompts)
            yield "prompt", rec.frame
        elif isinstance(rec, SetMasks):
            session.set_mask_prompts(rec.frame, rec.prompts, masks_out=False)
            yield "prompt", rec.frame
        elif isinstance(rec, ClearPrompts):
            session.clear_prompts(rec.frame, rec.obj_id)
            yield "prompt", rec.frame
        elif isinstance(rec, RemoveObject):
            session.remove_object(rec.obj_id)
        elif isinstance(rec, SetParent):
            session.set_parent(rec.child_id, rec.parent_id)
        elif isinstance(rec, PropagationRun):
            run = session.propagate(start=rec.start, direction=rec.direction, max_frames=rec.max_frames,
                                    stop_absent_after=rec.stop_absent_after)
            try:
                for _ in range(rec.frames):
                    frame, _masks = next(run)
                    yield "frame", frame
                if rec.frames == 0:  # a run that yields nothing still commits the pending prompts
                    try:
                        next(run, None)
                    except Exception:
                        if not rec.failed:
                            raise
            finally:
                run.close()
        else:
            raise TypeError(f"not a history record: {rec!r}")


def final_lineage(records: Iterable[Record]) -> dict[int, int]:
    """The ``{daughter id: parent id}`` links the records leave."""
    lineage = Lineage()
    for rec in records:
        if isinstance(rec, SetParent):
            lineage.link(rec.child_id, rec.parent_id)
        elif isinstance(rec, RemoveObject):
            lineage.drop(rec.obj_id)
    return lineage.parents


def final_prompts(records: Iterable[Record]) -> dict[int, dict[int, Prompts]]:
    """The prompts the records leave: ``{obj_id: {frame: Prompts}}``."""
    out: dict[int, dict[int, Prompts]] = {}
    for rec in records:
        if isinstance(rec, SetPrompts):
            out.setdefault(rec.obj_id, {})[rec.frame] = rec.prompts
        elif isinstance(rec, SetMasks):
            for oid, p in rec.prompts.items():
                out.setdefault(oid, {})[rec.frame] = p
        elif isinstance(rec, ClearPrompts):
            for oid, frames in out.items():
                if rec.obj_id is None or oid == rec.obj_id:
                    frames.pop(rec.frame, None)
        elif isinstance(rec, RemoveObject):
            out.pop(rec.obj_id, None)
    return out
