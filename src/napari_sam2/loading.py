"""``load_model``: from a checkpoint name or file to a ready :class:`Segmenter`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .engine.segmenter import Segmenter
from .errors import CheckpointError, DeviceError
from .model.checkpoint import build_model, read_checkpoint
from .model.sam2 import Sam2Model
from .precision import auto_precision
from .weights import CHECKPOINTS, fetch_checkpoint

_DTYPES = {
    "float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
}


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` -> CUDA if available, else Apple MPS, else CPU; otherwise check availability."""
    if device is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise DeviceError(
            f"Unknown device {device!r}; use None (automatic), 'cpu', 'cuda', 'cuda:1' or 'mps'."
        ) from None
    if dev.type not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"device {device!r} is not supported; use None (automatic), 'cpu', 'cuda' or 'mps'.")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError("device='cuda' was requested but PyTorch sees no CUDA GPU; use device=None or 'cpu'.")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise DeviceError("device='mps' was requested but Apple MPS is not available; use device=None or 'cpu'.")
    return dev


def parse_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    """float32, bfloat16 or float16, given as a torch dtype or a name; None or "auto" -> None."""
    if dtype is None or (isinstance(dtype, str) and dtype.lower() == "auto"):
        return None
    if isinstance(dtype, torch.dtype):
        if dtype in (torch.float32, torch.bfloat16, torch.float16):
            return dtype
    elif isinstance(dtype, str) and dtype.lower().removeprefix("torch.") in _DTYPES:
        return _DTYPES[dtype.lower().removeprefix("torch.")]
    raise DeviceError(f"dtype must be 'auto', float32, bfloat16 or float16; got {dtype!r}.")


def resolve_checkpoint(source: str | Path, progress: Any = None) -> Path:
    """A file path as is; a known model name -> the cached (downloaded once) file."""
    path = Path(source).expanduser()
    if path.is_file():
        return path
    name = str(source).removesuffix(".pt")
    if name in CHECKPOINTS:
        return fetch_checkpoint(name, progress=progress)
    raise CheckpointError(
        f"{source!r} is neither an existing checkpoint file nor a known model name. Known names: "
        f"{', '.join(CHECKPOINTS)}."
    )


def load_model(
    source: str | Path,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    progress: Any = None,
    compile: bool = False,
) -> Segmenter:
    """Load SAM 2 / 2.1 from an official checkpoint.

    Args:
        source: path to a ``.pt`` checkpoint, or a model name such as
            ``"sam2.1_hiera_tiny"`` (downloaded once into the cache, see
            :func:`napari_sam2.weights.cache_dir`).
        device: ``None`` picks CUDA, then MPS, then CPU.
        dtype: precision of the two heavy parts (image encoder, memory
            attention). ``None``/``"auto"`` (default) picks, per part, what
            the device computes fast (:mod:`napari_sam2.precision`; the reason is
            ``Segmenter.precision_reason``); ``"float32"`` is exact
            (Meta's float32 numbers); ``"bfloat16"``/``"float16"`` force one.
            The mask decoder (IoU and object-presence heads), prompt encoder
            and object pointers always run in float32. See docs/models.md.
        progress: download progress bar (see :func:`napari_sam2.weights.fetch_checkpoint`).
        compile: compile the image encoder and memory attention with
            ``torch.compile`` (opt-in: compiling takes a while on the first
            frames; it pays off on GPUs and long stacks).

    Returns:
        A :class:`~napari_sam2.engine.Segmenter`; ``.variant`` tells which of
        the eight official architectures the file holds.

    Raises:
        CheckpointError: the file is missing, unreadable, not SAM 2, or the
            download failed; the message says what to do.
        DeviceError: ``device`` or ``dtype`` is unknown, or the device is not available here.
    """
    dev, dt = pick_device(device), parse_dtype(dtype)
    state, cfg = read_checkpoint(resolve_checkpoint(source, progress))
    net = build_model(state, cfg).to(device=dev, dtype=torch.float32)
    reason = set_precision(net, dt)
    if compile:
        net.compile_heavy_parts()
    return Segmenter(net, precision_reason=reason)


def set_precision(net: Sam2Model, dtype: torch.dtype | None) -> str:
    """Put ``net``'s heavy parts in ``dtype``, or (None) in what its device computes fast
    (:func:`napari_sam2.precision.auto_precision`). Returns the reason, for the user."""
    if dtype is not None:
        net.set_compute_dtype(dtype)
        return f"{str(dtype).removeprefix('torch.')} as asked"
    chosen = auto_precision(net.device)
    net.set_compute_dtype(chosen.encoder, chosen.memory)
    return chosen.reason
