"""Propagate, with a napari progress bar, frame-by-frame results and Cancel (part of the controller)."""

from __future__ import annotations

from napari.utils import progress
from napari.utils.notifications import show_info, show_warning

from . import tasks
from .jobs import Job

DIRECTIONS = ("forward", "backward", "both")


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


class PropagationMixin:
    """``propagate`` / ``cancel`` for :class:`~.controller.Sam2Controller`."""

    def _init_propagation(self) -> None:
        self._bar: progress | None = None
        self._done = 0
        self.follow = True  # move the viewer to each frame as it arrives
        self._runs: list[tuple[int, str, int]] = []  # the engine runs of the last propagation
        # after a cancel: (request, runs left, edits) so that the same request continues there
        self._resume: tuple | None = None
        self.edits = 0  # counts prompt changes sent to the engine (a resume needs none in between)

    def propagate(self, direction: str = "both", first: int | None = None, last: int | None = None) -> None:
        """Track every object through frames ``first`` ... ``last`` (default: the whole stack)."""
        if self.geometry is None:
            show_warning("Pick an image layer first.")
            return
        if self.model is None:
            show_warning(
                "No SAM 2 model is loaded yet: press 'Load model', or click on the image (the model "
                "chosen above then loads by itself)."
            )
            return
        n = self.geometry.num_frames
        lo = 0 if first is None else min(max(int(first), 0), n - 1)
        hi = n - 1 if last is None else min(max(int(last), 0), n - 1)
        lo, hi = min(lo, hi), max(lo, hi)
        request = (direction, lo, hi)

        def prepare():
            session = self._get_session()
            if session is None:
                return None
            resume, self._resume = self._resume, None
            if resume is not None and resume[0] == request and resume[2] == self.edits and resume[1]:
                runs = resume[1]
                show_info(f"Continuing the cancelled propagation at frame {runs[0][0]}.")
            else:
                runs = plan_runs(direction, lo, hi, sorted({f for f, _ in self.prompts}))
            self._runs = runs
            self._open_bar(sum(run_length(*r) for r in runs), direction)
            self._resume = (request, runs, self.edits)  # until the run ends (see _propagation_ended)
            return tasks.propagate, (session, runs)

        self.runner.submit(
            Job(
                "propagate",
                "propagate",
                prepare,
                self._propagated,
                self._propagation_ended,
                description=f"Propagating {direction} (frames {lo}-{hi})",
            )
        )

    def cancel(self) -> None:
        """Stop the propagation (within one frame; done frames stay) or the model download."""
        self.runner.cancel(kinds=("propagate", "load"), keep_results=True)
        if self._download is not None:
            self._download.cancel()

    def _open_bar(self, total: int, direction: str) -> None:
        self._close_bar()
        self._done = 0
        self._bar = progress(total=total, desc=f"SAM 2: propagating {direction}")

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _propagated(self, value) -> None:
        if not isinstance(value, tasks.FrameLabels):
            return
        bar, geometry, image = self._bar, self.geometry, self.image  # napari's progress bar may re-enter
        self._done += 1
        self._show(value)
        if self.follow and geometry is not None and geometry.axis is not None:
            ax = geometry.axis
            world_axis = self.viewer.dims.ndim - geometry.ndim + ax
            self.viewer.dims.set_point(world_axis, value.frame * image.scale[ax] + image.translate[ax])
        if bar is not None:
            self.status.emit(f"Propagating: frame {value.frame} ({self._done}/{bar.total})")
            bar.update(1)

    def _propagation_ended(self, cancelled: bool) -> None:
        self._close_bar()
        if cancelled and self._resume is not None:
            request, _runs, edits = self._resume
            self._resume = (request, runs_left(self._runs, self._done), edits)
        else:
            self._resume = None
        if cancelled:
            show_info(f"Propagation cancelled after {self._done} frame(s); the frames done are kept. "
                      f"Press the same button again to continue from there.")
