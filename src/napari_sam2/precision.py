"""Which precision each heavy part of SAM 2 runs in, decided from what the device computes fast.

Two parts hold nearly all of SAM 2's arithmetic, and they run on different kernels:

* the **encoder** (Hiera image encoder): matrix products and convolutions (oneDNN / cuBLAS), and the
  image embeddings it stores;
* the **memory** side (memory attention and memory encoder): dominated by one large attention
  (PyTorch's scaled-dot-product kernel on CPUs).

Each runs in bfloat16 (or float16) only where the device computes that natively *and* it is faster;
everything that decides a mask's outline or an object's presence stays float32 regardless
(see :meth:`napari_sam2.model.Sam2Model.set_compute_dtype`). The rule (:func:`choose_precision`):

* **CUDA**: compute capability >= 8.0 (Ampere and later) has native bfloat16 -> bfloat16;
  7.x (V100, T4, RTX 20xx) has float16 tensor cores but emulates bfloat16 -> float16;
  older GPUs -> float32. The capability is that of the model's GPU, not of the current one.
* **x86 CPUs**: AMX (Sapphire Rapids and later Xeons) -> bfloat16 for both parts. AVX512_BF16
  without AMX (AMD Zen 4/5, Cooper Lake): bfloat16 matrix products are native, so the encoder runs in
  bfloat16; PyTorch's CPU attention kernel is not faster in bfloat16 there (measured on Zen 4), so the
  memory side runs in whichever dtype a short timed probe finds faster. Neither (Skylake-SP, Cascade
  Lake, Ice Lake, AVX2 desktops): bfloat16 would be emulated, slower than float32 -> float32.
* **ARM CPUs**: only with the BF16 extension, and per part only where the probe measures a gain.
* **Apple MPS**: float32 (16-bit speed not yet measured).

The probe (a few matrix products and one attention in both dtypes, well under a second) runs once per
machine and PyTorch version; its verdict is cached in the user cache folder (``precision.json``).
``NAPARI_SAM2_PROBE=0`` skips it (parts that would need it stay float32). Any choice can be overridden
with ``load_model(dtype=...)``.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

PROBE_ENV = "NAPARI_SAM2_PROBE"
#: A 16-bit kernel must be at least this much faster than float32 to be chosen where it is measured.
MIN_GAIN = 1.1

F32, BF16, F16 = torch.float32, torch.bfloat16, torch.float16


@dataclass(frozen=True)
class DeviceCaps:
    """What a device offers for 16-bit arithmetic.

    Attributes:
        kind: ``"cpu"``, ``"cuda"`` or ``"mps"``.
        name: the CPU model or GPU name (the probe cache's key).
        arch: ``"x86_64"``, ``"arm64"``, ... for CPUs.
        features: CPU features that matter here: ``"avx512_bf16"``, ``"amx_bf16"`` (x86), ``"bf16"`` (ARM).
        capability: a CUDA GPU's compute capability, e.g. ``(8, 0)``.
    """

    kind: str
    name: str = ""
    arch: str = ""
    features: frozenset[str] = field(default_factory=frozenset)
    capability: tuple[int, int] | None = None


@dataclass(frozen=True)
class Precision:
    """The dtypes of the two heavy parts, and why.

    Attributes:
        encoder: dtype of the image encoder and of the stored image embeddings.
        memory: dtype of memory attention and the memory encoder.
        reason: one sentence, in the user's terms, of why.
    """

    encoder: torch.dtype
    memory: torch.dtype
    reason: str

    def describe(self) -> str:
        """E.g. ``"bfloat16"``, ``"float32"`` or ``"encoder bfloat16, memory float32"``."""
        enc, mem = _name(self.encoder), _name(self.memory)
        return enc if enc == mem else f"encoder {enc}, memory {mem}"


def _name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


# ------------------------------------------------------------------ the rule
#: probe(part, dtype) -> how many times faster than float32 ``part`` ("encoder" | "memory") runs in ``dtype``,
#: or None when it could not be measured.
Probe = Callable[[str, torch.dtype], "float | None"]


def choose_precision(caps: DeviceCaps, probe: Probe | None = None) -> Precision:
    """The dtypes for a device with ``caps`` (see the module docstring for the rule).

    ``probe`` is asked only where the hardware flags cannot tell; without one those parts stay float32.
    """
    if caps.kind == "cuda":
        cap = caps.capability or (0, 0)
        where = f"{caps.name or 'the GPU'} (compute capability {cap[0]}.{cap[1]})"
        if cap >= (8, 0):
            return Precision(BF16, BF16, f"{where} computes bfloat16 natively")
        if cap >= (7, 0):
            return Precision(F16, F16, f"{where} emulates bfloat16; float16 runs on its tensor cores")
        return Precision(F32, F32, f"{where} has no fast 16-bit arithmetic")
    if caps.kind == "mps":
        return Precision(F32, F32, "16-bit speed on Apple MPS is not measured yet")
    if caps.kind != "cpu":
        return Precision(F32, F32, f"unknown device kind {caps.kind!r}")

    def measured(part: str, dtype: torch.dtype) -> float | None:
        return None if probe is None else probe(part, dtype)

    cpu = caps.name or "this CPU"
    if caps.arch in ("x86_64", "amd64", "i386", "i686", "x86"):
        if "amx_bf16" in caps.features:
            return Precision(BF16, BF16, f"{cpu} has AMX: bfloat16 matrix products and attention are native")
        if "avx512_bf16" in caps.features:
            gain = measured("memory", BF16)
            memory = BF16 if gain is not None and gain >= MIN_GAIN else F32
            how = ("not measured" if gain is None else f"measured {gain:.2f}x float32's speed")
            return Precision(BF16, memory, f"{cpu} has AVX512_BF16 but no AMX: bfloat16 matrix products are "
                                           f"native; bfloat16 attention {how}")
        return Precision(F32, F32, f"{cpu} has neither AVX512_BF16 nor AMX: bfloat16 would be emulated "
                                   f"(slower than float32)")
    if caps.arch in ("arm64", "aarch64"):
        if "bf16" not in caps.features:
            return Precision(F32, F32, f"{cpu} has no BF16 extension")
        gains = {part: measured(part, BF16) for part in ("encoder", "memory")}
        dtypes = {part: BF16 if g is not None and g >= MIN_GAIN else F32 for part, g in gains.items()}
        text = ", ".join(f"{part} {'not measured' if g is None else f'{g:.2f}x'}" for part, g in gains.items())
        return Precision(dtypes["encoder"], dtypes["memory"],
                         f"{cpu} has the BF16 extension; bfloat16 speed vs float32 measured: {text}")
    return Precision(F32, F32, f"no known fast 16-bit arithmetic on {caps.arch or 'this'} CPUs")


# --------------------------------------------------------- reading the machine
def _cpu_info() -> tuple[str, set[str]]:
    """(model name, feature flags) of this CPU, from /proc/cpuinfo (Linux) or sysctl (macOS)."""
    name, flags = platform.processor() or "", set[str]()
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and not name.strip():
            name = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
    if platform.system() == "Darwin":
        try:
            out = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string", "hw.optional.arm.FEAT_BF16"],
                                 capture_output=True, text=True, timeout=5).stdout.split("\n")
            name = out[0].strip() or name
            if len(out) > 1 and out[1].strip() == "1":
                flags.add("bf16")
        except (OSError, subprocess.SubprocessError):
            pass
    return name.strip(), flags


def device_caps(device: torch.device | str) -> DeviceCaps:
    """The :class:`DeviceCaps` of ``device`` on this machine."""
    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        major, minor = torch.cuda.get_device_capability(index)
        return DeviceCaps("cuda", torch.cuda.get_device_name(index), capability=(major, minor))
    if device.type != "cpu":
        return DeviceCaps(device.type)
    name, flags = _cpu_info()
    arch = platform.machine().lower()
    features = set()
    if arch in ("x86_64", "amd64"):
        # PyTorch's own cpuinfo check covers every OS; /proc/cpuinfo names AMX-BF16 precisely
        def has(check: str) -> bool:
            return bool(getattr(torch.cpu, check, lambda: False)())

        if "avx512_bf16" in flags or has("_is_avx512_bf16_supported"):
            features.add("avx512_bf16")
        if "amx_bf16" in flags or (not flags and has("_is_amx_tile_supported")):
            features.add("amx_bf16")
    elif arch in ("arm64", "aarch64") and "bf16" in flags:
        features.add("bf16")
    return DeviceCaps("cpu", name, arch, frozenset(features))


# ----------------------------------------------------------------- the probe
def _timed(fn: Callable[[], object], repeats: int = 3) -> float:
    fn()  # warm-up (kernel selection, allocation)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def measure_cpu_gain(part: str, dtype: torch.dtype) -> float:
    """How many times faster than float32 a small stand-in of ``part`` runs in ``dtype`` on this CPU.

    "encoder": a (4096 x 384) @ (384 x 1536) matrix product (a Hiera MLP at 1024^2);
    "memory": one attention of 1024 queries over 4096 keys, 1 head of 256 channels (a slice of
    memory attention's cross-attention).
    """
    g = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        if part == "encoder":
            a, b = torch.randn(4096, 384, generator=g), torch.randn(384, 1536, generator=g)
            a16, b16 = a.to(dtype), b.to(dtype)
            run = {F32: lambda: a @ b, dtype: lambda: a16 @ b16}
        else:
            q, k = torch.randn(1, 1, 1024, 256, generator=g), torch.randn(1, 1, 4096, 256, generator=g)
            q16, k16 = q.to(dtype), k.to(dtype)
            sdpa = torch.nn.functional.scaled_dot_product_attention
            run = {F32: lambda: sdpa(q, k, k), dtype: lambda: sdpa(q16, k16, k16)}
        return _timed(run[F32]) / max(_timed(run[dtype]), 1e-9)


def _cache_file() -> Path:
    from .weights import cache_dir

    return cache_dir().parent / "precision.json"


def cached_probe(caps: DeviceCaps, measure: Callable[[str, torch.dtype], float] = measure_cpu_gain,
                 cache: Path | None = None) -> Probe:
    """A probe for :func:`choose_precision` that measures once per CPU, feature set and PyTorch version,
    and keeps the result in ``cache`` (default: ``precision.json`` in the user cache folder)."""
    path = cache or _cache_file()
    key = f"{caps.name}|{caps.arch}|{','.join(sorted(caps.features))}|torch {torch.__version__}"

    def probe(part: str, dtype: torch.dtype) -> float | None:
        if os.environ.get(PROBE_ENV, "1").strip().lower() in ("0", "no", "false", "off"):
            return None
        try:
            known = json.loads(path.read_text())
        except (OSError, ValueError):
            known = {}
        entry = f"{part} {_name(dtype)}"
        gain = known.get(key, {}).get(entry) if isinstance(known.get(key), dict) else None
        if isinstance(gain, (int, float)):
            return float(gain)
        gain = float(measure(part, dtype))
        known.setdefault(key, {})[entry] = round(gain, 3)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}")
            tmp.write_text(json.dumps(known, indent=1))
            tmp.replace(path)
        except OSError:
            pass  # a read-only cache only costs a new probe next time
        return gain

    return probe


def auto_precision(device: torch.device | str) -> Precision:
    """The precision :func:`napari_sam2.load_model` uses for ``device`` when no dtype is given."""
    caps = device_caps(device)
    return choose_precision(caps, cached_probe(caps) if caps.kind == "cpu" else None)
