"""What a batch runs on its dask workers: one model per worker (:class:`ModelPlugin`) and the row task.

Each worker loads the model once, on its first task, and keeps it for the rest of the batch; a model that
fails to load fails that task with the loader's message, and the worker's next task tries again. Each worker
sets torch's thread count to ``max(1, cores // workers)`` (cores: the CPUs the worker process may use), so
that the workers of one machine share its cores instead of each using all of them. With CUDA, each worker
puts its model on its own GPU (:func:`~napari_sam2.cli.gpus.worker_device`).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from distributed import get_worker
from distributed.diagnostics.plugin import WorkerPlugin

from ..errors import NapariSam2Error
from .gpus import worker_device, worker_index
from .options import SegmentOptions
from .segment import segment_file

__all__ = ["KNOWN_ERRORS", "PLUGIN_NAME", "ModelPlugin", "cores_available", "cuda_gpus", "describe",
           "segment_task", "torch_threads"]

#: Name under which :class:`ModelPlugin` is registered on the workers.
PLUGIN_NAME = "napari-sam2-model"
#: napari-sam2's own errors: their message alone says what is wrong.
KNOWN_ERRORS = (NapariSam2Error,)


def cores_available() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one, else ``os.cpu_count()``)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def torch_threads(workers: int) -> int:
    """torch threads per worker process: ``max(1, cores // workers)``."""
    return max(1, cores_available() // max(1, int(workers)))


def cuda_gpus() -> int:
    """CUDA GPUs this process sees (0 without CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


class ModelPlugin(WorkerPlugin):
    """Loads the model on a worker once, lazily, and keeps it for every later task of that worker.

    ``setup`` sets torch's thread count (:func:`torch_threads`) and chooses the worker's device
    (``worker_device``: its own GPU by the worker's index, see :func:`~napari_sam2.cli.gpus.worker_device`);
    :meth:`model` loads the model on the first call (under a lock, so threads of one worker share one load)
    so that a failing load fails a task with its message instead of the worker. ``loads`` counts completed
    loads on this worker.
    """

    idempotent = False  # registering again (a new batch, maybe another model) replaces the old plugin

    def __init__(self, source: str, device: str | None, dtype: str | None, workers: int) -> None:
        self.source, self.device, self.dtype, self.workers = str(source), device, dtype, int(workers)
        self.worker_device = device
        self.loads = 0
        self._model: Any = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        """Only the settings travel to the workers: no lock, no model."""
        return {"source": self.source, "device": self.device, "dtype": self.dtype, "workers": self.workers}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)  # type: ignore[misc]

    def setup(self, worker: Any = None) -> None:
        """Share the machine's cores between its workers (torch threads = ``max(1, cores // workers)``) and
        choose this worker's device (with CUDA: its own GPU)."""
        import torch

        torch.set_num_threads(torch_threads(self.workers))
        self.worker_device = worker_device(self.device, cuda_gpus(), worker_index(getattr(worker, "name", None)))

    def teardown(self, worker: Any = None) -> None:
        """Drop the model (the plugin was unregistered or the worker is closing)."""
        self._model = None

    def model(self) -> Any:
        """The loaded :class:`~napari_sam2.Segmenter`, loaded now if this is the worker's first task."""
        with self._lock:
            if self._model is None:
                from ..loading import load_model

                self._model = load_model(self.source, device=self.worker_device, dtype=self.dtype)
                self.loads += 1
            return self._model


def describe(exc: BaseException) -> str:
    """One line: napari-sam2's own errors by their message, anything else as ``TypeName: message``."""
    text = " ".join(str(exc).split())
    if isinstance(exc, KNOWN_ERRORS) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def segment_task(stack: str, prompts: str | None, output: str, options: SegmentOptions) -> dict[str, Any]:
    """The task of one row, run on a worker: segment ``stack`` with the worker's model; never raises.
    ``prompts`` None: a row without a prompt file (``options.auto_seeds`` finds the objects).

    ``options`` are the batch's (its ``model`` is replaced by the worker's loaded model, ``overwrite`` is
    True). Returns ``status`` (``done``/``failed``), ``message``, ``seconds`` (wall time on the worker) and
    ``pid``, ``model_loads``, ``torch_threads`` and ``device`` of the worker.
    """
    import torch

    start = time.perf_counter()
    plugin: Any = None
    try:
        plugin = get_worker().plugins[PLUGIN_NAME]
        segment_file(stack, prompts, output, options.updated(model=plugin.model(), overwrite=True))
        status, message = "done", ""
    except Exception as exc:  # every failure is the row's result, not the worker's
        status, message = "failed", describe(exc)
    return {"status": status, "message": message, "seconds": time.perf_counter() - start, "pid": os.getpid(),
            "model_loads": getattr(plugin, "loads", None), "torch_threads": torch.get_num_threads(),
            "device": getattr(plugin, "worker_device", None)}
