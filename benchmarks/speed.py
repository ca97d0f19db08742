"""Propagation speed, interaction latency and agreement, side by side with Meta's reference.

    python benchmarks/speed.py                                  # tiny at 1024, 1 and 3 objects
    python benchmarks/speed.py --objects 1 5 --variant sam2.1_hiera_base_plus --image-size 512
    python benchmarks/speed.py --reference /tmp/sam2-reference/bin/python --json speed.json
    python benchmarks/speed.py --quick                          # a smoke run (CI): seconds, small model frame

Both sides get the same synthetic clip (textured background, one moving
textured blob per object, uint8 RGB written as JPEG and decoded with Pillow,
which is what Meta's predictor reads) and the same weights: the seeded
stand-in weights of ``tests/reference/seeded_weights.py`` in the official
checkpoint format (speed does not depend on the values; agreement is measured
on a network whose activations behave like a trained one's). Each run is a
fresh process. Per run:

* ``encode``: seconds to encode one frame (image encoder + projections);
* ``click``: milliseconds from a new click on an already encoded frame to its mask;
* ``s/frame``: seconds per propagated frame once the memory bank is full
  (frames 7 and later of the pass), all objects together;
* ``re-prop``: the same after a correction in the middle of the clip, re-propagating
  the same frames (embeddings are cached by then), and the speed-up over the first pass;
* components: encoder, memory attention, heads (prompt encoder + mask decoder) and
  memory encoder, in ms per propagated frame, next to what this machine's measured
  matrix-product peak would allow for their FLOPs (torch.utils.flop_counter);
* agreement: the share of mask pixels equal to our float32 run, and whether every
  object-present decision is the same.

The reference runs when ``--reference PYTHON`` names an interpreter that imports
``sam2`` (``../shared/tools/make-reference-env`` builds one); /tmp/sam2-reference
is tried by default. ``--variant edgetam`` runs beside Meta's EdgeTAM model
(``--edgetam-reference PYTHON``, built by ``../shared/tools/make-edgetam-env``;
/tmp/edgetam-reference is tried by default), driven by sam2 1.1.0's per-object
video predictor as in the parity fixtures. It runs in float32 on the CPU (the memories it stores are
bfloat16, as on a GPU; they are cast back to float32 for memory attention).

``--rss 10 60 200`` measures peak resident memory after propagating that many
frames (one object, default settings, a lazily read stack), one process each.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests" / "reference"))

REFERENCE_CONFIGS = {
    "sam2.1_hiera_tiny": "configs/sam2.1/sam2.1_hiera_t.yaml",
    "sam2.1_hiera_small": "configs/sam2.1/sam2.1_hiera_s.yaml",
    "sam2.1_hiera_base_plus": "configs/sam2.1/sam2.1_hiera_b+.yaml",
    "sam2.1_hiera_large": "configs/sam2.1/sam2.1_hiera_l.yaml",
    "sam2_hiera_tiny": "configs/sam2/sam2_hiera_t.yaml",
    "sam2_hiera_small": "configs/sam2/sam2_hiera_s.yaml",
    "sam2_hiera_base_plus": "configs/sam2/sam2_hiera_b+.yaml",
    "sam2_hiera_large": "configs/sam2/sam2_hiera_l.yaml",
}
FULL_BANK = 7  # frames 0..6 of a pass read fewer than 7 memories
WEIGHTS_SEED = 0


# ------------------------------------------------------------------ the clip
def blob_path(k: int, t: int, size: int) -> tuple[float, float]:
    """(row, col) centre of object k at frame t."""
    import math

    r0 = size * (0.25 + 0.5 * ((k * 0.37) % 1.0))
    c0 = size * (0.2 + 0.6 * ((k * 0.61 + 0.1) % 1.0))
    return (r0 + size * 0.01 * t * math.cos(k), c0 + size * 0.012 * t * math.sin(k + 1))


def make_frames(n: int, size: int, objects: int, seed: int = 7):
    """(n, size, size, 3) uint8: a static textured background and ``objects`` moving blobs."""
    import numpy as np

    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32) / size
    bg = np.stack([120 + 50 * np.sin(6 * rows + 2 * c) * np.cos(5 * cols - c) for c in range(3)], -1)
    radius = size * 0.06
    colours = rng.uniform(-90, 90, size=(max(objects, 1), 3))
    frames = np.empty((n, size, size, 3), np.uint8)
    for t in range(n):
        img = bg.copy()
        for k in range(objects):
            cr, cc = blob_path(k, t, size)
            d = np.sqrt((rows * size - cr) ** 2 + (cols * size - cc) ** 2) / radius
            alpha = 1 / (1 + np.exp(np.minimum(6 * (d - 1), 50)))
            img += alpha[..., None] * colours[k] * (0.8 + 0.2 * np.sin(d * 5 + k))[..., None]
        img += rng.normal(0, 4, img.shape)
        frames[t] = np.clip(img, 0, 255).astype(np.uint8)
    return frames


def write_clip(folder: Path, n: int, size: int, objects: int) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(make_frames(n, size, objects)):
        Image.fromarray(frame).save(folder / f"{t:05d}.jpg", quality=95)


def read_clip(folder: Path, lazy: bool = False):
    """The decoded JPEGs as (T, H, W, 3) uint8 (a lazy dask array with ``lazy``)."""
    import numpy as np
    from PIL import Image

    paths = sorted(folder.glob("*.jpg"))

    def load(p):
        return np.asarray(Image.open(p).convert("RGB"))

    if not lazy:
        return np.stack([load(p) for p in paths])
    import dask
    import dask.array as da

    first = load(paths[0])
    parts = [da.from_delayed(dask.delayed(load)(p), first.shape, np.uint8)[None] for p in paths]
    return da.concatenate(parts)


def prompts_for(k: int, size: int) -> list[list[float]]:
    return [list(blob_path(k, 0, size))]


def correction_for(size: int, frame: int) -> tuple[list[list[float]], list[int]]:
    """A positive click on object 1 plus a negative click beside it (a typical fix)."""
    r, c = blob_path(0, frame, size)
    return [[r, c], [r, c + size * 0.075]], [1, 0]


# --------------------------------------------------------------- timing helpers
class Components:
    """Wall time and FLOPs of named module calls (CUDA is synchronised around each)."""

    def __init__(self, device: str) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.flops: dict[str, float] = {}
        self.cuda = device.startswith("cuda")
        self._undo = []

    def wrap(self, name: str, obj, attr: str = "forward") -> None:
        import torch

        original = getattr(obj, attr)

        def timed(*args, **kwargs):
            if self.cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            out = original(*args, **kwargs)
            if self.cuda:
                torch.cuda.synchronize()
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0
            self.calls[name] = self.calls.get(name, 0) + 1
            return out

        setattr(obj, attr, timed)
        self._undo.append((obj, attr, original))

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()

    def unwrap(self) -> None:
        for obj, attr, original in reversed(self._undo):
            setattr(obj, attr, original)
        self._undo.clear()


def _sdpa_flops(query_shape, key_shape, value_shape, *args, **kwargs) -> int:
    """FLOPs of softmax(Q K^T) V: 2 L S (E + Ev) per batch and head."""
    *batch, length, e = query_shape
    s, ev = key_shape[-2], value_shape[-1]
    n = 1
    for b in batch:
        n *= b
    return 2 * n * length * s * (e + ev)


@contextlib.contextmanager
def count_flops(store: dict, name: str):
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    # torch's counter has no formula for the CPU flash-attention kernel: add one
    mapping = {}
    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is not None:
        mapping[op] = lambda q, k, v, *a, out_shape=None, **kw: _sdpa_flops(q, k, v)
    mode = FlopCounterMode(display=False, custom_mapping=mapping)
    with mode:
        yield
    store[name] = float(mode.get_total_flops())


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def matmul_peaks(device: str) -> dict[str, float]:
    """Measured GFLOP/s of 2048³ matrix products in float32, bfloat16 and float16 (best of 5 tries:
    on a shared machine the best try is the closest to what the hardware can do)."""
    import torch

    out = {}
    n = 2048
    for name, dt in (("float32", torch.float32), ("bfloat16", torch.bfloat16), ("float16", torch.float16)):
        try:
            a = torch.randn(n, n, device=device, dtype=dt)
            b = torch.randn(n, n, device=device, dtype=dt)
            a @ b
            best = float("inf")
            for _ in range(5):
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                a @ b
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                best = min(best, time.perf_counter() - t0)
            out[name] = 2 * n**3 / best / 1e9
        except RuntimeError:
            pass
    return out


# -------------------------------------------------------------------- children
def write_checkpoint(path: Path, variant: str, image_size: int) -> None:
    import dataclasses

    import torch
    from seeded_weights import official_shapes, seeded_state_dict

    from napari_sam2.model import VARIANTS
    from napari_sam2.model.checkpoint import CONFIG_KEY

    if variant == "edgetam":  # (stand-in weights with every norm parameter drawn, see edgetam_weights.py)
        from edgetam_weights import edgetam_state_dict

        obj = {"model": edgetam_state_dict(seed=WEIGHTS_SEED)}
    else:
        obj = {"model": seeded_state_dict(official_shapes(variant), seed=WEIGHTS_SEED)}
    if image_size != VARIANTS[variant].image_size:
        obj[CONFIG_KEY] = dataclasses.replace(VARIANTS[variant], image_size=image_size).to_dict()
    torch.save(obj, path)


def _frame_stats(stamps: list[float]) -> dict:
    per = [b - a for a, b in zip(stamps[:-1], stamps[1:])]  # time of frame i+1 of the pass
    full = per[FULL_BANK - 1:] or per
    return {"per_frame": per, "s_per_frame": statistics.mean(full) if full else float("nan")}


def child_ours(a) -> dict:
    import numpy as np
    import torch

    import napari_sam2

    torch.manual_seed(0)
    model = napari_sam2.load_model(a.ckpt, device=a.device, dtype=a.precision)
    net = model.net
    frames = read_clip(Path(a.clip), lazy=a.rss)
    size = int(frames.shape[1])
    n = int(frames.shape[0])
    result = {"side": "napari-sam2", "precision": model.precision, "device": str(model.device),
              "precision_reason": model.precision_reason}
    if a.rss:
        session = model.open_stack(frames)
        session.set_prompts(0, 1, points=prompts_for(0, size))
        for _ in session.propagate():
            pass
        session.close()
        return {**result, "frames": n, "peak_rss_mib": peak_rss_mib()}

    # encoding, on a separate session so that propagation starts with a cold cache
    probe = model.open_stack(frames)
    t0 = time.perf_counter()
    for f in (n - 1, n - 2, n - 3):
        probe.embedding(f)
    if str(model.device).startswith("cuda"):
        torch.cuda.synchronize()
    result["encode_s"] = (time.perf_counter() - t0) / 3
    probe.close()

    session = model.open_stack(frames)
    for k in range(a.objects):
        session.set_prompts(0, k + 1, points=prompts_for(k, size))
    clicks = []
    pts = prompts_for(0, size)
    for i in range(7):
        t0 = time.perf_counter()
        session.set_prompts(0, 1, points=[*pts, [pts[0][0] + i, pts[0][1] + 2]], labels=[1, 1])
        clicks.append(time.perf_counter() - t0)
    session.set_prompts(0, 1, points=pts)
    result["click_ms"] = 1000 * statistics.median(clicks[2:])

    comp = Components(str(model.device))
    comp.wrap("encoder", net, "encode_image")
    comp.wrap("memory attention", net.memory_attention)
    comp.wrap("heads", net, "decode")
    comp.wrap("memory encoder", net.memory_encoder)
    stamps = [time.perf_counter()]
    masks = np.zeros((n, a.objects, size, size), bool)
    for frame, obj_masks in session.propagate():
        stamps.append(time.perf_counter())
        for oid, m in obj_masks.items():
            masks[frame, oid - 1] = m
    first = _frame_stats(stamps)
    frames_done = len(stamps) - 1
    result["components_ms"] = {k: 1000 * v / frames_done for k, v in comp.seconds.items()}
    comp.unwrap()
    present = np.array([[float(session.presence(f, k + 1)) > 0 for k in range(a.objects)] for f in range(n)])

    mid = n // 2
    points, labels = correction_for(size, mid)
    session.set_prompts(mid, 1, points=points, labels=labels)
    stamps = [time.perf_counter()]
    for _ in session.propagate():
        stamps.append(time.perf_counter())
    again = _frame_stats(stamps)

    # FLOPs of one call of each component on a full memory bank
    flops: dict[str, float] = {}
    track = session._objects[1]
    with torch.inference_mode():
        emb = session.embedding(n - 1)
        x = session.source.model_input(n - 1, net.cfg.image_size, net.device, net.compute_dtype)
        with count_flops(flops, "encoder"):
            net.encode_image(x)
        with count_flops(flops, "memory attention"):
            feats = session._conditioned(1, track, n - 1, emb, False)
        with count_flops(flops, "heads"):
            from napari_sam2.model import tracker

            heads = tracker.sam_heads(net, feats, emb.high_res, None, None, True)
        with count_flops(flops, "memory encoder"):
            tracker.encode_memory(net, emb, heads.lowres, heads.object_score, False)
    per_frame_calls = {"encoder": 1, "memory attention": a.objects, "heads": a.objects, "memory encoder": a.objects}
    result["gflop_per_frame"] = {k: v * per_frame_calls[k] / 1e9 for k, v in flops.items()}
    result["component_dtype"] = {"encoder": str(net.compute_dtype), "memory attention": str(net.memory_dtype),
                                 "heads": str(net.dtype), "memory encoder": str(net.memory_dtype)}
    session.close()
    np.savez_compressed(a.out_masks, masks=masks, present=present)
    result.update(s_per_frame=first["s_per_frame"], per_frame=first["per_frame"],
                  reprop_s_per_frame=again["s_per_frame"], peak_rss_mib=peak_rss_mib(), frames=n)
    return result


def child_reference(a) -> dict:
    import numpy as np
    import torch
    from sam2.build_sam import build_sam2_video_predictor
    from seeded_weights import official_shapes, seeded_state_dict

    torch.manual_seed(0)
    overrides = [f"++model.image_size={a.image_size}", "++model.add_all_frames_to_correct_as_cond=true"]
    extra = {"vos_optimized": True} if a.reference_vos else {}
    if a.variant == "edgetam":  # Meta's EdgeTAM model driven by sam2 1.1.0's per-object predictor (docs/parity.md)
        from edgetam_weights import edgetam_state_dict
        from make_edgetam_fixtures import CONFIG as EDGETAM_CONFIG
        from make_edgetam_fixtures import _video_predictor_builder

        side = a.image_size // 16
        overrides += ["++model._target_=sam2_v11_video_predictor.SAM2VideoPredictor",
                      f"++model.memory_attention.layer.self_attention.feat_sizes=[{side},{side}]",
                      f"++model.memory_attention.layer.cross_attention.q_sizes=[{side},{side}]"]
        predictor = _video_predictor_builder(build_sam2_video_predictor)(
            EDGETAM_CONFIG, ckpt_path=None, device=a.device, mode="eval", hydra_overrides_extra=overrides, **extra)
        predictor.load_state_dict(edgetam_state_dict(seed=WEIGHTS_SEED), strict=True)
    else:
        predictor = build_sam2_video_predictor(REFERENCE_CONFIGS[a.variant], ckpt_path=None, device=a.device,
                                               mode="eval", hydra_overrides_extra=overrides, **extra)
        predictor.load_state_dict(seeded_state_dict(official_shapes(a.variant), seed=WEIGHTS_SEED), strict=True)
    predictor.fill_hole_area = 0  # needs a CUDA extension; napari-sam2 has none either
    attn_forward = predictor.memory_attention.forward

    def attn_fp32(*args, **kwargs):  # stored memories are bfloat16; CPU has no autocast to mix them
        for key in ("memory", "memory_pos"):
            if kwargs.get(key) is not None:
                kwargs[key] = kwargs[key].float()
        return attn_forward(*args, **kwargs)

    if not a.device.startswith("cuda"):
        predictor.memory_attention.forward = attn_fp32
    precision = "bfloat16 autocast" if a.reference_autocast else "float32"
    side_name = "reference (EdgeTAM)" if a.variant == "edgetam" else "reference (sam2 1.1.0)"
    result = {"side": side_name + (" vos_optimized" if a.reference_vos else ""),
              "precision": precision, "device": a.device}
    state = predictor.init_state(video_path=a.clip)
    n = state["num_frames"]
    size = state["video_height"]
    if a.rss:
        predictor.add_new_points_or_box(state, 0, 1, points=np.array([prompts_for(0, size)[0][::-1]], np.float32),
                                        labels=np.array([1], np.int32))
        for _ in predictor.propagate_in_video(state):
            pass
        return {**result, "frames": n, "peak_rss_mib": peak_rss_mib()}

    t0 = time.perf_counter()
    for f in (n - 1, n - 2, n - 3):
        predictor._get_image_feature(state, f, 1)
    result["encode_s"] = (time.perf_counter() - t0) / 3

    def xy(points):
        return np.asarray([[c, r] for r, c in points], np.float32)

    for k in range(a.objects):
        predictor.add_new_points_or_box(state, 0, k + 1, points=xy(prompts_for(k, size)),
                                        labels=np.array([1], np.int32))
    clicks = []
    pts = prompts_for(0, size)
    for i in range(7):
        t0 = time.perf_counter()
        predictor.add_new_points_or_box(state, 0, 1, points=xy([*pts, [pts[0][0] + i, pts[0][1] + 2]]),
                                        labels=np.array([1, 1], np.int32), clear_old_points=True)
        clicks.append(time.perf_counter() - t0)
    predictor.add_new_points_or_box(state, 0, 1, points=xy(pts), labels=np.array([1], np.int32),
                                    clear_old_points=True)
    result["click_ms"] = 1000 * statistics.median(clicks[2:])

    comp = Components(a.device)
    comp.wrap("encoder", predictor, "forward_image")
    comp.wrap("memory attention", predictor.memory_attention)
    comp.wrap("heads", predictor.sam_mask_decoder)
    comp.wrap("memory encoder", predictor.memory_encoder)
    stamps = [time.perf_counter()]
    masks = np.zeros((n, a.objects, size, size), bool)
    present = np.zeros((n, a.objects), bool)
    for frame, obj_ids, video_res in predictor.propagate_in_video(state):
        stamps.append(time.perf_counter())
        for i, oid in enumerate(obj_ids):
            masks[frame, oid - 1] = (video_res[i, 0] > 0).cpu().numpy()
            out = state["output_dict_per_obj"][i]
            rec = out["cond_frame_outputs"].get(frame) or out["non_cond_frame_outputs"].get(frame)
            present[frame, oid - 1] = float(rec["object_score_logits"].reshape(-1)[0]) > 0
    first = _frame_stats(stamps)
    result["components_ms"] = {k: 1000 * v / (len(stamps) - 1) for k, v in comp.seconds.items()}
    comp.unwrap()
    mid = n // 2
    points, labels = correction_for(size, mid)
    predictor.add_new_points_or_box(state, mid, 1, points=xy(points), labels=np.array(labels, np.int32))
    stamps = [time.perf_counter()]
    for _ in predictor.propagate_in_video(state):
        stamps.append(time.perf_counter())
    again = _frame_stats(stamps)
    np.savez_compressed(a.out_masks, masks=masks, present=present)
    result.update(s_per_frame=first["s_per_frame"], per_frame=first["per_frame"],
                  reprop_s_per_frame=again["s_per_frame"], peak_rss_mib=peak_rss_mib(), frames=n)
    return result


# ---------------------------------------------------------------------- parent
def find_reference(explicit: str | None) -> str | None:
    candidates = [explicit] if explicit else [sys.executable, "/tmp/sam2-reference/bin/python"]
    for py in candidates:
        if py and Path(py).exists():
            ok = subprocess.run([py, "-c", "import sam2, hydra"], capture_output=True).returncode == 0
            if ok:
                return py
    if explicit:
        sys.exit(f"--reference {explicit}: that interpreter cannot import sam2 (build one with "
                 "../shared/tools/make-reference-env).")
    return None


def find_edgetam_reference(explicit: str | None) -> str | None:
    """A Python with Meta's EdgeTAM code (its package is also named ``sam2``, with a ``perceiver`` module)."""
    py = explicit or "/tmp/edgetam-reference/bin/python"
    if Path(py).exists() and subprocess.run([py, "-c", "import sam2.modeling.perceiver, sam2_v11_video_predictor"],
                                            capture_output=True).returncode == 0:
        return py
    if explicit:
        sys.exit(f"--edgetam-reference {explicit}: that interpreter cannot import EdgeTAM's code (build one with "
                 "../shared/tools/make-edgetam-env).")
    return None


def run_child(python: str, role: str, args: list[str]) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")])))
    if role == "reference":
        env["PYTHONPATH"] = str(REPO / "tests" / "reference")
    proc = subprocess.run([python, __file__, "--child", role, *args], capture_output=True, text=True, env=env)
    if proc.returncode:
        raise RuntimeError(f"{role} run failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def agreement(a_path: Path, b_path: Path) -> dict:
    import numpy as np

    a, b = np.load(a_path), np.load(b_path)
    n = min(len(a["masks"]), len(b["masks"]))
    same = a["masks"][:n] == b["masks"][:n]
    per_obj_frame = same.reshape(n, same.shape[1], -1).mean(-1)
    return {"pixels": float(same.mean()), "worst_frame": float(per_obj_frame.min()),
            "presence_same": bool((a["present"][:n] == b["present"][:n]).all())}


def machine() -> dict:
    import torch

    import napari_sam2

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__,
            "napari_sam2": getattr(napari_sam2, "__version__", "?"),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "date": time.strftime("%Y-%m-%d")}


def fmt_table(rows: list[list], head: list[str]) -> str:
    cols = [head, *[[str(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cols) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in cols]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variant", nargs="+", default=["sam2.1_hiera_tiny"],
                   choices=[*sorted(REFERENCE_CONFIGS), "edgetam"],
                   help="edgetam runs beside Meta's EdgeTAM code (--edgetam-reference)")
    p.add_argument("--image-size", type=int, nargs="+", default=[1024], help="model frame side(s)")
    p.add_argument("--frame-size", type=int, default=None, help="clip frame side (default: the model frame)")
    p.add_argument("--objects", type=int, nargs="+", default=[1, 3])
    p.add_argument("--frames", type=int, default=12)
    p.add_argument("--precision", nargs="+", default=["float32", "auto"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--reference", default=None, help="a Python that imports Meta's sam2 (default: look for one)")
    p.add_argument("--edgetam-reference", default=None,
                   help="a Python that imports Meta's EdgeTAM code (../shared/tools/make-edgetam-env; default: "
                        "/tmp/edgetam-reference if it works)")
    p.add_argument("--no-reference", action="store_true")
    p.add_argument("--reference-autocast", action="store_true",
                   help="also run the reference under torch.autocast(bfloat16), as Meta's demos do on GPUs")
    p.add_argument("--reference-vos", action="store_true",
                   help="also run the reference's compiled vos_optimized predictor (GPU)")
    p.add_argument("--rss", type=int, nargs="*", default=None, help="frame counts for the peak-memory runs")
    p.add_argument("--quick", action="store_true", help="smoke run: model frame 256, 9 frames, 1 object")
    p.add_argument("--json", default=None, help="also write every number to this file")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--ckpt", default=None, help=argparse.SUPPRESS)
    p.add_argument("--clip", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out-masks", default=None, help=argparse.SUPPRESS)
    p.add_argument("--child-rss", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        a.variant, a.image_size, a.objects, a.precision, a.rss = (a.variant[0], a.image_size[0], a.objects[0],
                                                                  a.precision[0], a.child_rss)
        import torch

        fn = child_ours if a.child == "ours" else child_reference
        autocast = (torch.autocast(a.device.split(":")[0], dtype=torch.bfloat16)
                    if a.child == "reference" and a.reference_autocast else contextlib.nullcontext())
        with torch.inference_mode(), autocast:
            print(json.dumps(fn(a)))
        return 0
    if a.quick:
        a.image_size, a.objects, a.frames = [256], [1], 9
        a.precision = ["float32", "auto"]
    ref_py = None if a.no_reference else find_reference(a.reference)
    edgetam_py = None if a.no_reference or "edgetam" not in a.variant else find_edgetam_reference(a.edgetam_reference)
    info = machine()
    peaks = matmul_peaks(a.device)
    print(f"machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']} ({info['torch_threads']} threads)"
          f"{', ' + info['cuda'] if info['cuda'] else ''}; python {info['python']}; {info['date']}")
    print("matrix-product peak: " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peaks.items()))
    from napari_sam2.precision import auto_precision

    auto = auto_precision(a.device)
    info["auto_precision"] = {"choice": auto.describe(), "reason": auto.reason}
    print(f"auto precision on {a.device}: {auto.describe()} ({auto.reason})")
    print(f"reference: {ref_py or 'not available (see --reference)'}")
    if "edgetam" in a.variant:
        print(f"EdgeTAM reference: {edgetam_py or 'not available (see --edgetam-reference)'}")
    report = {"machine": info, "matmul_gflops": peaks, "runs": [], "rss": []}
    with tempfile.TemporaryDirectory(prefix="napari-sam2-bench-") as tmp:
        tmp = Path(tmp)
        for variant in a.variant:
            for image_size in a.image_size:
                frame_size = a.frame_size or image_size
                ckpt = tmp / f"{variant}-{image_size}.pt"
                write_checkpoint(ckpt, variant, image_size)
                for objects in a.objects:
                    clip = tmp / f"clip-{frame_size}-{objects}"
                    write_clip(clip, a.frames, frame_size, objects)
                    common = ["--variant", variant, "--image-size", str(image_size), "--objects", str(objects),
                              "--device", a.device, "--ckpt", str(ckpt), "--clip", str(clip)]
                    runs = {}
                    for prec in a.precision:
                        masks = tmp / f"ours-{prec}.npz"
                        runs[prec] = run_child(sys.executable, "ours", [*common, "--precision", prec,
                                                                        "--out-masks", str(masks)])
                        runs[prec]["masks"] = masks
                    side_py = edgetam_py if variant == "edgetam" else ref_py
                    if side_py:
                        variants = [("reference", [])]
                        if a.reference_autocast:
                            variants.append(("reference autocast", ["--reference-autocast"]))
                        if a.reference_vos:
                            variants.append(("reference vos", ["--reference-vos", "--reference-autocast"]))
                        for name, flags in variants:
                            masks = tmp / f"{name.replace(' ', '-')}.npz"
                            runs[name] = run_child(side_py, "reference", [*common, *flags, "--out-masks", str(masks)])
                            runs[name]["masks"] = masks
                    base = runs.get("reference")
                    exact = runs.get("float32")
                    rows = []
                    for r in runs.values():
                        if exact is not None:
                            r["agreement_vs_float32"] = agreement(r["masks"], exact["masks"])
                        r["speedup_vs_reference"] = base["s_per_frame"] / r["s_per_frame"] if base else None
                        r["reprop_speedup"] = r["s_per_frame"] / r["reprop_s_per_frame"]
                        ag = r.get("agreement_vs_float32")
                        rows.append([
                            r["side"], r["precision"], f"{r['encode_s']:.2f}", f"{r['click_ms']:.0f}",
                            f"{r['s_per_frame']:.2f}",
                            f"{r['speedup_vs_reference']:.2f}x" if base else "-",
                            f"{r['reprop_s_per_frame']:.2f} ({r['reprop_speedup']:.1f}x)",
                            f"{100 * ag['pixels']:.2f}% / {'same' if ag['presence_same'] else 'DIFFER'}" if ag else "-",
                            f"{r['peak_rss_mib']:.0f}",
                        ])
                        r["masks"] = str(r["masks"])
                        report["runs"].append({"variant": variant, "image_size": image_size,
                                               "frame_size": frame_size, "objects": objects, **r})
                    print(f"\n{variant}, model frame {image_size}, frames {frame_size}x{frame_size}, "
                          f"{objects} object(s), {a.frames} frames")
                    print(fmt_table(rows, ["side", "precision", "encode s", "click ms", "s/frame", "vs ref",
                                           "re-prop s/frame", "pixels / presence vs fp32", "peak RSS MiB"]))
                    for r in runs.values():
                        if "gflop_per_frame" not in r:
                            comps = ", ".join(f"{k} {v:.0f}" for k, v in r["components_ms"].items())
                            print(f"  {r['side']} components, ms/frame: {comps}")
                            continue
                        crow = []
                        for comp, ms in r["components_ms"].items():
                            gf = r["gflop_per_frame"].get(comp, 0.0)
                            dt = r["component_dtype"][comp].removeprefix("torch.")
                            ideal = 1000 * gf / peaks.get(dt, float("nan"))
                            crow.append([comp, dt, f"{ms:.0f}", f"{gf:.0f}", f"{ideal:.0f}",
                                         f"{100 * ideal / ms:.0f}%" if ms else "-"])
                        print(f"  {r['side']} {r['precision']}, per propagated frame:")
                        print("  " + fmt_table(crow, ["component", "dtype", "ms", "GFLOP", "ms at peak",
                                                      "of peak"]).replace("\n", "\n  "))
        if a.rss:
            variant, image_size = a.variant[0], a.image_size[0]
            frame_size = a.frame_size or image_size
            ckpt = tmp / f"{variant}-{image_size}.pt"
            clip = tmp / "rss-clip"
            write_clip(clip, max(a.rss), frame_size, 1)
            rows = []
            for n in sorted(a.rss):
                sub = tmp / f"rss-{n}"
                sub.mkdir()
                for p_ in sorted(clip.glob("*.jpg"))[:n]:
                    (sub / p_.name).symlink_to(p_)
                common = ["--variant", variant, "--image-size", str(image_size), "--objects", "1",
                          "--device", a.device, "--ckpt", str(ckpt), "--clip", str(sub), "--child-rss"]
                ours = run_child(sys.executable, "ours", [*common, "--precision", "auto"])
                side_py = edgetam_py if variant == "edgetam" else ref_py
                ref = run_child(side_py, "reference", common) if side_py else None
                rows.append([n, f"{ours['peak_rss_mib']:.0f}", f"{ref['peak_rss_mib']:.0f}" if ref else "-"])
                report["rss"].append({"frames": n, "ours_mib": ours["peak_rss_mib"],
                                      "reference_mib": ref["peak_rss_mib"] if ref else None})
            print(f"\npeak RSS after propagating 1 object ({variant}, {frame_size}x{frame_size}, default settings)")
            print(fmt_table(rows, ["frames", "napari-sam2 MiB", "reference MiB"]))
            if len(report["rss"]) > 1:
                r0, r1 = report["rss"][0], report["rss"][-1]
                print(f"napari-sam2 growth {r1['frames']} / {r0['frames']} frames: "
                      f"{r1['ours_mib'] / r0['ours_mib']:.2f}x")
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
