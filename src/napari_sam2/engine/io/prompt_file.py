"""The annotation file: what was done in a session, to replay it exactly (later, headless, elsewhere).

The same JSON file is written by ``session.save_prompts``, the widget's
*Save prompts…* and read by *Load prompts…*, ``napari-sam2 segment`` and
``napari-sam2 batch``. Version 2 records the session's history (see
:mod:`.history`): prompt edits and propagation runs in the order they
happened, so that replaying it gives the saved session's labels bit for bit
(corrections included). Version 1 files (final prompts only) still load.
Version 3 adds divisions made by ``session.divide`` (automatic ones included)
and their undoing (the ``divide`` and ``undo_division`` entries below); a file
is written as version 3 only when its history holds one, else as version 2.

.. code-block:: json

    {
      "format": "napari-sam2 prompts", "version": 2,
      "frame_shape": [512, 512], "num_frames": 40, "axis": 0,
      "stack": {"shape": [40, 512, 512], "axis": 0, "channel_axis": null, "fixed": {}, "roi": [0, 0, 256, 256]},
      "model": {"name": "sam2.1_hiera_tiny", "precision": "float32"},
      "objects": [{"id": 1, "name": "cell A", "prompts": [{"frame": 3, "points": [[120.0, 85.5]],
                   "labels": [1], "box": null, "mask": null}]}],
      "history": [
        {"op": "prompts", "frame": 3, "object": 1, "points": [[120.0, 85.5]], "labels": [1],
         "box": null, "mask": null},
        {"op": "propagate", "start": 3, "direction": "both", "max_frames": null, "frames": 41},
        {"op": "prompts", "frame": 12, "object": 1, "points": [], "labels": [], "box": null,
         "mask": {"rle": [0, 15, 3, 20], "shape": [512, 512]}},
        {"op": "clear", "frame": 9, "object": 1},
        {"op": "masks", "frame": 0, "objects": [{"object": 7, "mask": {"rle": [5, 3, 9], "shape": [...]}}]},
        {"op": "remove", "object": 2},
        {"op": "parent", "object": 3, "parent": 1},
        {"op": "divide", "object": 1, "frame": 20, "automatic": true, "min_area": 20,
         "daughters": [{"object": 8, "mask": {"rle": [...], "shape": [...]}}, {"object": 9, "mask": {...}}]},
        {"op": "undo_division", "object": 1}
      ]
    }

Coordinates are (row, col) pixels of the frame; a box is (row0, col0, row1,
col1); a mask is run-length encoded in row-major order, starting with a run
of zeros (``rle`` alternates zero and one counts). ``stack.roi`` (optional)
is the region the session tracked in. ``objects`` lists every
object with its name and final prompts; ``model`` says what made the
results (replaying with another model, device or precision gives other
numbers).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ...errors import PromptError
from ..prompts import Prompts, make_prompts
from ..tracking.history import (
    DIRECTIONS,
    ClearPrompts,
    Divide,
    PropagationRun,
    Record,
    RemoveObject,
    SetMasks,
    SetParent,
    SetPrompts,
    UndoDivision,
    final_prompts,
    replaying,
)
from .atomic import write_text

if TYPE_CHECKING:
    from ..tracking.session import TrackingSession

FORMAT = "napari-sam2 prompts"
#: The newest version this napari-sam2 reads and writes (files without divisions are written as version 2).
VERSION = 3


def rle_encode(mask: np.ndarray) -> list[int]:
    """Row-major run lengths of a bool mask, starting with zeros."""
    flat = np.asarray(mask, bool).ravel()
    change = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    return ([0] + runs) if flat.size and flat[0] else runs


def rle_decode(runs: list[int], shape: tuple[int, int]) -> np.ndarray:
    """Inverse of :func:`rle_encode`."""
    if any(int(r) < 0 for r in runs) or sum(runs) != shape[0] * shape[1]:
        raise PromptError(f"mask run lengths add up to {sum(runs)}, not {shape[0]} x {shape[1]} pixels.")
    values = np.arange(len(runs)) % 2 == 1
    return np.repeat(values, runs).reshape(shape)


@dataclass
class ObjectPrompts:
    """One object of a prompt file: its id, display name and (final) prompts per frame."""

    obj_id: int
    name: str = ""
    frames: dict[int, Prompts] = field(default_factory=dict)


@dataclass
class Annotation:
    """A loaded prompt file.

    Attributes:
        frame_shape: (rows, cols) of the frames it was made on.
        num_frames: frames of that stack.
        axis: the propagation axis of that stack (None: a single image).
        stack: the saved :meth:`StackGeometry.as_json <napari_sam2.engine.coords.geometry.StackGeometry.as_json>`
            (None in version 1 files).
        names: ``{obj_id: name}`` for every object.
        history: the records to replay, in order.
        model: what made the results, e.g. ``{"name": ..., "precision": ...}`` (informational).
        version: the file's format version.
    """

    frame_shape: tuple[int, int]
    num_frames: int | None
    axis: int | None
    stack: dict | None
    names: dict[int, str]
    history: list[Record]
    model: dict | None = None
    version: int = VERSION

    def objects(self) -> list[ObjectPrompts]:
        """Every object with its final prompts (objects removed in the history are left out)."""
        final = final_prompts(self.history)
        return [ObjectPrompts(oid, self.names.get(oid, ""), dict(sorted(final[oid].items()))) for oid in final]

    @property
    def has_propagation(self) -> bool:
        return any(isinstance(r, PropagationRun) for r in self.history)

    @property
    def roi(self) -> tuple[int, int, int, int] | None:
        """The region (row0, col0, row1, col1) the session tracked in, or None (the whole frame)."""
        return tuple((self.stack or {}).get("roi") or ()) or None

    def replaying(self, session: TrackingSession) -> Iterator[tuple[str, int]]:
        """Do the recorded work again on ``session`` (see :func:`~.history.replaying`, whose events it yields),
        after checking that the session is on a stack and region the file fits."""
        check_fits(self, session.frame_shape, session.num_frames)
        if self.roi != session.roi:
            raise PromptError(f"The prompt file was made on the region {self.roi} of the frames, this session "
                              f"tracks {session.roi or 'the whole frame'}: open the stack with roi={self.roi} to "
                              f"replay it.")
        yield from replaying(session, self.history)

    def replay(self, session: TrackingSession, on_frame: Callable[[int], None] | None = None) -> None:
        """:meth:`replaying` to the end; ``on_frame(frame)`` for every propagated frame."""
        for kind, frame in self.replaying(session):
            if kind == "frame" and on_frame is not None:
                on_frame(frame)


# ------------------------------------------------------------------ writing
def _prompt_fields(p: Prompts) -> dict:
    return {
        "points": np.asarray(p.points, float).tolist(),
        "labels": np.asarray(p.labels, int).tolist(),
        "box": None if p.box is None else np.asarray(p.box, float).tolist(),
        "mask": None if p.mask is None else {"rle": rle_encode(np.asarray(p.mask) > 0), "shape": list(p.mask.shape)},
    }


def _record_to_json(rec: Record) -> dict:
    if isinstance(rec, SetPrompts):
        return {"op": "prompts", "frame": rec.frame, "object": rec.obj_id, **_prompt_fields(rec.prompts)}
    if isinstance(rec, SetMasks):
        return {"op": "masks", "frame": rec.frame,
                "objects": [{"object": oid, "mask": _prompt_fields(p)["mask"]} for oid, p in rec.prompts.items()]}
    if isinstance(rec, ClearPrompts):
        return {"op": "clear", "frame": rec.frame, "object": rec.obj_id}
    if isinstance(rec, RemoveObject):
        return {"op": "remove", "object": rec.obj_id}
    if isinstance(rec, SetParent):
        return {"op": "parent", "object": rec.child_id, "parent": rec.parent_id}
    if isinstance(rec, Divide):
        return {"op": "divide", "object": rec.parent_id, "frame": rec.frame, "automatic": rec.automatic,
                "min_area": rec.min_area, "daughters": [{"object": d, "mask": _prompt_fields(p)["mask"]}
                                                        for d, p in zip(rec.daughters, rec.masks)]}
    if isinstance(rec, UndoDivision):
        return {"op": "undo_division", "object": rec.parent_id}
    out: dict = {"op": "propagate", "start": rec.start, "direction": rec.direction, "max_frames": rec.max_frames,
           "frames": rec.frames}
    if rec.failed:
        out["failed"] = True
    if rec.stop_absent_after is not None:
        out["stop_absent_after"] = rec.stop_absent_after
    return out


def write_annotation(path: str | Path, annotation: Annotation) -> Path:
    """Write ``annotation`` as a prompt file (UTF-8 JSON; atomically: a temporary file renamed): version 2, or 3
    when its history holds divisions made by ``session.divide``."""
    objects = {o.obj_id: o for o in annotation.objects()}
    ids = list(dict.fromkeys([*annotation.names, *objects]))
    doc = {
        "format": FORMAT, "version": _version_of(annotation.history), "frame_shape": list(annotation.frame_shape),
        "num_frames": annotation.num_frames, "axis": annotation.axis, "stack": annotation.stack,
        "model": annotation.model,
        "objects": [
            {"id": oid, "name": annotation.names.get(oid, ""),
             "prompts": [{"frame": f, **_prompt_fields(p)}
                         for f, p in sorted(objects[oid].frames.items())] if oid in objects else []}
            for oid in ids
        ],
        "history": [_record_to_json(r) for r in annotation.history],
    }
    path = write_text(path, json.dumps(doc, indent=1))
    return path


def _version_of(history: list[Record]) -> int:
    """The oldest file version that holds ``history`` (3 for divisions, else 2, which older napari-sam2 read)."""
    return 3 if any(isinstance(r, (Divide, UndoDivision)) for r in history) else 2


def session_annotation(session: TrackingSession, names: dict[int, str] | None = None,
                       model: dict | None = None) -> Annotation:
    """The history of ``session`` as an :class:`Annotation` (what ``session.save_prompts`` writes)."""
    geo = session.geometry
    names = {int(k): str(v) for k, v in (names or {}).items()}
    for rec in session.history:  # every object the history touches, removed ones too
        if isinstance(rec, SetPrompts):
            names.setdefault(rec.obj_id, "")
        elif isinstance(rec, SetMasks):
            for oid in rec.prompts:
                names.setdefault(oid, "")
        elif isinstance(rec, Divide):
            for oid in rec.daughters:
                names.setdefault(oid, "")
    if model is None:
        seg = session.segmenter
        model = {"name": seg.variant, "precision": seg.precision, "device": str(seg.device)}
    stack = geo.as_json()
    if session.roi is not None:
        stack["roi"] = list(session.roi)
    return Annotation(geo.frame_hw, geo.num_frames, geo.axis, stack, names, list(session.history), model)


def save_prompts(path: str | Path, objects: list[ObjectPrompts], frame_shape: tuple[int, int], num_frames: int,
                 axis: int | None = 0) -> None:
    """Write ``objects`` (prompts without a history) as a prompt file; replaying sets them in frame order."""
    history: list[Record] = [SetPrompts(f, o.obj_id, p) for o in objects for f, p in sorted(o.frames.items())]
    names = {o.obj_id: o.name for o in objects}
    hw = (int(frame_shape[0]), int(frame_shape[1]))
    write_annotation(path, Annotation(hw, int(num_frames), axis, None, names, history))


# ------------------------------------------------------------------ reading
def _prompts_from_json(p: dict, hw: tuple[int, int]) -> Prompts:
    mask = None
    if p.get("mask"):
        mask = rle_decode(p["mask"]["rle"], tuple(p["mask"]["shape"]))
    pts = p.get("points") or None
    return make_prompts(hw, pts, p.get("labels") if pts else None, p.get("box"), mask)


def _int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PromptError(f"{what} must be an integer; got {value!r}.")
    return value


def _record_from_json(r: dict, hw: tuple[int, int]) -> Record:
    op = r.get("op")
    if op == "prompts":
        return SetPrompts(_int(r["frame"], "frame"), _int(r["object"], "object"), _prompts_from_json(r, hw))
    if op == "masks":
        return SetMasks(_int(r["frame"], "frame"), {
            _int(o["object"], "object"): _prompts_from_json({"mask": o["mask"]}, hw) for o in r["objects"]})
    if op == "clear":
        obj = r.get("object")
        return ClearPrompts(_int(r["frame"], "frame"), None if obj is None else _int(obj, "object"))
    if op == "remove":
        return RemoveObject(_int(r["object"], "object"))
    if op == "parent":
        parent = r.get("parent")
        return SetParent(_int(r["object"], "object"), None if parent is None else _int(parent, "parent"))
    if op == "divide":
        daughters = r["daughters"]
        if len(daughters) != 2:
            raise PromptError(f"a division has two daughters; got {len(daughters)}.")
        ids = tuple(_int(d["object"], "object") for d in daughters)
        masks = tuple(_prompts_from_json({"mask": d["mask"]}, hw) for d in daughters)
        return Divide(_int(r["object"], "object"), _int(r["frame"], "frame"), (ids[0], ids[1]), (masks[0], masks[1]),
                      bool(r.get("automatic", False)), _int(r.get("min_area", 1), "min_area"))
    if op == "undo_division":
        return UndoDivision(_int(r["object"], "object"))
    if op == "propagate":
        if r.get("direction") not in DIRECTIONS:
            raise PromptError(f"propagation direction {r.get('direction')!r} is not one of {DIRECTIONS}.")
        mf = r.get("max_frames")
        stop = r.get("stop_absent_after")
        return PropagationRun(_int(r["start"], "start"), r["direction"], None if mf is None else _int(mf, "max_frames"),
                              _int(r.get("frames", 0), "frames"), bool(r.get("failed", False)),
                              None if stop is None else _int(stop, "stop_absent_after"))
    raise PromptError(f"unknown history entry {op!r}.")


def check_fits(annotation: Annotation, frame_shape: tuple[int, int] | None, num_frames: int | None,
               path: str | Path = "The prompt file") -> None:
    """Raise :class:`PromptError` if ``annotation`` was made for another stack (or points past its end)."""
    if frame_shape is not None and tuple(frame_shape) != tuple(annotation.frame_shape):
        raise PromptError(f"{path} was made for frames of {tuple(annotation.frame_shape)}, but this stack's frames "
                          f"are {tuple(frame_shape)}.")
    if num_frames is not None and annotation.num_frames not in (None, num_frames):
        raise PromptError(f"{path} was made for {annotation.num_frames} frames, but this stack has {num_frames}.")
    limit = num_frames if num_frames is not None else annotation.num_frames
    if limit is None:
        return
    for rec in annotation.history:
        frame = getattr(rec, "frame", getattr(rec, "start", None))
        if frame is not None and not 0 <= frame < limit:
            obj_id = getattr(rec, "obj_id", None)
            what = f"object {obj_id}" if obj_id is not None else "a propagation"
            raise PromptError(f"{path}: frame {frame} ({what}) is outside the stack's {limit} frames (0 ... "
                              f"{limit - 1}).")


def load_annotation(path: str | Path, frame_shape: tuple[int, int] | None = None,
                    num_frames: int | None = None) -> Annotation:
    """Read a prompt file (version 1, 2 or 3); checks it against the stack when ``frame_shape``/``num_frames``
    are given. Raises :class:`~napari_sam2.errors.PromptError` saying what is wrong."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise PromptError(f"The prompt file {path} does not exist.") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PromptError(f"Cannot read the prompt file {path}: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise PromptError(f"{path} is not a napari-sam2 prompt file (no '\"format\": \"{FORMAT}\"').")
    version = doc.get("version", 0)
    if not isinstance(version, int) or not 1 <= version <= VERSION:
        raise PromptError(f"{path} has prompt-file version {version!r}; this napari-sam2 reads versions 1 to "
                          f"{VERSION}. Update napari-sam2 for newer files.")
    try:
        hw = tuple(int(v) for v in doc["frame_shape"])
        if len(hw) != 2:
            raise PromptError(f"frame_shape must be (rows, cols); got {doc['frame_shape']!r}.")
        if frame_shape is not None and tuple(frame_shape) != hw:
            raise PromptError(f"made for frames of {hw}, but this stack's frames are {tuple(frame_shape)}.")
        names: dict[int, str] = {}
        history: list[Record] = []
        prompted: set[int] = set()
        for o in doc["objects"]:
            oid = _int(o["id"], "object id")
            names[oid] = str(o.get("name") or "")
            if version == 1:
                for p in o["prompts"]:
                    history.append(SetPrompts(_int(p["frame"], "frame"), oid, _prompts_from_json(p, hw)))
        if version == 1:
            # version 1 holds SetPrompts only; sorted as apply_prompts set them
            history.sort(key=lambda r: (r.frame, list(names).index(r.obj_id)))  # type: ignore[union-attr,arg-type]
        else:
            history = [_record_from_json(r, hw) for r in doc["history"]]
        prompted = {r.obj_id for r in history if isinstance(r, SetPrompts)}
        prompted |= {oid for r in history if isinstance(r, SetMasks) for oid in r.prompts}
        prompted |= {oid for r in history if isinstance(r, Divide) for oid in r.daughters}
        unprompted = [oid for oid in names if oid not in prompted]
        if unprompted:
            raise PromptError(f"object(s) {unprompted} have no prompt on any frame; prompt them or delete them "
                              f"from the file.")
        annotation = Annotation(hw, doc.get("num_frames"), doc.get("axis"), doc.get("stack"), names, history,
                                doc.get("model"), version)
    except PromptError as exc:
        raise PromptError(f"{path}: {exc}") from exc
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise PromptError(f"{path} is damaged: {type(exc).__name__}: {exc}") from exc
    check_fits(annotation, frame_shape, num_frames, path)
    return annotation


def load_prompts(path: str | Path, frame_shape: tuple[int, int] | None = None,
                 num_frames: int | None = None) -> list[ObjectPrompts]:
    """The objects of a prompt file with their final prompts (see :func:`load_annotation` for the history)."""
    return load_annotation(path, frame_shape, num_frames).objects()


def session_objects(session: TrackingSession, names: dict[int, str] | None = None) -> list[ObjectPrompts]:
    """The prompts of a tracking session as :class:`ObjectPrompts` (for :func:`save_prompts`)."""
    names = names or {}
    return [ObjectPrompts(oid, names.get(oid, ""), frames) for oid, frames in session.prompts().items()]


def apply_prompts(session: TrackingSession, objects: list[ObjectPrompts]) -> None:
    """Set every prompt of ``objects`` on ``session`` (frame order, object order)."""
    for obj in objects:
        for frame, p in sorted(obj.frames.items()):
            session.set_prompts(frame, obj.obj_id, prompts=p)
