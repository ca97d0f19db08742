"""Which GPU each batch worker uses: one worker per GPU, each with its own (pure functions, no torch, no dask).

``device`` below is the batch's device setting: None (automatic: CUDA where there is one), ``"cuda"``,
``"cuda:N"`` (pinned: every worker uses GPU N), ``"cpu"`` or ``"mps"``. ``gpus`` is the number of CUDA
GPUs the process sees (``torch.cuda.device_count()``, 0 without CUDA).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["GPU_RESOURCE", "local_workers", "task_resources", "uses_cuda", "worker_device", "worker_index"]

#: The dask resource a GPU worker declares (``dask worker --resources GPU=1``) and every task then needs.
GPU_RESOURCE = "GPU"


def uses_cuda(device: str | None, gpus: int) -> bool:
    """The model goes to a CUDA GPU: ``device`` names CUDA, or is automatic and there is a GPU."""
    if device is None or device == "auto":
        return gpus > 0
    return str(device).lower().startswith("cuda")


def _pinned(device: str | None) -> bool:
    """``device`` names one GPU (``cuda:1``)."""
    return device is not None and re.fullmatch(r"cuda:\d+", str(device).lower()) is not None


def local_workers(workers: int, device: str | None, gpus: int) -> int:
    """Worker processes of a local cluster: ``workers``, but with CUDA at most one per GPU (one in all for a
    pinned ``cuda:N``), so that no two models share a GPU."""
    if not uses_cuda(device, gpus):
        return workers
    return max(1, min(workers, 1 if _pinned(device) else max(1, gpus)))


def worker_index(name: Any) -> int | None:
    """The index in a worker's dask name: ``3`` or ``"3"`` (a LocalCluster's workers), ``"node1-2"``
    (``dask worker --name node1 --nworkers N``); None for other names (e.g. the worker's address)."""
    if isinstance(name, int) and not isinstance(name, bool):
        return name if name >= 0 else None
    match = re.fullmatch(r"(?:.*-)?(\d+)", str(name)) if name is not None else None
    return int(match.group(1)) if match and "://" not in str(name) else None


def worker_device(device: str | None, gpus: int, index: int | None) -> str | None:
    """The device of worker number ``index`` (None: unknown) on a machine with ``gpus`` GPUs.

    ``cuda`` or automatic with GPUs -> ``cuda:<index mod gpus>``, so that the workers of one machine spread
    over its GPUs; with an unknown index, ``device`` unchanged (the worker's default GPU, e.g. the one its
    ``CUDA_VISIBLE_DEVICES`` shows). ``cuda:N``, ``cpu``, ``mps``, and automatic without a GPU: unchanged.
    """
    if not uses_cuda(device, gpus) or _pinned(device) or gpus < 1 or index is None:
        return device
    return f"cuda:{index % gpus}"


def task_resources(device: str | None, workers: Iterable[Mapping[str, float]]) -> dict[str, float] | None:
    """The dask resources each task asks for: one GPU when the model goes to CUDA (``device`` is CUDA or
    automatic) and a worker of the cluster declares GPUs (``workers``: each worker's declared resources);
    else none, so that clusters without declared GPUs run as before (each worker on its default device)."""
    if device is not None and device != "auto" and not str(device).lower().startswith("cuda"):
        return None
    if any(float(r.get(GPU_RESOURCE, 0)) >= 1 for r in workers):
        return {GPU_RESOURCE: 1}
    return None
