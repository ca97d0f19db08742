"""One model job at a time, off the GUI thread, with coalescing and cancel.

Every job is a generator function run by a napari thread worker. What it
yields arrives on the GUI thread (``on_yield``), so results can be written
into layers as they come. Jobs are queued under a key: submitting a job whose
key is already waiting replaces the waiting one in place (the latest state
wins) and, because a job's generator function is only built when the job
starts (``prepare``), it always sees the newest prompts.

Cancelling or shutting down asks the running worker to quit. A generator
worker stops at its next ``yield`` (within one frame for propagation) and
:class:`ClosingGeneratorWorker` then closes the job's generator on the worker
thread, so the engine's own generators finish cleanly (their ``finally``
blocks run, frames already done stay done). Shutting down waits for that (the
frame in flight), so no job outlives the viewer's Qt objects or the interpreter.

No exception ever leaves a Qt slot or a worker thread here: outside
``napari.run()`` PyQt aborts the interpreter on one (exit code 134). Failures
become notifications while the widget lives, log records after it closed.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from functools import partial, wraps
from typing import Any

from napari.qt.threading import GeneratorWorker, create_worker

log = logging.getLogger(__name__)

#: How long shutting down waits for the running job to stop (a propagation: the frame in flight).
SHUTDOWN_WAIT_S = 60.0

#: What a job's ``prepare`` returns: ``(generator_function, args)``, or None when there is nothing to do.
Prepared = tuple[Callable[..., Iterator[Any]], tuple] | None


def _log_exception(message: str, *args: object) -> None:
    """``log.exception``, but never raising (it may run while the interpreter shuts down)."""
    try:
        log.exception(message, *args)
    except Exception:  # noqa: BLE001, S110 - nothing is left to report to
        pass


def _never_raises(slot: Callable) -> Callable:
    """A runner method called by Qt: an exception is logged, never raised into Qt (PyQt would abort)."""

    @wraps(slot)
    def guarded(*args: Any) -> None:
        try:
            slot(*args)
        except Exception:  # noqa: BLE001
            _log_exception("napari-sam2: handling a background job failed")

    return guarded


class ClosingGeneratorWorker(GeneratorWorker):
    """A generator worker that always closes its generator on the worker thread when it stops.

    ``ended`` is set once its thread has left :meth:`run` (nothing of the worker runs any more); an
    exception never leaves :meth:`run` (it is logged).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ended = threading.Event()

    def work(self) -> Any:  # noqa: D102 - see GeneratorWorker.work
        try:
            return super().work()
        finally:
            self._gen.close()

    def run(self) -> None:  # noqa: D102 - see WorkerBase.run
        try:
            super().run()
        except BaseException:  # noqa: BLE001 - e.g. a signal emitted after Qt deleted it
            _log_exception("napari-sam2: a background job ended with an error")
        finally:
            self.ended.set()


@dataclass(frozen=True)
class _Failed:
    error: BaseException


def _guarded(func: Callable[..., Iterator[Any]], args: tuple) -> Iterator[Any]:
    """Run a job's generator; an exception is yielded as :class:`_Failed` instead of raised.

    superqt's workers treat a ``RuntimeError`` (and so :class:`~napari_sam2.CheckpointError`) as
    "the worker was deleted" and never emit ``finished`` for it, so no exception may leave a job.
    """
    try:
        yield from func(*args)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a notification
        yield _Failed(exc)


@dataclass
class Job:
    """A unit of model work.

    Args:
        key: jobs with equal keys coalesce while waiting.
        kind: a word for grouping (``"prompt"``, ``"propagate"``, ``"load"`` ...); :meth:`JobRunner.cancel`
            selects by kind.
        prepare: called on the GUI thread when the job starts; returns ``(generator_function, args)``
            or ``None`` when there is nothing to do any more.
        on_yield: called on the GUI thread with every value the generator yields.
        on_end: called on the GUI thread when the job has ended (done, failed or cancelled),
            with ``True`` if it was cancelled.
        description: shown while the job waits or runs.
        on_error: called on the GUI thread if the job fails (besides the runner's error report).

    A cancelled job's late results are dropped, unless it was cancelled with ``keep_results``
    (e.g. the frame a propagation finished while Cancel was pressed: it is in the session, so it
    is drawn too, and engine and layers stay in step).
    """

    key: Hashable
    kind: str
    prepare: Callable[[], Prepared]
    on_yield: Callable[[Any], None] = lambda value: None
    on_end: Callable[[bool], None] | None = None
    description: str = ""
    on_error: Callable[[BaseException], None] | None = None
    cancelled: bool = field(default=False, init=False)
    keep_results: bool = field(default=False, init=False)
    failed: bool = field(default=False, init=False)


class JobRunner:
    """Runs :class:`Job` s one at a time in napari thread workers.

    Args:
        on_error: called on the GUI thread with ``(job, exception)`` when a job fails.
        on_state: called on the GUI thread with the running job (or ``None``) and the number of
            waiting jobs, whenever either changes.
        on_done: called on the GUI thread with a job that ran to its end without failing or being cancelled.
    """

    def __init__(
        self,
        on_error: Callable[[Job, BaseException], None],
        on_state: Callable[[Job | None, int], None] = lambda job, waiting: None,
        on_done: Callable[[Job], None] = lambda job: None,
    ) -> None:
        self._on_error = on_error
        self._on_state = on_state
        self._on_done = on_done
        self._queue: OrderedDict[Hashable, Job] = OrderedDict()
        self._current: tuple[Job, GeneratorWorker] | None = None
        self._closed = False
        self._starting = False
        self._after_idle: list[Callable[[], None]] = []

    # ----------------------------------------------------------------- state
    @property
    def current(self) -> Job | None:
        """The running job, if any."""
        return None if self._current is None else self._current[0]

    @property
    def waiting(self) -> list[Job]:
        return list(self._queue.values())

    @property
    def busy(self) -> bool:
        return self._current is not None or bool(self._queue)

    @property
    def closed(self) -> bool:
        return self._closed

    def _state_changed(self) -> None:
        if not self._closed:
            self._on_state(self.current, len(self._queue))

    # ------------------------------------------------------------ submitting
    def submit(self, job: Job) -> None:
        """Queue ``job``; a waiting job with the same key is replaced in place."""
        if self._closed:
            return
        self._queue[job.key] = job
        self._start_next()
        self._state_changed()

    def cancel(self, kinds: tuple[str, ...] | None = None, keep_results: bool = False) -> bool:
        """Drop waiting jobs of ``kinds`` (all if None) and ask a running one of those kinds to quit.

        With ``keep_results`` what the running job still yields is delivered. Returns whether a
        running job was asked to stop.
        """
        for key in [k for k, j in self._queue.items() if kinds is None or j.kind in kinds]:
            del self._queue[key]
        stopped = False
        if self._current is not None and (kinds is None or self._current[0].kind in kinds):
            job, worker = self._current
            job.cancelled = True
            job.keep_results = keep_results
            worker.quit()
            stopped = True
        self._state_changed()
        return stopped

    def when_idle(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once nothing runs any more (at once if idle)."""
        if self._current is None:
            callback()
        else:
            self._after_idle.append(callback)

    def shutdown(self, then: Callable[[], None] | None = None, wait_s: float = SHUTDOWN_WAIT_S) -> None:
        """Stop for good: drop the queue, quit the running job and wait for it, then call ``then``.

        The running job stops at its next ``yield`` (a propagation: after the frame in flight); this
        waits for its thread at most ``wait_s`` seconds, so that it neither signals Qt objects the
        viewer deletes next nor runs while the interpreter exits. ``then`` and every :meth:`when_idle`
        callback run once it has ended (at once if nothing runs; if the wait timed out, when the
        worker's ``finished`` arrives). Results that still arrive are ignored, failures logged.
        """
        self._closed = True
        self._queue.clear()
        if then is not None:
            self._after_idle.append(then)
        if self._current is not None:
            job, worker = self._current
            job.cancelled = True
            worker.quit()
            if not worker.ended.wait(wait_s):
                log.warning("napari-sam2: '%s' did not stop within %.0f s of closing", job.description, wait_s)
                return
            self._current = None
        self._run_after_idle()

    # --------------------------------------------------------------- running
    def _start_next(self) -> None:
        # napari's progress bars call QApplication.processEvents(), so a job's prepare() or a result
        # handler can re-enter here; the flag keeps it to one worker at a time.
        if self._starting:
            return
        self._starting = True
        try:
            while self._current is None and self._queue and not self._closed:
                _, job = self._queue.popitem(last=False)
                try:
                    spec = job.prepare()
                except Exception as exc:  # noqa: BLE001 - reported, never raised into Qt
                    self._report(job, exc)
                    self._end(job, cancelled=False)
                    continue
                if spec is None:
                    self._end(job, cancelled=False)
                    continue
                func, args = spec
                worker = create_worker(
                    _guarded,
                    func,
                    args,
                    _worker_class=ClosingGeneratorWorker,
                    _ignore_errors=True,
                    _start_thread=False,
                )
                worker.yielded.connect(partial(self._yielded, job))
                worker.errored.connect(partial(self._errored, job))
                worker.finished.connect(partial(self._finished, job))
                self._current = (job, worker)
                worker.start()
        finally:
            self._starting = False

    @_never_raises
    def _yielded(self, job: Job, value: Any) -> None:
        if self._closed:
            if isinstance(value, _Failed):
                self._log_late(job, value.error)
            return
        if isinstance(value, _Failed):
            self._report(job, value.error)
            return
        if job.cancelled and not job.keep_results:
            return
        try:
            job.on_yield(value)
        except Exception as exc:  # noqa: BLE001
            job.failed = True
            self._tell(job, exc)

    @_never_raises
    def _errored(self, job: Job, exc: BaseException) -> None:
        if self._closed:
            self._log_late(job, exc)
        else:
            self._report(job, exc)

    @staticmethod
    def _log_late(job: Job, exc: BaseException) -> None:
        """A failure that arrives after shutdown: no widget to show it any more, so the log gets it."""
        try:
            log.warning("napari-sam2: '%s' failed while the widget closed: %s", job.description or job.kind,
                        exc, exc_info=(type(exc), exc, exc.__traceback__))
        except Exception:  # noqa: BLE001, S110
            pass

    def _report(self, job: Job, exc: BaseException) -> None:
        job.failed = True
        self._tell(job, exc)
        if job.on_error is not None:
            try:
                job.on_error(exc)
            except Exception:  # noqa: BLE001
                log.exception("napari-sam2: error handler failed")

    def _end(self, job: Job, cancelled: bool) -> None:
        if job.on_end is not None and not self._closed:
            try:
                job.on_end(cancelled)
            except Exception as exc:  # noqa: BLE001
                job.failed = True
                self._tell(job, exc)

    def _tell(self, job: Job, exc: BaseException) -> None:
        """The runner's ``on_error``, which must not raise either (e.g. its widget is being deleted)."""
        try:
            self._on_error(job, exc)
        except Exception:  # noqa: BLE001
            _log_exception("napari-sam2: reporting the failure of '%s' (%s) failed", job.description, exc)

    @_never_raises
    def _finished(self, job: Job) -> None:
        if self._current is not None and self._current[0] is job:
            self._current = None
        self._end(job, job.cancelled)
        if not (job.cancelled or job.failed or self._closed):
            try:
                self._on_done(job)
            except Exception:  # noqa: BLE001
                log.exception("napari-sam2: success handler failed")
        if self._current is None:
            self._run_after_idle()
        self._start_next()
        self._state_changed()

    def _run_after_idle(self) -> None:
        callbacks, self._after_idle = self._after_idle, []
        for callback in callbacks:
            try:
                callback()
            except Exception:  # noqa: BLE001
                _log_exception("napari-sam2: clean-up after a job failed")
