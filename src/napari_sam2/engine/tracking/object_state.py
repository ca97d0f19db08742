"""Per-object tracking state, as small dataclasses."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import torch

from ..prompts import Prompts


@dataclass
class FrameOutput:
    """The model's result for one object on one frame.

    ``lowres`` (1, 1, s, s) float32 logits, or None while parked in the
    :class:`~napari_sam2.engine.storage.logits.LogitStore`; ``obj_ptr`` (1, C);
    ``object_score`` (1, 1) presence logit; ``memory`` (1, mem_dim, G, G)
    bfloat16 or None when not (or no longer) held; ``from_prompt`` marks
    outputs of user prompts (their masks are binarised for the memory).
    ``iou`` (1, 1) the decoder's predicted IoU; ``stats`` (area in pixels,
    centroid row, centroid col) of the mask at the frame's resolution, set
    when the mask is computed.
    ``serial`` is unique to this output (a new result is a new serial);
    ``inputs`` names, by serial, the memories and pointers a tracked output
    was computed from, so that a later pass can tell it would compute the
    very same thing again.
    """

    lowres: torch.Tensor | None
    obj_ptr: torch.Tensor
    object_score: torch.Tensor
    memory: torch.Tensor | None = None
    from_prompt: bool = False
    inputs: tuple | None = None
    iou: torch.Tensor | None = None
    stats: tuple[int, float, float] | None = None
    exact: object | None = None  # an (H, W) mask that is this output's result at frame resolution (seeds)
    serial: int = field(default_factory=itertools.count(1).__next__)


@dataclass
class ObjectTrack:
    """Everything known about one object.

    ``cond`` holds conditioning frames (frames the user prompted, in the
    order they were committed), ``tracked`` the frames propagation reached
    (value: reached in reverse), ``pending`` prompt results not yet committed
    to memory (they are, at the start of the next propagation).
    """

    prompts: dict[int, Prompts] = field(default_factory=dict)
    cond: dict[int, FrameOutput] = field(default_factory=dict)
    noncond: dict[int, FrameOutput] = field(default_factory=dict)
    pending: dict[int, FrameOutput] = field(default_factory=dict)
    tracked: dict[int, bool] = field(default_factory=dict)

    def latest(self, frame: int) -> FrameOutput | None:
        """The newest output on ``frame``: pending, else conditioning, else tracked."""
        for table in (self.pending, self.cond, self.noncond):
            out = table.get(frame)
            if out is not None:
                return out
        return None

    def frames_with_output(self) -> set[int]:
        return set(self.pending) | set(self.cond) | set(self.noncond)
