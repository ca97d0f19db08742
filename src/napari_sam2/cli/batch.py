"""``napari-sam2 batch``: segment every row of a CSV manifest on a dask.distributed cluster.

The parts: :mod:`~napari_sam2.cli.manifest` reads the manifest (columns ``stack,prompts``) and names the
outputs (``OUTDIR/<stack name without its extension>.labels<fmt>``); :mod:`~napari_sam2.cli.ledger` keeps
``OUTDIR/status.csv``, the record of every row's last finished attempt, which decides what a rerun skips;
:mod:`~napari_sam2.cli.workers` is what runs on the workers (one model per worker, the row task);
:mod:`~napari_sam2.cli.gpus` chooses each worker's GPU. This module runs them: :func:`run_batch`.

Every row is one dask task. **Reruns.** A row is skipped when status.csv says ``done`` for its output, with
the same stack and prompt paths, and the output exists; every other row runs (again). Rows that run write
with ``overwrite=True``: status.csv is the record of what is complete, and every output is written atomically
(under a temporary name, renamed at the end), so an existing output without a ``done`` line is one of this
batch's own that was never recorded (e.g. the run was killed right after writing it), not a half-written
file. OUTDIR belongs to the batch: do not keep other files named ``*.labels.<fmt>`` there. To force a row to
run again, delete its output (or its line in status.csv).

**The cluster.** By default :func:`run_batch` starts a ``distributed.LocalCluster`` of ``workers`` worker
processes with one thread each (no dashboard) and closes it at the end. With ``scheduler`` it connects to a
running scheduler instead (e.g. ``dask scheduler`` plus ``dask worker`` processes, on machines that see the
same paths) and closes only its own client. Each worker loads the model once, on its first task, and keeps it
for the rest of the batch (:class:`~napari_sam2.cli.workers.ModelPlugin`); a model that fails to load fails
that task with the loader's message, and the worker's next task tries again. Each worker sets torch's thread
count to ``max(1, cores // workers)`` (cores: the CPUs the worker process may use), so that the workers of
one machine share its cores instead of each using all of them; with ``scheduler``, ``workers`` should be the
number of worker processes per machine. On a shared cluster the model plugin is unregistered at the end (the
workers drop the model); the thread count stays set. The plugin has one fixed name, so run one batch at a time
on a cluster (a second one would replace the first one's model). The local cluster's workers are spawned
processes that import ``__main__``: a script that calls :func:`run_batch` must do so under
``if __name__ == "__main__":``.

**GPUs.** When the model goes to CUDA (device ``cuda``, or automatic on a machine with CUDA), the local
cluster has at most one worker per GPU (one for a pinned ``cuda:N``), each worker declares the dask resource
``GPU=1`` and puts its model on its own GPU, ``cuda:<worker number mod GPUs>``
(:func:`~napari_sam2.cli.gpus.worker_device`). On a running cluster, start one worker per GPU with
``dask worker ADDRESS --nthreads 1 --resources GPU=1`` (each with its own ``CUDA_VISIBLE_DEVICES``, or
``--nworkers N --name NODE`` on an N-GPU machine: workers ``NODE-0`` ... take ``cuda:0`` ...): when any
worker declares a GPU, every task asks for one (``resources={"GPU": 1}``), so tasks run only on GPU workers,
one at a time each. Workers that declare no GPU run as before, each on its default device.

A failing stack never stops the others. Ctrl-C (KeyboardInterrupt) cancels the tasks still waiting or
running, writes status.csv for the tasks that finished, closes the client (and the local cluster) and
re-raises; an interrupted task leaves no output under its final name.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distributed import Client, LocalCluster, as_completed

from ..errors import ClusterError
from .gpus import GPU_RESOURCE, local_workers, task_resources, uses_cuda
from .ledger import STATUS_FILE, RowResult, StatusBook, is_done
from .manifest import ManifestError, Row, check_format, make_outdir, output_name, plan_rows, read_manifest
from .options import SegmentOptions
from .workers import PLUGIN_NAME, ModelPlugin, cuda_gpus, describe, segment_task

__all__ = ["BatchSummary", "ManifestError", "RowResult", "check_format", "output_name", "run_batch"]


@dataclass
class BatchSummary:
    """What :func:`run_batch` did: rows done, failed and skipped, the status file, each task's result."""

    done: int
    failed: int
    skipped: int
    status_path: Path
    results: list[RowResult] = field(default_factory=list)

# --- the batch ------------------------------------------------------------------------------------------


def run_batch(manifest: str | Path, outdir: str | Path, options: SegmentOptions | None = None, *,
              scheduler: str | None = None, workers: int = 2, fmt: str = ".ome.tif",
              echo: Callable[[str], None] = print, **changes: Any) -> BatchSummary:
    """Segment every row of ``manifest`` on a dask.distributed cluster into ``outdir`` (see the module docs).

    Args:
        manifest: CSV file with the columns ``stack,prompts`` (paths relative to its folder, or absolute); with
            ``options.auto_seeds`` (``--auto-seeds``) the prompts may be left out (see
            :mod:`~napari_sam2.cli.manifest`).
        outdir: output folder (created if missing); holds the label images and ``status.csv``.
        scheduler: address of a running scheduler (``tcp://host:8786``); default: a local cluster of ``workers``
            processes, started and closed here.
        workers: worker processes of the local cluster; with ``scheduler``, the number of workers per machine
            (used only to share a machine's cores between torch threads).
        options: how to segment each row (:class:`~napari_sam2.cli.options.SegmentOptions`; default: its
            defaults). ``options.model`` is a checkpoint name or ``.pt`` path that each worker loads once (a path
            must exist on the workers); with CUDA each worker takes its own GPU (module docs, *GPUs*). Every
            row is written with ``overwrite=True``.
        fmt: output extension, one of :data:`~napari_sam2.engine.io.label_files.LABEL_FORMATS`.
        echo: called with one line per event (cluster, skipped row, finished task).
        **changes: options by name, over ``options`` (``model=..., device="cpu"``).

    Returns:
        A :class:`BatchSummary`; ``failed`` > 0 when any row failed (the others still ran).

    Raises:
        ManifestError (a ValueError): the manifest is missing, empty, lacks a column or has colliding rows.
        OutputError: ``fmt`` is unknown, OUTDIR cannot be created, or its status.csv is not ours.
        ValueError: ``workers`` < 1. ClusterError (an OSError): the scheduler cannot be reached.
        TypeError: an unknown option name, or ``options.model`` is a loaded model instead of a name or path.
        KeyboardInterrupt: re-raised after cancelling the remaining tasks and writing status.csv.
    """
    options = SegmentOptions.of(options, **changes)
    if not isinstance(options.model, (str, Path)):
        raise TypeError("run_batch loads the model on every worker: give options.model as a checkpoint name or "
                        ".pt path, not a loaded model.")
    fmt = check_format(fmt)
    if int(workers) < 1:
        raise ValueError(f"workers must be at least 1, not {workers}.")
    entries = read_manifest(manifest, prompts_required=options.auto_seeds is None)
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
    client, cluster, workers = _connect(scheduler, int(workers), options.device, echo)
    try:
        resources = _resources(client, options.device, echo)
        client.register_plugin(ModelPlugin(str(options.model), options.device, options.dtype, workers),
                               name=PLUGIN_NAME)
        futures = {client.submit(segment_task, str(r.stack), None if r.prompts is None else str(r.prompts),
                                 str(r.output), options, pure=False,
                                 resources=resources, key=f"napari-sam2-batch-{r.output.name}-{os.urandom(4).hex()}"): r
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


def _connect(scheduler: str | None, workers: int, device: str | None,
             echo: Callable[[str], None]) -> tuple[Client, Any, int]:
    """A client of the running ``scheduler``, or of a new local cluster (returned too, to be closed), and the
    number of workers per machine (a local cluster with CUDA has at most one per GPU, each declaring it)."""
    if scheduler:
        try:
            client = Client(scheduler)
        except (OSError, TimeoutError) as exc:
            raise ClusterError(f"Cannot reach the dask scheduler at {scheduler} ({describe(exc)}); start it (dask "
                          f"scheduler, dask worker) or check the address.") from exc
        echo(f"Connected to the scheduler at {scheduler} "
             f"({len(client.scheduler_info().get('workers', {}))} workers now).")
        return client, None, workers
    gpus = 0 if str(device).lower() in ("cpu", "mps") else cuda_gpus()
    cuda = uses_cuda(device, gpus)
    workers = local_workers(workers, device, gpus)
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None, resources={GPU_RESOURCE: 1} if cuda else None)
    try:
        client = Client(cluster)
    except BaseException:
        cluster.close()
        raise
    per_gpu = f", one per GPU ({gpus} GPU{'s' if gpus != 1 else ''})" if cuda and gpus else ""
    echo(f"Started a local cluster of {workers} worker process{'es' if workers > 1 else ''}{per_gpu}.")
    return client, cluster, workers


def _resources(client: Client, device: str | None, echo: Callable[[str], None]) -> dict[str, float] | None:
    """The resources every task asks for (:func:`~napari_sam2.cli.gpus.task_resources`): one GPU when the model
    goes to CUDA and the cluster's workers declare GPUs."""
    declared = [w.get("resources") or {} for w in client.scheduler_info().get("workers", {}).values()]
    resources = task_resources(device, declared)
    if resources:
        gpu_workers = sum(1 for r in declared if float(r.get(GPU_RESOURCE, 0)) >= 1)
        echo(f"Each task asks for one GPU (dask resource {GPU_RESOURCE}): {gpu_workers} of {len(declared)} workers "
             f"have one now.")
    return resources


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
                         out["pid"], out["model_loads"], out["torch_threads"], out.get("device"))
    if future.status == "cancelled":
        message = "the task was cancelled (the scheduler or its workers went away)"
    else:
        message = describe(future.exception())
    return RowResult(row.stack, row.prompts, row.output, "failed", None, message)
