"""Headless segmentation of one stack file from a prompt file: what ``napari-sam2 segment`` runs.

The steps are the engine's, in order: read the stack lazily
(:mod:`~napari_sam2.engine.io.stack_files`), read the prompt file
(:mod:`~napari_sam2.engine.io.prompt_file`), open a session with the geometry
the file was saved with, replay its history (exactly), optionally find objects on the seed frame
(:mod:`~napari_sam2.engine.automatic`), write the labels
(:mod:`~napari_sam2.engine.io.label_files`, atomically).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..engine.coords.geometry import StackGeometry
from ..engine.io.label_files import label_format, write_labels
from ..engine.io.prompt_file import Annotation, check_fits, load_annotation
from ..engine.io.stack_files import read_stack
from ..engine.storage.labels import LabelOutput
from ..engine.tracking.history import PropagationRun
from ..errors import ImageDataError, OutputError, PromptError
from .options import SegmentOptions

if TYPE_CHECKING:
    import numpy as np

    from ..engine.tracking.session import TrackingSession

#: Axis letters that name a propagation axis, in order of preference.
TRACK_LETTERS = ("T", "Z")


@dataclass(frozen=True)
class SegmentResult:
    """What :func:`segment_file` wrote: the output, the number of distinct frames propagated (a frame
    computed again after a correction counts once), the wall time."""

    output: Path
    frames: int
    seconds: float
    propagated_extra: bool  # the file recorded no propagation, so one over the whole stack was run
    found: int = 0  # objects found on the seed frame (``auto_seeds``)


def resolve_axis(axis: str | int | None, axes: str | None, ndim: int) -> int | None:
    """The propagation axis from ``--axis`` (``t``, ``z`` or a number) and the file's axis letters."""
    if axis is None:
        return None
    if isinstance(axis, int) or str(axis).lstrip("-").isdigit():
        ax = int(axis)
        if not -ndim <= ax < ndim:
            raise ImageDataError(f"--axis {ax} does not exist: the stack has {ndim} axes (0 ... {ndim - 1}).")
        return ax % ndim
    letter = str(axis).strip().upper()[:1]
    if axes is None or letter not in axes:
        raise ImageDataError(f"--axis {axis}: the stack's axes are {axes or 'not named in the file'}; give the "
                             f"axis as a number instead (0 ... {ndim - 1}).")
    return axes.index(letter)


def run_frames(run: PropagationRun, num_frames: int) -> set[int]:
    """The frames a recorded propagation run gave results on: its first ``run.frames`` frames in the
    order ``session.propagate`` visits them (forward from ``start``, backward from it, or both)."""
    reach = num_frames if run.max_frames is None else int(run.max_frames)
    start = run.start
    forward = list(range(start, min(start + reach, num_frames - 1) + 1))
    backward = list(range(start, max(start - reach, 0) - 1, -1)) if start > 0 else []
    order = {"forward": forward, "backward": backward, "both": forward + backward}[run.direction]
    return set(order[: run.frames])


def stack_geometry(shape: tuple[int, ...], axes: str | None, annotation: Annotation | None,
                   axis: str | int | None = None, planes: dict[int, int] | None = None) -> StackGeometry:
    """Where the frames are: ``--axis``/``--plane`` if given, else as the prompt file was saved, else
    from the file's axis letters (T, then Z; C is the channel axis)."""
    ndim = len(shape)
    chosen = resolve_axis(axis, axes, ndim)
    saved = annotation.stack if annotation is not None and annotation.stack and \
        tuple(annotation.stack.get("shape", ())) == tuple(shape) else None
    channel = axes.index("C") if axes and "C" in axes else None
    fixed = dict(planes or {})
    if saved is not None:
        channel = saved.get("channel_axis")
        fixed = {**{int(a): int(i) for a, i in (saved.get("fixed") or {}).items()}, **fixed}
        if chosen is None and saved.get("axis") is not None:
            chosen = int(saved["axis"])
    if chosen is None:
        letters = [axes.index(x) for x in TRACK_LETTERS if axes and x in axes]
        chosen = letters[0] if letters else (annotation.axis if annotation and annotation.axis is not None else 0)
    try:
        return StackGeometry.resolve(shape, chosen, channel, fixed)
    except ImageDataError as exc:
        raise ImageDataError(f"{exc} On the command line: --axis t|z|N chooses the frame axis and --plane "
                             f"AXIS=INDEX holds an extra axis still.") from None


def output_axes(geometry: StackGeometry, axes: str | None) -> str:
    """Axis letters of the (T, H, W) label image: the frame axis' letter (T unless the file says Z)."""
    if geometry.axis is None:
        return "YX"
    letter = axes[geometry.axis] if axes and axes[geometry.axis] in TRACK_LETTERS else "T"
    return f"{letter}YX"


def read_seeds(path: str | Path, frame: int, frame_hw: tuple[int, int]) -> np.ndarray:
    """The (H, W) label image of ``frame`` from a label file: the file itself if 2-D, else its plane
    ``frame`` along the first axis (a label stack such as Cellpose output for every frame)."""
    seeds = read_stack(path)
    try:
        data = seeds.data
        if data.ndim == 3:
            if not 0 <= frame < data.shape[0]:
                raise ImageDataError(f"--seed-frame {frame} is outside the {data.shape[0]} planes of {path}.")
            data = data[frame]
        elif data.ndim != 2:
            raise ImageDataError(f"{path} has shape {tuple(data.shape)}; seeds must be an (H, W) label image or "
                                 f"a (T, H, W) label stack.")
        import numpy as np

        plane = np.asarray(data)
    finally:
        seeds.close()
    if plane.shape != tuple(frame_hw):
        raise ImageDataError(f"the seed labels {path} are {plane.shape}; the stack's frames are {tuple(frame_hw)}.")
    return plane


def segment_file(stack: str | Path, prompts: str | Path | None, output: str | Path,
                 options: SegmentOptions | None = None, *, seeds: str | Path | None = None,
                 track_table: str | Path | None = None, ctc: str | Path | None = None,
                 trackmate: str | Path | None = None, save_prompts: str | Path | None = None,
                 on_frame: Callable[[int, int], None] | None = None, **changes: Any) -> SegmentResult:
    """Replay ``prompts`` on ``stack`` and write the label image to ``output`` (format by extension).

    Args:
        stack: TIFF / OME-TIFF, zarr / OME-Zarr or ``.npy`` file.
        prompts: a prompt file (``session.save_prompts`` or the widget's *Save prompts…*), or None with
            ``seeds``.
        output: ``.ome.tif``, ``.ome.zarr``, ``.zarr``, ``.tif`` or ``.npy``; labels (T, H, W) uint16/uint32.
        options: model, device, dtype, frame axis, held planes, region, seed frame, overwrite, workdir
            (:class:`~napari_sam2.cli.options.SegmentOptions`; default: its defaults).
        seeds: a label file (e.g. Cellpose output): every label of its plane ``options.seed_frame`` becomes
            an object prompted with its mask on that frame (before the prompt file is replayed).
        track_table: also write the per-(object, frame) table (presence, IoU, area, centroid) as CSV.
        ctc: also write the tracks in the Cell Tracking Challenge format into this folder.
        trackmate: also write the tracks as a TrackMate XML file (Fiji), in pixel units.
        save_prompts: also write the session's prompt file (JSON): the replayed history, the seeds and
            the objects found, the propagation; replaying it gives these labels (and opens them for review
            in the widget's *Load prompts…*).
        on_frame: ``on_frame(done, total)`` after each propagated frame: distinct frames with results so far,
            of the distinct frames the replay will propagate (a frame computed again is not counted again).
        **changes: options by name, over ``options`` (``model=..., overwrite=True``); TypeError for a name
            that is not one.

    With ``auto_seeds`` (``--auto-seeds``; a :class:`~napari_sam2.engine.automatic.FindOptions`), every
    object on frame ``seed_frame`` is found after the replay (inside ``roi``, if any; objects under
    ``min_area`` pixels dropped) and added with fresh ids; a frame where nothing is found raises PromptError
    before anything is written. If the prompt file recorded no propagation, or objects were found, the
    objects are propagated through the whole stack (both directions from the first prompted frame). With
    ``detect_divisions`` (``--detect-divisions``) that run, after the replay in any case, divides objects
    whose masks split (see docs/tracking.md); frames the replay computed are not computed again. Raises
    napari-sam2's errors (``PromptError``, ``ImageDataError``, ``CheckpointError``, ``OutputError``) with a
    message saying what to do.
    """
    opts = SegmentOptions.of(options, **changes)
    model, overwrite, seed_frame, roi = opts.model, opts.overwrite, opts.seed_frame, opts.roi
    t0 = time.perf_counter()
    output = Path(output)
    label_format(output)
    for path in (output, track_table, trackmate, save_prompts):  # nothing replaced without --overwrite, before work
        if path is not None and Path(path).exists() and not overwrite:
            raise OutputError(f"{path} exists; pass --overwrite (overwrite=True) to replace it.")
    if track_table is not None and Path(track_table).is_dir():
        raise OutputError(f"{track_table} is a folder; name a .csv file for the track table.")
    if trackmate is not None and Path(trackmate).is_dir():
        raise OutputError(f"{trackmate} is a folder; name a .xml file for the TrackMate export.")
    if save_prompts is not None and Path(save_prompts).is_dir():
        raise OutputError(f"{save_prompts} is a folder; name a .json file for the prompt file.")
    for path in (output, track_table, ctc, trackmate, save_prompts):
        if path is not None and not Path(path).absolute().parent.is_dir():
            raise OutputError(f"The folder of {path} does not exist; create it first.")
    if ctc is not None and Path(ctc).exists() and (not Path(ctc).is_dir() or any(Path(ctc).iterdir())) \
            and not overwrite:  # a file is occupied too
        raise OutputError(f"{ctc} exists and is not empty; pass --overwrite (overwrite=True) to replace it.")
    if prompts is None and seeds is None and opts.auto_seeds is None:
        raise OutputError("Nothing to segment with: give a prompt file (--prompts) or seed labels (--seeds), or "
                          "find the objects automatically (--auto-seeds).")
    if isinstance(opts.min_area, bool) or not isinstance(opts.min_area, int) or opts.min_area < 0:
        raise PromptError(f"min_area (--min-area) must be a whole number of pixels >= 0; got {opts.min_area!r}.")
    annotation = None if prompts is None else load_annotation(prompts)
    source = read_stack(stack)
    try:
        geometry = stack_geometry(tuple(int(s) for s in source.data.shape), source.axes, annotation, opts.axis,
                                  dict(opts.planes))
        if annotation is not None:  # before the model loads: a wrong stack fails at once
            check_fits(annotation, geometry.frame_hw, geometry.num_frames,
                       Path(prompts).name)  # type: ignore[arg-type]  # an annotation comes from prompts
        seed_labels = None if seeds is None else read_seeds(seeds, seed_frame, geometry.frame_hw)
        if opts.auto_seeds is not None and not 0 <= seed_frame < geometry.num_frames:
            raise ImageDataError(f"--seed-frame {seed_frame} is outside the stack's {geometry.num_frames} frames "
                                 f"(0 ... {geometry.num_frames - 1}).")
        if isinstance(model, (str, Path)):
            from ..loading import load_model

            model = load_model(model, device=opts.device, dtype=opts.dtype)
        if roi is None and annotation is not None:
            roi = annotation.roi
        session = model.open_stack(source.data, geometry=geometry, workdir=opts.workdir,
                                   roi=None if roi is None else tuple(roi))  # type: ignore[arg-type]  # checked there
        try:
            history = [] if annotation is None else annotation.history
            finding = opts.auto_seeds is not None
            extra = annotation is None or not annotation.has_propagation
            dividing = opts.detect_divisions is not None  # a last run that divides, after the replay
            planned = set(range(geometry.num_frames)) if extra or dividing or finding else set()  # "both": all
            for run in history:
                if isinstance(run, PropagationRun):
                    planned |= run_frames(run, geometry.num_frames)
            seen: set[int] = set()

            def step(frame: int) -> None:
                seen.add(frame)
                if on_frame is not None:
                    on_frame(len(seen), len(planned))

            if seed_labels is not None:
                session.add_objects_from_labels(seed_frame, seed_labels)
            if annotation is not None:
                annotation.replay(session, on_frame=step)
            found = 0 if opts.auto_seeds is None else find_seeds(session, seed_frame, opts)
            if extra or dividing or found:
                for frame, _ in session.propagate(direction="both", detect_divisions=opts.detect_divisions):
                    step(frame)
            labels = session.write_labels(LabelOutput(geometry, session.label_dtype()))
            if track_table is not None:
                from ..engine.tracking.track_table import write_track_table

                write_track_table(track_table, session.track_table())
            if ctc is not None:
                session.export_ctc(ctc, overwrite=overwrite, labels=labels.array)  # the labels just made
            if trackmate is not None:
                session.export_trackmate(trackmate, overwrite=overwrite, labels=labels.array)
            if save_prompts is not None:
                session.save_prompts(save_prompts, names=None if annotation is None else annotation.names)
        finally:
            session.close()
        data = labels.array if geometry.axis is not None else labels.array[0]
        write_labels(output, data, axes=output_axes(geometry, source.axes), overwrite=overwrite,
                     name=Path(stack).name)
    finally:
        source.close()
    return SegmentResult(output, len(seen), time.perf_counter() - t0, extra, found)


def find_seeds(session: TrackingSession, frame: int, opts: SegmentOptions) -> int:
    """Find every object on ``frame`` of ``session`` (``opts.auto_seeds``, ``opts.min_area``; inside the
    session's region) and add them with fresh ids; returns how many. PromptError when none is found."""
    mapping = session.find_objects(frame, opts.auto_seeds, min_area=opts.min_area)
    if not mapping:
        points = opts.auto_seeds.points_per_side if opts.auto_seeds is not None else None
        tries = [f"more --points-per-side (now {points})" if points is not None else "more --points-per-side"]
        if opts.min_area > 0:
            tries.insert(0, f"a smaller --min-area (now {opts.min_area})")
        raise PromptError(f"No objects were found on frame {frame} (--seed-frame); nothing was written. Try "
                          f"{' or '.join(tries)}, or lower thresholds (--find-option pred_iou_thresh=0.5).")
    return len(mapping)
