"""Prompts as a JSON file: save an annotation, reproduce or continue it later.

The same file is written by the napari widget and read by the command line.

.. code-block:: json

    {
      "format": "napari-sam2 prompts", "version": 1,
      "frame_shape": [512, 512], "num_frames": 40, "axis": 0,
      "objects": [
        {"id": 1, "name": "cell A",
         "prompts": [
           {"frame": 3, "points": [[120.0, 85.5]], "labels": [1], "box": null, "mask": null},
           {"frame": 9, "points": [], "labels": [], "box": [10, 20, 60, 90], "mask": null},
           {"frame": 12, "points": [], "labels": [], "box": null,
            "mask": {"rle": [0, 15, 3, 20], "shape": [512, 512]}}
         ]}
      ]
    }

Coordinates are (row, col) pixels of the frame; a box is (row0, col0, row1,
col1); a mask is run-length encoded in row-major order, starting with a run
of zeros (``rle`` alternates zero and one counts).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import PromptError
from .prompts import Prompts

FORMAT = "napari-sam2 prompts"
VERSION = 1


def rle_encode(mask: np.ndarray) -> list[int]:
    """Row-major run lengths of a bool mask, starting with zeros."""
    flat = np.asarray(mask, bool).ravel()
    change = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    return ([0] + runs) if flat.size and flat[0] else runs


def rle_decode(runs: list[int], shape: tuple[int, int]) -> np.ndarray:
    """Inverse of :func:`rle_encode`."""
    if sum(runs) != shape[0] * shape[1]:
        raise PromptError(f"mask run lengths add up to {sum(runs)}, not {shape[0]} x {shape[1]} pixels.")
    values = np.arange(len(runs)) % 2 == 1
    return np.repeat(values, runs).reshape(shape)


@dataclass
class ObjectPrompts:
    """One object of a prompt file: its id, display name and prompts per frame."""

    obj_id: int
    name: str = ""
    frames: dict[int, Prompts] = field(default_factory=dict)


def _prompt_to_json(frame: int, p: Prompts) -> dict:
    return {
        "frame": int(frame),
        "points": np.asarray(p.points, float).tolist(),
        "labels": np.asarray(p.labels, int).tolist(),
        "box": None if p.box is None else np.asarray(p.box, float).tolist(),
        "mask": None if p.mask is None else {"rle": rle_encode(np.asarray(p.mask) > 0), "shape": list(p.mask.shape)},
    }


def save_prompts(path: str | Path, objects: list[ObjectPrompts], frame_shape: tuple[int, int], num_frames: int,
                 axis: int | None = 0) -> None:
    """Write ``objects`` as a prompt file (UTF-8 JSON)."""
    doc = {
        "format": FORMAT, "version": VERSION, "frame_shape": list(frame_shape), "num_frames": int(num_frames),
        "axis": axis,
        "objects": [
            {"id": o.obj_id, "name": o.name, "prompts": [_prompt_to_json(f, p) for f, p in sorted(o.frames.items())]}
            for o in objects
        ],
    }
    Path(path).write_text(json.dumps(doc, indent=1), encoding="utf-8")


def load_prompts(path: str | Path, frame_shape: tuple[int, int] | None = None,
                 num_frames: int | None = None) -> list[ObjectPrompts]:
    """Read a prompt file; checks it against the stack geometry when given."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PromptError(f"Cannot read the prompt file {path}: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise PromptError(f"{path} is not a napari-sam2 prompt file (no '\"format\": \"{FORMAT}\"').")
    if doc.get("version", 0) > VERSION:
        raise PromptError(f"{path} has prompt-file version {doc['version']}; this napari-sam2 reads up to {VERSION}. "
                          f"Update napari-sam2.")
    shape = tuple(doc.get("frame_shape", ()))
    if frame_shape is not None and shape and tuple(frame_shape) != shape:
        raise PromptError(f"{path} was made for frames of {shape}, but this stack's frames are {tuple(frame_shape)}.")
    if num_frames is not None and doc.get("num_frames") not in (None, num_frames):
        raise PromptError(f"{path} was made for {doc['num_frames']} frames, but this stack has {num_frames}.")
    from .prompts import make_prompts

    objects = []
    try:
        for o in doc["objects"]:
            obj = ObjectPrompts(int(o["id"]), str(o.get("name", "")))
            for p in o["prompts"]:
                mask = None
                if p.get("mask"):
                    mask = rle_decode(p["mask"]["rle"], tuple(p["mask"]["shape"]))
                hw = shape or (mask.shape if mask is not None else None)
                if hw is None:
                    raise PromptError("the file has no frame_shape")
                pts = p.get("points") or None
                obj.frames[int(p["frame"])] = make_prompts(hw, pts, p.get("labels") if pts else None, p.get("box"),
                                                           mask)
            objects.append(obj)
    except PromptError as exc:
        raise PromptError(f"{path}: {exc}") from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise PromptError(f"{path} is damaged: {type(exc).__name__}: {exc}") from exc
    return objects


def session_objects(session, names: dict[int, str] | None = None) -> list[ObjectPrompts]:
    """The prompts of a tracking session as :class:`ObjectPrompts` (for :func:`save_prompts`)."""
    names = names or {}
    return [ObjectPrompts(oid, names.get(oid, ""), frames) for oid, frames in session.prompts().items()]


def apply_prompts(session, objects: list[ObjectPrompts]) -> None:
    """Set every prompt of ``objects`` on ``session`` (frame order, object order)."""
    for obj in objects:
        for frame, p in sorted(obj.frames.items()):
            session.set_prompts(frame, obj.obj_id, points=p.points if len(p.points) else None,
                                labels=p.labels if len(p.points) else None, box=p.box, mask=p.mask)
