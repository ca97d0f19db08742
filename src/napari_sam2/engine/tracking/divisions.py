"""Automatic divisions: when an object's mask splits into two cells that stay apart, it divided.

The rule (:class:`DivisionRule`), on one object's (H, W) bool masks frame by frame:

* Its **parts** on a frame are the 8-connected components of its mask with at least ``min_area`` pixels;
  smaller components are **fragments** (noise at a mask's edge) and are ignored.
* A split starts on a frame where the object has exactly two parts. It is a **division** when the object
  has exactly two parts on each of the ``frames`` consecutive frames from there (the split frame
  included): touching cells that separate briefly and merge back, and a part that vanishes (or shrinks
  into a fragment) before then, are no division.
* Three or more parts are no division either (a mask that fell apart, or one that covers several cells:
  a case for the user), and they end a split in progress.
* A split that was undone (``rejected`` frames) is not proposed again while the object stays split; if it
  merges and splits again, that is a new proposal.

The daughters start on the split frame from its two parts (first the part whose first pixel comes first
in row-major order). :class:`DivisionWatch` follows one object frame by frame (what a propagation does);
:func:`find_division` and :func:`divisions_in_labels` run it on a whole sequence.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ...errors import PromptError
from ..components import components
from ..prompts import Prompts
from .object_state import FrameOutput

#: Parts smaller than this (pixels) are fragments, by default.
DEFAULT_MIN_AREA = 20

__all__ = ["DEFAULT_MIN_AREA", "Division", "DivisionRule", "DivisionWatch", "Split", "divisions_in_labels",
           "find_division", "parts", "split_masks"]


@dataclass(frozen=True)
class DivisionRule:
    """When a split mask is a division: two parts of at least ``min_area`` pixels on ``frames`` consecutive
    frames (see the module's description)."""

    frames: int = 3
    min_area: int = DEFAULT_MIN_AREA

    def __post_init__(self) -> None:
        for name, least in (("frames", 1), ("min_area", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
                raise PromptError(f"DivisionRule {name} must be an integer >= {least}; got {value!r}.")


@dataclass(frozen=True)
class Split:
    """A division found on one object's masks: it splits on ``frame`` into the two (H, W) bool ``masks``."""

    frame: int
    masks: tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Division:
    """A division of a session: ``parent`` ends on the frame before ``frame``, where ``daughters`` start;
    ``automatic``: found by ``propagate(detect_divisions=...)`` (to be reviewed), not marked by hand."""

    parent: int
    frame: int
    daughters: tuple[int, ...]
    automatic: bool


def parts(mask: npt.ArrayLike, min_area: int = 1) -> list[np.ndarray]:
    """The 8-connected components of an (H, W) bool mask with at least ``min_area`` pixels, as (H, W) bool
    masks, in the row-major order of their first pixel."""
    mask = np.asarray(mask, bool)
    if mask.ndim != 2:
        raise PromptError(f"a mask must be (H, W); got shape {mask.shape}.")
    return components(mask, min_area)


def _centroid(mask: np.ndarray) -> np.ndarray:
    return np.argwhere(mask).mean(axis=0)


def _paired(previous: Sequence[np.ndarray], current: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``current``'s two parts in the order of ``previous``'s (the pairing with the shorter centroid moves)."""
    p = [_centroid(m) for m in previous]
    c = [_centroid(m) for m in current]
    keep = np.hypot(*(p[0] - c[0])) + np.hypot(*(p[1] - c[1]))
    swap = np.hypot(*(p[0] - c[1])) + np.hypot(*(p[1] - c[0]))
    return (current[1], current[0]) if swap < keep else (current[0], current[1])


def split_masks(masks: Mapping[int, npt.ArrayLike], start: Sequence[np.ndarray],
                min_area: int) -> dict[int, tuple[np.ndarray, np.ndarray]] | None:
    """Split each (H, W) mask of ``masks`` (``{frame: mask}``, frames after a split) into its two parts,
    each paired with the daughter it continues (from ``start``, the daughters' masks on the split frame,
    frame by frame). None if a mask does not have exactly two parts of ``min_area`` pixels."""
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    last: Sequence[np.ndarray] = start
    for frame in sorted(masks):
        found = parts(masks[frame], min_area)
        if len(found) != 2:
            return None
        out[frame] = last = _paired(last, found)
    return out


class DivisionWatch:
    """Follows one object's masks, frame after frame, and says when it divided (see the module's rule).

    ``rejected``: split frames that were undone (not proposed again while the object stays split).
    """

    def __init__(self, rule: DivisionRule, rejected: Collection[int] = ()) -> None:
        self.rule = rule
        self.rejected = set(rejected)
        self._start: Split | None = None
        self._count = 0
        self._blocked = False  # split, but not to be proposed (rejected or already reported)
        self._previous: int | None = None

    def update(self, frame: int, mask: npt.ArrayLike) -> Split | None:
        """Take the object's (H, W) bool mask on ``frame`` (the frame after the last one; another frame
        starts over); returns the :class:`Split` on the frame that confirms a division, else None."""
        if self._previous is None or frame != self._previous + 1:
            self._start, self._blocked = None, False
        self._previous = frame
        found = parts(mask, self.rule.min_area)
        if len(found) != 2:
            self._start = None
            if len(found) < 2:
                self._blocked = False  # merged again (or gone): a later split is a new one
            return None
        if self._start is None:
            if self._blocked or frame in self.rejected:
                self._blocked = True
                return None
            self._start, self._count = Split(frame, (found[0], found[1])), 0
        self._count += 1
        if self._count < self.rule.frames:
            return None
        split, self._start, self._blocked = self._start, None, True
        return split


def find_division(masks: Iterable[npt.ArrayLike], rule: DivisionRule, first_frame: int = 0,
                  rejected: Collection[int] = ()) -> Split | None:
    """The first division in one object's (H, W) bool masks on consecutive frames from ``first_frame``."""
    watch = DivisionWatch(rule, rejected)
    for frame, mask in enumerate(masks, start=first_frame):
        split = watch.update(frame, mask)
        if split is not None:
            return split
    return None


def divisions_in_labels(labels: npt.ArrayLike, rule: DivisionRule) -> dict[int, Split]:
    """``{label: first division}`` of each label of a (T, H, W) label sequence (labels without one are left
    out): each label's masks ``labels == label`` through the frames, as :func:`find_division` sees them."""
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise PromptError(f"labels must be (T, H, W); got shape {labels.shape}.")
    out = {}
    for value in np.unique(labels):
        if value == 0:
            continue
        split = find_division((plane == value for plane in labels), rule)
        if split is not None:
            out[int(value)] = split
    return out


@dataclass
class MadeDivision:
    """A division made by :meth:`~.session.TrackingSession.divide`: what
    :meth:`~.session.TrackingSession.undo_division` undoes. ``moved``: the parent's prompts from the split
    on, ``{frame: (prompts, cond, pending, tracked)}``."""

    frame: int
    daughters: tuple[int, int]
    automatic: bool
    moved: dict[int, tuple[Prompts, FrameOutput | None, FrameOutput | None, bool | None]]


@dataclass(frozen=True)
class DivisionPlan:
    """A checked division: daughters' ids and prompts on ``frame``, the parent's later mask prompts split."""

    parent: int
    frame: int
    daughters: tuple[int, int]
    prompts: tuple[Prompts, Prompts]
    later: dict[int, tuple[np.ndarray, np.ndarray]]
    min_area: int
