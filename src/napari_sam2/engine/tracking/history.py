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
from typing import TYPE_CHECKING

import numpy as np

from ..prompts import Prompts, make_prompts
from .divisions import split_masks
from .lineage import Lineage

if TYPE_CHECKING:
    from .session import TrackingSession

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


@dataclass(frozen=True)
class Divide:
    """``session.divide(parent_id, frame, masks, daughter_ids=daughters, automatic=..., min_area=...)``: a
    division into two daughters prompted with ``masks`` on ``frame`` (``automatic``: found by
    ``propagate(detect_divisions=...)``; the parent's later mask prompts are split between the daughters
    by their parts of ``min_area`` pixels)."""

    parent_id: int
    frame: int
    daughters: tuple[int, int]
    masks: tuple[Prompts, Prompts]
    automatic: bool = False
    min_area: int = 1


@dataclass(frozen=True)
class UndoDivision:
    """``session.undo_division(parent_id)``: the daughters of a :class:`Divide` (and theirs) are gone, the
    parent has its prompts back, and the split frame is not divided automatically again."""

    parent_id: int


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


Record = SetPrompts | SetMasks | ClearPrompts | RemoveObject | SetParent | Divide | UndoDivision | PropagationRun


def replaying(session: TrackingSession, records: Iterable[Record]) -> Iterator[tuple[str, int]]:
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
        elif isinstance(rec, Divide):
            session.divide(rec.parent_id, rec.frame, rec.masks, daughter_ids=rec.daughters, automatic=rec.automatic,
                           min_area=rec.min_area)
            yield "prompt", rec.frame
        elif isinstance(rec, UndoDivision):
            session.undo_division(rec.parent_id)
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
    return _final(records)[1]


def final_prompts(records: Iterable[Record]) -> dict[int, dict[int, Prompts]]:
    """The prompts the records leave: ``{obj_id: {frame: Prompts}}``."""
    return _final(records)[0]


def descendants(parents: dict[int, int], obj_id: int) -> list[int]:
    """Every daughter of ``obj_id``, their daughters and so on (``parents``: ``{daughter: parent}``)."""
    out: list[int] = []
    todo = [obj_id]
    while todo:
        children = sorted(c for c, p in parents.items() if p == todo[0])
        out += children
        todo = todo[1:] + children
    return out


def _final(records: Iterable[Record]) -> tuple[dict[int, dict[int, Prompts]], dict[int, int]]:
    """The prompts and the lineage the records leave."""
    out: dict[int, dict[int, Prompts]] = {}
    lineage = Lineage()
    moved: dict[int, dict[int, Prompts]] = {}  # a Divide's parent: the prompts it gave its daughters
    for rec in records:
        if isinstance(rec, SetParent):
            lineage.link(rec.child_id, rec.parent_id)
        elif isinstance(rec, Divide):
            mine = out.setdefault(rec.parent_id, {})
            later = {f: p for f, p in mine.items() if f >= rec.frame}
            halves = split_masks({f: p.mask for f, p in later.items() if p.mask is not None},
                                 [np.asarray(m.mask) for m in rec.masks], rec.min_area) or {}
            moved[rec.parent_id] = later
            for f in later:
                del mine[f]
            for i, child in enumerate(rec.daughters):
                out[child] = {rec.frame: rec.masks[i],
                              **{f: make_prompts(p.hw or halves[f][i].shape, mask=halves[f][i])
                                 for f, p in later.items() if f in halves}}
                lineage.link(child, rec.parent_id)
        elif isinstance(rec, UndoDivision):
            for child in descendants(lineage.parents, rec.parent_id):
                out.pop(child, None)
                lineage.drop(child)
            out.setdefault(rec.parent_id, {}).update(moved.pop(rec.parent_id, {}))
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
            lineage.drop(rec.obj_id)
    return out, lineage.parents
