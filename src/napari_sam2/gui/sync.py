"""The prompts in the widget's layers, and which of them the engine has not seen yet.

After every edit of the prompt layers, :meth:`PromptSync.read` turns their
content into checked :class:`~napari_sam2.engine.prompts.Prompts` per
(frame, object) (:func:`~.layers.collect`) and compares them with what was
last sent to the engine. Every (frame, object) that differs must be sent
again (``set_prompts``) or cleared (``clear_prompts``). No Qt here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..engine.coords.geometry import StackGeometry
from ..engine.prompts import CroppedMask, Prompts
from .layers import Key, collect

if TYPE_CHECKING:
    from napari.layers import Points, Shapes


@dataclass
class PromptSync:
    """What the layers say, what the engine was told, and the notes about ignored prompts.

    Attributes:
        masks: mask prompts (painted, or seeds from labels), ``{(frame, obj_id): (H, W) bool}`` (an array, or a
            :class:`~napari_sam2.engine.prompts.CroppedMask`).
        prompts: the prompts as the layers are now.
        applied: the prompts as last sent to the engine.
        notes: the notes of the last read (each is shown once).
        edits: counts changes sent to the engine (a cancelled propagation resumes only if none came since).
    """

    masks: dict[Key, np.ndarray | CroppedMask] = field(default_factory=dict)
    prompts: dict[Key, Prompts] = field(default_factory=dict)
    applied: dict[Key, Prompts] = field(default_factory=dict)
    notes: set[str] = field(default_factory=set)
    edits: int = 0

    def read(self, points: Points | None, shapes: Shapes | None, geometry: StackGeometry
             ) -> tuple[list[Key], list[str]]:
        """Read the layers (None: a layer that is missing); returns the changed (frame, object) keys (now
        counted as sent) and new notes."""
        self.prompts, notes = collect(points, shapes, geometry, self.masks)
        fresh = sorted(set(notes) - self.notes)
        self.notes = set(notes)
        changed = sorted(k for k in set(self.prompts) | set(self.applied)
                         if k not in self.prompts or not self.prompts[k].same_as(self.applied.get(k)))
        for key in changed:
            if key in self.prompts:
                self.applied[key] = self.prompts[key]
            else:
                self.applied.pop(key, None)
        return changed, fresh

    def object_ids(self) -> set[int]:
        return {k[1] for k in self.prompts}

    def prompted_frames(self) -> list[int]:
        return sorted({k[0] for k in self.prompts})

    def forget_object(self, obj_id: int) -> None:
        for table in (self.masks, self.prompts, self.applied):
            for key in [k for k in table if k[1] == obj_id]:
                del table[key]

    def keep_masks_for(self, geometry: StackGeometry) -> None:
        """Drop mask prompts that do not fit ``geometry`` (another image or axis)."""
        self.masks = {k: m for k, m in self.masks.items()
                      if k[0] < geometry.num_frames and m.shape == geometry.frame_hw}
