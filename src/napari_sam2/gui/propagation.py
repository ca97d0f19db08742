"""Propagate, with a napari progress bar, frame-by-frame results, Cancel and resume: a part of the controller."""

from __future__ import annotations

from napari.utils import progress
from napari.utils.notifications import show_info, show_warning

from ..engine.tracking.divisions import DivisionRule
from ..engine.tracking.history import DIRECTIONS
from ..errors import plural
from . import tasks
from .contracts import PropagationHost
from .jobs import Job, Prepared


def plan_runs(direction: str, first: int, last: int, prompted: list[int]) -> list[tuple[int, str, int]]:
    """``(start, direction, max_frames)`` engine runs covering frames ``first`` ... ``last``.

    Runs start at the first prompted frame in the range (backward: the last one), or at the range's
    end when none is prompted there.
    """
    inside = sorted(f for f in prompted if first <= f <= last)
    if direction == "forward":
        start = inside[0] if inside else first
        return [(start, "forward", last - start)]
    if direction == "backward":
        start = inside[-1] if inside else last
        return [(start, "backward", start - first)]
    if direction != "both":
        raise ValueError(f"direction must be one of {DIRECTIONS}; got {direction!r}.")
    start = inside[0] if inside else first
    runs = [(start, "forward", last - start), (start, "backward", start - first)]
    return [r for r in runs if r[2] > 0] or runs[:1]


def run_length(start: int, direction: str, max_frames: int) -> int:
    """How many frames an engine run yields (within the stack; backward from 0 yields none)."""
    if direction == "backward" and start == 0:
        return 0
    return max_frames + 1


def runs_left(runs: list[tuple[int, str, int]], done: int) -> list[tuple[int, str, int]]:
    """What remains of ``runs`` after their first ``done`` frames: the next run resumes at the
    frame after the last one done (its memory window is still in the session, so the results
    equal those of an uninterrupted run)."""
    left = []
    for start, direction, max_frames in runs:
        length = run_length(start, direction, max_frames)
        if done >= length:
            done -= length
            continue
        step = 1 if direction == "forward" else -1
        left.append((start + step * done, direction, max_frames - done))
        done = 0
    return left


class Propagation:
    """Propagate / cancel / resume for a :class:`~.controller.Sam2Controller`.

    Attributes:
        follow: move the viewer to each frame as its result arrives.
        runs: the engine runs ``(start, direction, max_frames)`` of the last propagation.
        done: frames drawn in the last propagation.
        bar: napari's progress bar of the running propagation (None when none runs).
        resume: after a cancel, ``(request, runs left, edits)``: the same request with no edit
            in between continues there.
        detect_divisions: divide objects whose masks split (``session.propagate(detect_divisions=...)``),
            or None.
    """

    def __init__(self, host: PropagationHost) -> None:
        self.host = host
        self.follow = True
        self.detect_divisions: DivisionRule | None = None
        self.runs: list[tuple[int, str, int]] = []
        self.done = 0
        self.bar: progress | None = None
        self.resume: tuple | None = None

    def propagate(self, direction: str = "both", first: int | None = None, last: int | None = None) -> None:
        """Track every object through frames ``first`` ... ``last`` (default: the whole stack)."""
        host = self.host
        if host.geometry is None:
            show_warning("Pick an image layer first.")
            return
        if host.model is None:
            show_warning(
                "No SAM 2 model is loaded yet: press 'Load model', or click on the image (the model "
                "chosen above then loads by itself)."
            )
            return
        n = host.geometry.num_frames
        if n < 2:
            what = "a 2-D image" if host.geometry.axis is None else "a stack of 1 frame along its frame axis"
            text = (f"Nothing to propagate: this image has one frame ({what}). Propagate carries objects from "
                    f"frame to frame of a time-lapse or z-stack: pick such an image above (and its frame axis), "
                    f"or click on this frame to segment it.")
            show_warning(text)
            host.message.emit(text)
            return
        lo = 0 if first is None else min(max(int(first), 0), n - 1)
        hi = n - 1 if last is None else min(max(int(last), 0), n - 1)
        lo, hi = min(lo, hi), max(lo, hi)
        rule = self.detect_divisions
        request = (direction, lo, hi, rule)

        def prepare() -> Prepared:
            session = host.get_session()
            if session is None:
                return None
            resume, self.resume = self.resume, None
            edits = host.sync_state.edits
            if resume is not None and resume[0] == request and resume[2] == edits and resume[1]:
                runs = resume[1]
                show_info(f"Continuing the cancelled propagation at frame {runs[0][0]}.")
            else:
                runs = plan_runs(direction, lo, hi, host.sync_state.prompted_frames())
            self.runs = runs
            self._open_bar(sum(run_length(*r) for r in runs), direction)
            self.resume = (request, runs, edits)  # until the run ends (see ended)
            return tasks.propagate, (session, runs, host.tracking.stop_absent_after, rule)

        host.runner.submit(
            Job(
                "propagate",
                "propagate",
                prepare,
                self.propagated,
                self.ended,
                description=f"Propagating {direction} (frames {lo}-{hi})",
            )
        )

    def cancel(self) -> None:
        """Stop the propagation (within one frame; done frames stay) or the model download."""
        self.host.runner.cancel(kinds=("propagate", "load"), keep_results=True)
        if self.host.download is not None:
            self.host.download.cancel()

    def _open_bar(self, total: int, direction: str) -> None:
        self.close_bar()
        self.done = 0
        self.bar = progress(total=total, desc=f"SAM 2: propagating {direction}")

    def close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def propagated(self, value: object) -> None:
        """Draw one propagated frame; move the viewer there when following. A frame drawn again after an
        automatic division (with the daughters) does not count as done."""
        if not isinstance(value, tasks.FrameLabels):
            return
        host = self.host
        bar, geometry, image = self.bar, host.geometry, host.image  # napari's progress bar may re-enter
        if not value.repeat:
            self.done += 1
        host.show(value)
        if self.follow and geometry is not None and image is not None:
            host.go_to_frame(value.frame)
        if value.repeat:
            host.status.emit(f"Propagating: frame {value.frame} again, with the daughters of a division")
        elif bar is not None:
            host.status.emit(f"Propagating: frame {value.frame} ({self.done}/{bar.total})")
            bar.update(1)

    def ended(self, cancelled: bool) -> None:
        self.close_bar()
        self.host.tracking.refresh()
        if cancelled and self.resume is not None:
            request, _runs, edits = self.resume
            self.resume = (request, runs_left(self.runs, self.done), edits)
            show_info(f"Propagation cancelled after {plural(self.done, 'frame')}; the frames done are kept. "
                      f"Press the same button again to continue from there.")
        else:  # (no resume after a cancel: another image was picked, which says what happened)
            self.resume = None
