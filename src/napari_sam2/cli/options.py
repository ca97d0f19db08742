"""How to segment a stack: the settings of ``napari-sam2 segment`` and ``batch`` as one frozen object.

:class:`SegmentOptions` holds everything :func:`~napari_sam2.cli.segment.segment_file` needs besides its
paths (stack, prompt file, seed labels, outputs): the model, the frame geometry and region, overwriting.
The command line builds one from its arguments; a batch hands one to every row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..engine.automatic import FindOptions
    from ..engine.segmenter import Segmenter
    from ..engine.tracking.divisions import DivisionRule

__all__ = ["DEFAULT_MODEL", "SegmentOptions"]

#: The checkpoint used when none is named.
DEFAULT_MODEL = "sam2.1_hiera_tiny"


@dataclass(frozen=True)
class SegmentOptions:
    """The settings of one segmentation (all optional; the defaults are the command line's).

    Attributes:
        model: checkpoint name or ``.pt`` path, or an already loaded :class:`~napari_sam2.Segmenter`
            (only for :func:`~napari_sam2.cli.segment.segment_file`; a batch loads the model on each worker).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` or None (automatic), as for
            :func:`~napari_sam2.load_model` (ignored for a loaded model). In a batch, ``"cuda"`` and None give
            each worker its own GPU where the machine has several.
        dtype: precision, as for :func:`~napari_sam2.load_model` (ignored for a loaded model).
        axis: the frame axis (``"t"``, ``"z"`` or a number); None: as saved in the prompt file.
        planes: ``{axis: index}`` for extra axes to hold still (4-D / 5-D stacks).
        roi: (row0, col0, row1, col1): track in this region at the model's full resolution; None: the region
            the prompt file was saved with, if any.
        seed_frame: the frame that seed labels belong to, and that ``auto_seeds`` searches.
        overwrite: replace existing outputs (a batch always does; see :mod:`~napari_sam2.cli.batch`).
        workdir: folder for the session's temporary files.
        detect_divisions: divide objects whose masks split (a
            :class:`~napari_sam2.engine.tracking.divisions.DivisionRule`), see docs/tracking.md; None: never.
        auto_seeds: find every object on ``seed_frame`` with SAM 2's automatic mask generator, searching as
            these :class:`~napari_sam2.engine.automatic.FindOptions` say (after the prompt file's replay; the
            objects found get fresh ids), and track them; None: no search.
        min_area: with ``auto_seeds``, objects found with fewer pixels than this are dropped.
    """

    model: str | Path | Segmenter = DEFAULT_MODEL
    device: str | None = None
    dtype: str | None = None
    axis: str | int | None = None
    planes: Mapping[int, int] = field(default_factory=dict)
    roi: tuple[int, int, int, int] | None = None
    seed_frame: int = 0
    overwrite: bool = False
    workdir: str | Path | None = None
    detect_divisions: DivisionRule | None = None
    auto_seeds: FindOptions | None = None
    min_area: int = 0

    def updated(self, **changes: Any) -> SegmentOptions:
        """A copy with ``changes`` (option names as keywords); TypeError names any unknown option."""
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            raise TypeError(f"unknown segmentation option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                            f"the options are {', '.join(f.name for f in fields(self))}.")
        return replace(self, **changes) if changes else self

    @classmethod
    def of(cls, options: SegmentOptions | None, **changes: Any) -> SegmentOptions:
        """``options`` (default: ``SegmentOptions()``) with ``changes``: how the entry points take both forms."""
        return (cls() if options is None else options).updated(**changes)
