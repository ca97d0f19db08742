"""The precision rule (napari_sam2.precision): every branch by simulating the device's capabilities,
the cached probe, and a model whose two heavy parts run in different dtypes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import napari_sam2
from napari_sam2.precision import DeviceCaps, cached_probe, choose_precision, device_caps

BF16, F16, F32 = torch.bfloat16, torch.float16, torch.float32


def _never(part, dtype):
    raise AssertionError("the hardware flags decide here; nothing may be measured")


@pytest.mark.parametrize(("capability", "name", "expected"), [
    ((9, 0), "H100", (BF16, BF16)),
    ((8, 0), "A100", (BF16, BF16)),
    ((8, 6), "RTX 3090", (BF16, BF16)),
    ((7, 5), "Tesla T4", (F16, F16)),  # torch.cuda.is_bf16_supported() is True here: emulation
    ((7, 0), "Tesla V100", (F16, F16)),
    ((6, 1), "GTX 1080", (F32, F32)),
])
def test_cuda_uses_bfloat16_only_where_it_is_native(capability, name, expected):
    chosen = choose_precision(DeviceCaps("cuda", name, capability=capability), _never)
    assert (chosen.encoder, chosen.memory) == expected
    assert name in chosen.reason and f"{capability[0]}.{capability[1]}" in chosen.reason


def test_mps_stays_float32_until_measured():
    chosen = choose_precision(DeviceCaps("mps"), _never)
    assert (chosen.encoder, chosen.memory) == (F32, F32) and "MPS" in chosen.reason


def test_x86_with_amx_runs_both_parts_in_bfloat16():
    chosen = choose_precision(DeviceCaps("cpu", "Xeon 8480", "x86_64", frozenset({"avx512_bf16", "amx_bf16"})), _never)
    assert (chosen.encoder, chosen.memory) == (BF16, BF16) and "AMX" in chosen.reason


@pytest.mark.parametrize("features", [frozenset(), frozenset({"avx2"})])
def test_x86_without_native_bfloat16_stays_float32(features):
    """Skylake-SP / Cascade Lake / Ice Lake Xeons have AVX-512 BW/VL/DQ (oneDNN's old bf16 check said yes)
    but neither AVX512_BF16 nor AMX: bfloat16 would be emulated."""
    chosen = choose_precision(DeviceCaps("cpu", "Xeon Gold 6248", "x86_64", features), _never)
    assert (chosen.encoder, chosen.memory) == (F32, F32)
    assert "neither AVX512_BF16 nor AMX" in chosen.reason


@pytest.mark.parametrize(("gain", "memory"), [(0.98, F32), (1.05, F32), (1.5, BF16), (None, F32)])
def test_x86_avx512_bf16_without_amx_measures_attention(gain, memory):
    """Zen 4: the encoder's matrix products are native bfloat16; attention runs in whichever dtype is
    faster (PyTorch's CPU attention kernel measured no faster in bfloat16 there)."""
    asked = []

    def probe(part, dtype):
        asked.append((part, dtype))
        return gain

    chosen = choose_precision(DeviceCaps("cpu", "AMD EPYC 9654", "x86_64", frozenset({"avx512_bf16"})), probe)
    assert asked == [("memory", BF16)]
    assert (chosen.encoder, chosen.memory) == (BF16, memory)
    assert chosen.describe() == ("bfloat16" if memory == BF16 else "encoder bfloat16, memory float32")


def test_arm_uses_bfloat16_per_part_only_with_the_extension_and_a_measured_gain():
    gains = {"encoder": 1.8, "memory": 0.9}
    chosen = choose_precision(DeviceCaps("cpu", "Neoverse V1", "aarch64", frozenset({"bf16"})),
                              lambda part, dtype: gains[part])
    assert (chosen.encoder, chosen.memory) == (BF16, F32)
    assert "1.80x" in chosen.reason and "0.90x" in chosen.reason
    plain = choose_precision(DeviceCaps("cpu", "Cortex-A72", "aarch64"), _never)
    assert (plain.encoder, plain.memory) == (F32, F32) and "no BF16 extension" in plain.reason
    unmeasured = choose_precision(DeviceCaps("cpu", "Neoverse V1", "aarch64", frozenset({"bf16"})))
    assert (unmeasured.encoder, unmeasured.memory) == (F32, F32)


def test_probe_measures_once_per_machine_and_torch_version(tmp_path, monkeypatch):
    caps = DeviceCaps("cpu", "Some CPU", "x86_64", frozenset({"avx512_bf16"}))
    calls = []

    def measure(part, dtype):
        calls.append(part)
        return 1.25

    cache = tmp_path / "precision.json"
    assert cached_probe(caps, measure, cache)("memory", BF16) == 1.25
    assert cached_probe(caps, measure, cache)("memory", BF16) == 1.25  # a new process would read the file
    assert calls == ["memory"]
    other = DeviceCaps("cpu", "Other CPU", "x86_64", frozenset({"avx512_bf16"}))
    cached_probe(other, measure, cache)("memory", BF16)
    assert calls == ["memory", "memory"]
    monkeypatch.setenv("NAPARI_SAM2_PROBE", "0")  # the override: nothing measured, measured parts stay float32
    assert cached_probe(DeviceCaps("cpu", "Third"), measure, cache)("memory", BF16) is None
    assert len(calls) == 2


def test_this_cpu_is_read_from_its_flags():
    caps = device_caps("cpu")
    assert caps.kind == "cpu" and caps.arch
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.lower().startswith(("flags", "features")))
    except (OSError, StopIteration):
        pytest.skip("no /proc/cpuinfo here")
    words = set(flags.split(":", 1)[1].split())
    if caps.arch in ("x86_64", "amd64"):
        assert ("avx512_bf16" in caps.features) == ("avx512_bf16" in words)
        assert ("amx_bf16" in caps.features) == ("amx_bf16" in words)


def test_heavy_parts_in_different_dtypes_track(tiny_checkpoint):
    """The Zen 4 choice (encoder bfloat16, memory side float32) runs end to end: memory attention sees
    float32, the prompted frame equals the all-bfloat16 mode's (same encoder, same float32 heads) and the
    tracked frames come from float32 attention (they differ from the all-bfloat16 ones)."""
    rng = np.random.default_rng(3)
    stack = (rng.random((4, 48, 64)) * 255).astype(np.uint8)
    stack[:, 10:30, 15:40] = 255
    results, seen = {}, []
    for name, (enc, mem) in {"split": (BF16, F32), "bf16": (BF16, BF16)}.items():
        model = napari_sam2.load_model(tiny_checkpoint, device="cpu", dtype="float32")
        model.net.set_compute_dtype(enc, mem)
        assert {p.dtype for p in model.net.image_encoder.parameters()} == {enc}
        assert {p.dtype for p in model.net.memory_attention.parameters()} == {mem}
        assert {p.dtype for p in model.net.memory_encoder.parameters()} == {mem}
        hook = model.net.memory_attention.register_forward_pre_hook(
            lambda module, args, kwargs, name=name: seen.append((name, kwargs["curr"].dtype, kwargs["memory"].dtype)),
            with_kwargs=True)
        session = model.open_stack(stack)
        session.set_prompts(0, 1, points=[[20, 27]])
        list(session.propagate())
        hook.remove()
        results[name] = np.stack([session.logits(f, 1) for f in range(4)])
        if name == "split":
            assert model.precision == "encoder bfloat16, memory float32 (mixed)"
        session.close()
    assert {(d1, d2) for n, d1, d2 in seen if n == "split"} == {(F32, F32)}
    assert {(d1, d2) for n, d1, d2 in seen if n == "bf16"} == {(BF16, BF16)}
    assert np.isfinite(results["split"]).all()
    np.testing.assert_array_equal(results["split"][0], results["bf16"][0])
    assert not np.array_equal(results["split"][1:], results["bf16"][1:])


def test_offline_stand_in_follows_the_same_rule():
    """The demo's untrained stand-in model used to run float32 while `info` promised the fast mode."""
    from napari_sam2.demo import _untrained_model
    from napari_sam2.precision import auto_precision

    model = _untrained_model()
    chosen = auto_precision("cpu")
    assert model.dtype == chosen.encoder and model.net.memory_dtype == chosen.memory
    assert model.precision_reason == chosen.reason
