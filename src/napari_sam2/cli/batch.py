"""``napari-sam2 batch``: segment every row of a CSV manifest on a dask.distributed cluster.

A manifest is a CSV file whose header names (at least) the columns ``stack`` and ``prompts``; every
other line is one stack and the prompt file to replay on it (:func:`~napari_sam2.cli.segment.segment_file`).
Paths are relative to the manifest's folder unless absolute; blank lines and extra columns are ignored::

    stack,prompts,comment
    embryo1.ome.tif,prompts/embryo1.json,first
    /data/embryo2.zarr,prompts/embryo2.json,

Every row is one dask task and writes ``OUTDIR/<stack name without its extension>.labels<fmt>``
(``embryo1.labels.ome.tif``). Two rows whose outputs would have the same name are refused before anything
runs.

**The status file.** ``OUTDIR/status.csv`` (columns ``stack,prompts,output,status,seconds,message``) records
the last finished attempt of every row ever run into OUTDIR: ``status`` is ``done`` or ``failed``,
``message`` the one-line reason of a failure (napari-sam2's own errors by their message, anything else as
``TypeName: message``), ``seconds`` the task's wall time on its worker (the first task of a worker includes
loading the model), ``output`` the file name inside OUTDIR, ``stack`` and ``prompts`` absolute paths. It is
rewritten atomically (a temporary file, then ``os.replace``) every time a task finishes: the rows of the
manifest first, in manifest order, then the rows of earlier runs for stacks that are not in this manifest.
A row keeps its earlier line until its new attempt finishes.

**Reruns.** A row is skipped when status.csv says ``done`` for its output, with the same stack and prompt
paths, and the output exists; every other row runs (again). Rows that run write with ``overwrite=True``:
status.csv is the record of what is complete, and every output is written atomically (under a temporary
name, renamed at the end), so an existing output without a ``done`` line is one of this batch's own that was
never recorded (e.g. the run was killed right after writing it), not a half-written file. OUTDIR belongs to
the batch: do not keep other files named ``*.labels.<fmt>`` there. To force a row to run again, delete its
output (or its line in status.csv).

**The cluster.** By default :func:`run_batch` starts a ``distributed.LocalCluster`` of ``workers`` worker
processes with one thread each (no dashboard) and closes it at the end. With ``scheduler`` it connects to a
running scheduler instead (e.g. ``dask scheduler`` plus ``dask worker`` processes, on machines that see the
same paths) and closes only its own client. Each worker loads the model once, on its first task, and keeps it
for the rest of the batch (:class:`ModelPlugin`); a model that fails to load fails that task with the loader's
message, and the worker's next task tries again. Each worker sets torch's thread count to
``max(1, cores // workers)`` (cores: the CPUs the worker process may use), so that the workers of one machine
share its cores instead of each using all of them; with ``scheduler``, ``workers`` should be the number of
worker processes per machine. On a shared cluster the model plugin is unregistered at the end (the workers
drop the model); the thread count stays set. The plugin has one fixed name, so run one batch at a time on a
cluster (a second one would replace the first one's model). The local cluster's workers are spawned
processes that import ``__main__``: a script that calls :func:`run_batch` must do so under
``if __name__ == "__main__":``.

A failing stack never stops the others. Ctrl-C (KeyboardInterrupt) cancels the tasks still waiting or
running, writes status.csv for the tasks that finished, closes the client (and the local cluster) and
re-raises; an interrupted task leaves no output under its final name.
"""

from __future__ import annotations

import csv
import io
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distributed import Client, LocalCluster, as_completed, get_worker
from distributed.diagnostics.plugin import WorkerPlugin

from ..engine.io.atomic import write_text
from ..engine.io.label_files import LABEL_FORMATS
from ..engine.io.stack_files import STACK_FORMATS
from ..errors import CheckpointError, ImageDataError, OutputError, PromptError, SessionClosedError
from .segment import segment_file

#: Name under which :class:`ModelPlugin` is registered on the workers.
PLUGIN_NAME = "napari-sam2-model"
#: Columns a manifest must have (others are ignored).
MANIFEST_COLUMNS = ("stack", "prompts")
#: Columns of ``OUTDIR/status.csv``, in order.
STATUS_COLUMNS = ("stack", "prompts", "output", "status", "seconds", "message")
STATUS_FILE = "status.csv"
#: Stack extensions removed to name the output (matched case-insensitively, longest first).
STACK_SUFFIXES = STACK_FORMATS
#: napari-sam2's own errors: their message alone says what is wrong.
KNOWN_ERRORS = (CheckpointError, ImageDataError, OutputError, PromptError, SessionClosedError)


class ManifestError(ValueError):
    """The manifest cannot be used: missing, unreadable, empty, without a needed column, or colliding rows."""


@dataclass(frozen=True)
class Row:
    """One manifest row: ``line`` in the CSV file, absolute ``stack``/``prompts`` paths and the ``output``."""

    line: int
    stack: Path
    prompts: Path
    output: Path


@dataclass(frozen=True)
class RowResult:
    """The outcome of one row's task in this run.

    ``worker_pid``, ``model_loads`` (the models that worker had loaded by the end of the task) and
    ``torch_threads`` (torch's thread count in that worker) are None when the task produced no result
    (cancelled, or its worker died).
    """

    stack: Path
    prompts: Path
    output: Path
    status: str  # "done" | "failed"
    seconds: float | None
    message: str
    worker_pid: int | None = None
    model_loads: int | None = None
    torch_threads: int | None = None

    def status_row(self) -> dict[str, str]:
        """This result as a status.csv line."""
        seconds = "" if self.seconds is None else f"{self.seconds:.1f}"
        return {"stack": str(self.stack), "prompts": str(self.prompts), "output": self.output.name,
                "status": self.status, "seconds": seconds, "message": self.message}


@dataclass
class BatchSummary:
    """What :func:`run_batch` did: rows done, failed and skipped, the status file, each task's result."""

    done: int
    failed: int
    skipped: int
    status_path: Path
    results: list[RowResult] = field(default_factory=list)


# --- manifest and outputs -------------------------------------------------------------------------------


def check_format(fmt: str) -> str:
    """``fmt`` as one of :data:`LABEL_FORMATS` (a leading dot may be left out), else OutputError."""
    text = str(fmt).strip().lower()
    if text and not text.startswith("."):
        text = "." + text
    if text not in LABEL_FORMATS:
        raise OutputError(f"Unknown output format {fmt!r}; choose one of {', '.join(LABEL_FORMATS)}.")
    return text


def output_name(stack: str | Path, fmt: str) -> str:
    """``<stack file name without its stack extension>.labels<fmt>``: ``a.ome.tif`` -> ``a.labels.ome.zarr``."""
    name = Path(stack).name
    lower = name.lower()
    for suffix in STACK_SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            break
    return f"{name}.labels{fmt}"


def read_manifest(path: str | Path) -> list[tuple[int, Path, Path]]:
    """The ``(line, stack, prompts)`` rows of a manifest, paths made absolute against its folder.

    Raises ManifestError when the file is missing or unreadable, has no header, lacks a column, has an
    empty ``stack`` or ``prompts`` cell, or lists no stack.
    """
    path = Path(path)
    if not path.is_file():
        what = "is a folder, not a CSV file" if path.is_dir() else "does not exist"
        raise ManifestError(f"The manifest {path} {what}; give the path of a CSV file with the columns "
                            f"stack,prompts.")
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            lines = [(n, cells) for n, cells in _csv_lines(csv.reader(f)) if any(c.strip() for c in cells)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ManifestError(f"Cannot read the manifest {path} ({type(exc).__name__}: {exc}).") from exc
    if not lines:
        raise ManifestError(f"The manifest {path} is empty; its first line must name the columns stack,prompts "
                            f"and every further line one stack and its prompt file.")
    header = [c.strip().lower() for c in lines[0][1]]
    missing = [c for c in MANIFEST_COLUMNS if c not in header]
    if missing:
        raise ManifestError(f"The manifest {path} has no {' and no '.join(repr(c) for c in missing)} column "
                            f"(its header is {','.join(header)}); its first line must name the columns "
                            f"stack,prompts.")
    if len(lines) == 1:
        raise ManifestError(f"The manifest {path} lists no stack: it has a header but no rows.")
    where = {c: header.index(c) for c in MANIFEST_COLUMNS}
    folder = path.parent
    rows = []
    for n, cells in lines[1:]:
        values = {c: cells[i].strip() if i < len(cells) else "" for c, i in where.items()}
        empty = [c for c, v in values.items() if not v]
        if empty:
            raise ManifestError(f"{path}, line {n}: the {' and '.join(empty)} cell is empty; give a path.")
        rows.append((n, _absolute(folder, values["stack"]), _absolute(folder, values["prompts"])))
    return rows


def _csv_lines(reader: Any) -> Iterable[tuple[int, list[str]]]:
    """``(line number where the record starts, cells)`` for each record of a ``csv.reader``."""
    start = 1
    for cells in reader:
        yield start, cells
        start = reader.line_num + 1


def _absolute(folder: Path, text: str) -> Path:
    """``text`` (``~`` expanded) relative to ``folder`` unless absolute; normalised, links not resolved."""
    return Path(os.path.abspath(folder / Path(text).expanduser()))


def plan_rows(entries: list[tuple[int, Path, Path]], outdir: Path, fmt: str, manifest: str | Path) -> list[Row]:
    """One :class:`Row` per manifest entry; ManifestError if two rows would write the same output."""
    rows: list[Row] = []
    seen: dict[str, Row] = {}
    for line, stack, prompts in entries:
        row = Row(line, stack, prompts, outdir / output_name(stack, fmt))
        first = seen.setdefault(row.output.name.casefold(), row)
        if first is not row:
            raise ManifestError(
                f"{manifest}: lines {first.line} and {line} would both write {row.output.name} ({first.stack} and "
                f"{stack}); outputs are named after the stack, so rename one stack or run them into different "
                f"output folders."
            )
        rows.append(row)
    return rows


def make_outdir(outdir: str | Path) -> Path:
    """Create the output folder if needed (absolute path); OutputError if that is impossible."""
    outdir = Path(os.path.abspath(Path(outdir).expanduser()))
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"{outdir} is a file, not a folder; choose another output folder.") from None
    except OSError as exc:
        raise OutputError(f"Cannot create the output folder {outdir} ({exc.strerror or exc}).") from exc
    return outdir


# --- status.csv -----------------------------------------------------------------------------------------


class StatusBook:
    """The lines of ``OUTDIR/status.csv``, keyed by output file name, written back atomically.

    ``order`` (the output names of the manifest rows) comes first; lines of earlier runs for other outputs
    follow in the order they had.
    """

    def __init__(self, path: Path, order: list[str]) -> None:
        self.path = path
        self.order = order
        self.lines = read_status(path)

    def get(self, output: str) -> dict[str, str] | None:
        """The line for output file name ``output``, if any."""
        return self.lines.get(output)

    def record(self, result: RowResult) -> None:
        """Replace (or add) the line of ``result``'s output."""
        line = result.status_row()
        self.lines[line["output"]] = line

    def write(self) -> None:
        """Rewrite status.csv atomically (:func:`~napari_sam2.engine.io.atomic.write_text`)."""
        first = set(self.order)
        ordered = [self.lines[o] for o in self.order if o in self.lines]
        ordered += [line for o, line in self.lines.items() if o not in first]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=STATUS_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(ordered)
        write_text(self.path, buffer.getvalue())


def read_status(path: Path) -> dict[str, dict[str, str]]:
    """The lines of an existing status.csv by output name (empty if there is none); OutputError if the file is
    not one (so that a foreign file is never overwritten)."""
    if not path.exists():
        return {}
    try:
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in STATUS_COLUMNS if c not in (reader.fieldnames or [])]
            lines = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise OutputError(f"Cannot read {path} ({type(exc).__name__}: {exc}); move it away to start afresh.") \
            from exc
    if missing:
        raise OutputError(f"{path} is not a napari-sam2 batch status file (no column {', '.join(missing)}); move "
                          f"it away or choose another output folder.")
    return {line["output"]: {c: line.get(c) or "" for c in STATUS_COLUMNS} for line in lines if line.get("output")}


def is_done(row: Row, book: StatusBook) -> bool:
    """status.csv says ``done`` for this row's output, stack and prompts, and the output exists."""
    line = book.get(row.output.name)
    return (line is not None and line["status"] == "done" and line["stack"] == str(row.stack)
            and line["prompts"] == str(row.prompts) and row.output.exists())


# --- on the workers -------------------------------------------------------------------------------------


def cores_available() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one, else ``os.cpu_count()``)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def torch_threads(workers: int) -> int:
    """torch threads per worker process: ``max(1, cores // workers)``."""
    return max(1, cores_available() // max(1, int(workers)))


class ModelPlugin(WorkerPlugin):
    """Loads the model on a worker once, lazily, and keeps it for every later task of that worker.

    ``setup`` only sets torch's thread count (:func:`torch_threads`); :meth:`model` loads the model on the
    first call (under a lock, so threads of one worker share one load) so that a failing load fails a task
    with its message instead of the worker. ``loads`` counts completed loads on this worker.
    """

    idempotent = False  # registering again (a new batch, maybe another model) replaces the old plugin

    def __init__(self, source: str, device: str | None, dtype: str | None, workers: int) -> None:
        self.source, self.device, self.dtype, self.workers = str(source), device, dtype, int(workers)
        self.loads = 0
        self._model: Any = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        """Only the settings travel to the workers: no lock, no model."""
        return {"source": self.source, "device": self.device, "dtype": self.dtype, "workers": self.workers}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)

    def setup(self, worker: Any = None) -> None:
        """Share the machine's cores between its workers: torch threads = ``max(1, cores // workers)``."""
        import torch

        torch.set_num_threads(torch_threads(self.workers))

    def teardown(self, worker: Any = None) -> None:
        """Drop the model (the plugin was unregistered or the worker is closing)."""
        self._model = None

    def model(self) -> Any:
        """The loaded :class:`~napari_sam2.Segmenter`, loaded now if this is the worker's first task."""
        with self._lock:
            if self._model is None:
                from ..loading import load_model

                self._model = load_model(self.source, device=self.device, dtype=self.dtype)
                self.loads += 1
            return self._model


def describe(exc: BaseException) -> str:
    """One line: napari-sam2's own errors by their message, anything else as ``TypeName: message``."""
    text = " ".join(str(exc).split())
    if isinstance(exc, KNOWN_ERRORS) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def segment_task(stack: str, prompts: str, output: str) -> dict[str, Any]:
    """The task of one row, run on a worker: segment ``stack`` with the worker's model; never raises.

    Returns ``status`` (``done``/``failed``), ``message``, ``seconds`` (wall time on the worker) and
    ``pid``, ``model_loads`` and ``torch_threads`` of the worker.
    """
    import torch

    start = time.perf_counter()
    plugin = None
    try:
        plugin = get_worker().plugins[PLUGIN_NAME]
        segment_file(stack, prompts, output, model=plugin.model(), overwrite=True)
        status, message = "done", ""
    except Exception as exc:  # every failure is the row's result, not the worker's
        status, message = "failed", describe(exc)
    return {"status": status, "message": message, "seconds": time.perf_counter() - start, "pid": os.getpid(),
            "model_loads": getattr(plugin, "loads", None), "torch_threads": torch.get_num_threads()}


# --- the batch ------------------------------------------------------------------------------------------


def run_batch(manifest: str | Path, outdir: str | Path, *, scheduler: str | None = None, workers: int = 2,
              model: str = "sam2.1_hiera_tiny", device: str | None = None, dtype: str | None = None,
              fmt: str = ".ome.tif", echo: Callable[[str], None] = print) -> BatchSummary:
    """Segment every row of ``manifest`` on a dask.distributed cluster into ``outdir`` (see the module docs).

    Args:
        manifest: CSV file with the columns ``stack,prompts`` (paths relative to its folder, or absolute).
        outdir: output folder (created if missing); holds the label images and ``status.csv``.
        scheduler: address of a running scheduler (``tcp://host:8786``); default: a local cluster of ``workers``
            processes, started and closed here.
        workers: worker processes of the local cluster; with ``scheduler``, the number of workers per machine
            (used only to share a machine's cores between torch threads).
        model: checkpoint name or ``.pt`` path; each worker loads it once (a path must exist on the workers).
        device, dtype: as for :func:`~napari_sam2.load_model`.
        fmt: output extension, one of :data:`~napari_sam2.engine.io.label_files.LABEL_FORMATS`.
        echo: called with one line per event (cluster, skipped row, finished task).

    Returns:
        A :class:`BatchSummary`; ``failed`` > 0 when any row failed (the others still ran).

    Raises:
        ManifestError (a ValueError): the manifest is missing, empty, lacks a column or has colliding rows.
        OutputError: ``fmt`` is unknown, OUTDIR cannot be created, or its status.csv is not ours.
        ValueError: ``workers`` < 1. OSError: the scheduler cannot be reached.
        KeyboardInterrupt: re-raised after cancelling the remaining tasks and writing status.csv.
    """
    fmt = check_format(fmt)
    if int(workers) < 1:
        raise ValueError(f"workers must be at least 1, not {workers}.")
    entries = read_manifest(manifest)
    outdir = make_outdir(outdir)
    rows = plan_rows(entries, outdir, fmt, manifest)
    book = StatusBook(outdir / STATUS_FILE, [r.output.name for r in rows])
    todo = [r for r in rows if not is_done(r, book)]
    for row in rows:
        if row not in todo:
            echo(f"skip  {row.stack.name}  (done in an earlier run: {row.output.name})")
    summary = BatchSummary(0, 0, len(rows) - len(todo), book.path)
    if not todo:
        echo(f"Nothing to run: all {len(rows)} rows are done (delete an output to run its row again).")
        return summary
    environ = dict(os.environ)  # distributed sets OMP_NUM_THREADS=1 etc. in this process for its workers
    client, cluster = _connect(scheduler, int(workers), echo)
    try:
        client.register_plugin(ModelPlugin(model, device, dtype, int(workers)), name=PLUGIN_NAME)
        futures = {client.submit(segment_task, str(r.stack), str(r.prompts), str(r.output), pure=False,
                                 key=f"napari-sam2-batch-{r.output.name}-{os.urandom(4).hex()}"): r
                   for r in todo}
        _collect(client, futures, book, summary, echo)
    finally:
        _disconnect(client, cluster)
        _restore_environ(environ)
    return summary


def _restore_environ(saved: dict[str, str]) -> None:
    """Undo what starting the cluster changed in ``os.environ``: later child processes of the caller (e.g. a
    ``napari-sam2 segment`` it starts) must get the caller's thread settings, or their results differ in the
    last bits from runs with the default number of threads."""
    for key in [k for k in os.environ if k not in saved]:
        del os.environ[key]
    for key, value in saved.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


def _connect(scheduler: str | None, workers: int, echo: Callable[[str], None]) -> tuple[Client, Any]:
    """A client of the running ``scheduler``, or of a new local cluster (returned too, to be closed)."""
    if scheduler:
        try:
            client = Client(scheduler)
        except (OSError, TimeoutError) as exc:
            raise OSError(f"Cannot reach the dask scheduler at {scheduler} ({describe(exc)}); start it (dask "
                          f"scheduler, dask worker) or check the address.") from exc
        echo(f"Connected to the scheduler at {scheduler} "
             f"({len(client.scheduler_info().get('workers', {}))} workers now).")
        return client, None
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None)
    try:
        client = Client(cluster)
    except BaseException:
        cluster.close()
        raise
    echo(f"Started a local cluster of {workers} worker process{'es' if workers > 1 else ''}.")
    return client, cluster


def _disconnect(client: Client, cluster: Any) -> None:
    """Close the client and our local cluster; on a shared cluster, first let the workers drop the model."""
    try:
        if cluster is None:
            try:
                client.unregister_worker_plugin(PLUGIN_NAME)
            except Exception:  # the scheduler went away, or the plugin was never registered
                pass
        client.close()
    finally:
        if cluster is not None:
            cluster.close()


def _collect(client: Client, futures: dict, book: StatusBook, summary: BatchSummary,
             echo: Callable[[str], None]) -> None:
    """Record each task as it finishes (status.csv rewritten each time); on Ctrl-C cancel the rest."""
    try:
        for future in as_completed(futures):
            result = _result(future, futures[future])
            book.record(result)
            book.write()  # before echo: what finished is on record whatever happens next
            summary.results.append(result)
            if result.status == "done":
                summary.done += 1
                echo(f"done  {result.stack.name}  {result.seconds:.1f} s")
            else:
                summary.failed += 1
                echo(f"FAILED {result.stack.name}: {result.message}")
    except KeyboardInterrupt:
        left = [f for f in futures if not f.done()]
        echo(f"Interrupted: cancelling {len(left)} unfinished task{'s' if len(left) != 1 else ''}.")
        client.cancel(left)
        book.write()
        raise


def _result(future: Any, row: Row) -> RowResult:
    """The :class:`RowResult` of a finished, failed or cancelled future."""
    if future.status == "finished":
        out = future.result()
        return RowResult(row.stack, row.prompts, row.output, out["status"], out["seconds"], out["message"],
                         out["pid"], out["model_loads"], out["torch_threads"])
    if future.status == "cancelled":
        message = "the task was cancelled (the scheduler or its workers went away)"
    else:
        message = describe(future.exception())
    return RowResult(row.stack, row.prompts, row.output, "failed", None, message)
