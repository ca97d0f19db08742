"""Make the video-tracking parity fixtures with Meta's reference SAM 2 video predictor.

Runs ONLY in the reference environment (Meta's ``sam2`` 1.1.0 on CPU torch),
never in the project's test run:

    bash ../shared/tools/make-reference-env /tmp/sam2-reference
    /tmp/sam2-reference/bin/python tests/reference/make_video_fixtures.py

For ``sam2.1_hiera_tiny`` and ``sam2_hiera_tiny`` it builds
``SAM2VideoPredictor`` at a reduced internal resolution of 512 (parameter
shapes do not depend on it), loads the seeded weights of ``seeded_weights.py``
strictly, writes a short synthetic clip as JPEG files, replays a fixed
interaction script (prompts on several frames and objects, propagations
forward and backward, a correction on an already tracked frame) and records
every mask the predictor hands back, at video resolution, in
``tests/data/video_parity/<variant>_512.npz``.  ``docs/parity-video.md``
describes the settings and the file format.

Conventions stored in the file are the project's (numpy / napari): points are
``(row, col)`` pixels, boxes ``(row0, col0, row1, col1)``, a mask prompt is an
``(H, W)`` bool array.  They are converted to the reference's ``(x, y)`` /
XYXY only when calling it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # the predictor wraps its loops in tqdm

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))

import seeded_weights  # noqa: E402  (pure torch + stdlib, shared with our tests)

FORMAT_VERSION = 1
OUT_DIR = REPO / "tests" / "data" / "video_parity"
REFERENCE = "sam2 1.1.0"
IMAGE_SIZE = 512

#: our variant name -> reference Hydra config
CONFIGS: dict[str, str] = {
    "sam2.1_hiera_tiny": "configs/sam2.1/sam2.1_hiera_t.yaml",
    "sam2_hiera_tiny": "configs/sam2/sam2_hiera_t.yaml",
}

#: Overrides passed to build_sam2_video_predictor.  It appends its own
#: post-processing overrides after these (stability fallback, binarised
#: click masks for the memory encoder, fill_hole_area=8); hole filling is
#: switched off afterwards on the built predictor (see build_reference).
HYDRA_OVERRIDES = [
    f"++model.image_size={IMAGE_SIZE}",
    "++model.add_all_frames_to_correct_as_cond=true",
]
FILL_HOLE_AREA = 0

NUM_FRAMES = 10
FRAME_HW = (48, 62)  # non-square, W not a multiple of 16; small enough for < 1.5 MB files
FRAME_SEED = 2024
JPEG_QUALITY = 95

# Moving objects: centre (row, col) at frame 0, velocity (rows, cols) per
# frame, radii (rows, cols), RGB offset from the background.  Objects 1-3 are
# the ones prompted below; the 4th is an unprompted distractor.
BLOBS = [
    dict(c0=(15.0, 12.4), v=(0.9, 1.95), r=(6.75, 8.5), rgb=(110.0, -60.0, -70.0)),
    dict(c0=(35.25, 48.0), v=(-0.4, -1.0), r=(7.5, 9.3), rgb=(-70.0, 90.0, -40.0)),
    dict(c0=(5.7, 54.6), v=(0.9, -1.15), r=(6.0, 7.75), rgb=(-60.0, -50.0, 120.0)),
    dict(c0=(39.0, 10.9), v=(-0.6, 0.8), r=(4.5, 5.4), rgb=(80.0, 80.0, -90.0)),
]

# Index of the correction op whose negative point is chosen at run time from
# the mask the reference produced for obj 1 on frame 5 (see choose_negative_point).
CORRECTION_OP = 4


def blob_centre(k: int, t: int) -> tuple[float, float]:
    b = BLOBS[k]
    return b["c0"][0] + b["v"][0] * t, b["c0"][1] + b["v"][1] * t


def make_frames(seed: int = FRAME_SEED) -> np.ndarray:
    """(T, H, W, 3) uint8: textured background + moving, textured soft-edged blobs + noise."""
    rng = np.random.default_rng(seed)
    h, w = FRAME_HW
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    # Static background, centred on the ImageNet mean with about one normalised unit of spread.
    bg = np.empty((h, w, 3))
    bg[..., 0] = 124 + 60 * (cols / w - 0.5)
    bg[..., 1] = 116 + 50 * (rows / h - 0.5)
    bg[..., 2] = 104 - 40 * ((rows + cols) / (h + w) - 0.5)
    for _ in range(4):  # a few static low-contrast bumps
        r0, c0 = rng.uniform(0, h), rng.uniform(0, w)
        s = rng.uniform(6, 14)
        bump = np.exp(-0.5 * (((rows - r0) ** 2 + (cols - c0) ** 2) / s**2))
        bg += bump[..., None] * rng.uniform(-45, 45, size=3)
    # Fixed texture: a couple of oriented gratings.
    for _ in range(3):
        theta, period, phase = rng.uniform(0, np.pi), rng.uniform(5, 11), rng.uniform(0, 2 * np.pi)
        g = np.sin(2 * np.pi * (rows * np.sin(theta) + cols * np.cos(theta)) / period + phase)
        bg += g[..., None] * rng.uniform(-10, 10, size=3)
    phases = rng.uniform(0, 2 * np.pi, size=len(BLOBS))

    frames = []
    for t in range(NUM_FRAMES):
        img = bg.copy()
        for k, b in enumerate(BLOBS):
            cr, cc = blob_centre(k, t)
            d2 = ((rows - cr) / b["r"][0]) ** 2 + ((cols - cc) / b["r"][1]) ** 2
            alpha = 1.0 / (1.0 + np.exp(6.0 * (np.sqrt(d2) - 1.0)))  # soft disc
            # texture that moves with the object
            tex = 0.8 + 0.2 * np.sin((rows - cr) * 0.9 + (cols - cc) * 0.5 + phases[k])
            img += (alpha * tex)[..., None] * np.asarray(b["rgb"])
        img += rng.normal(0.0, 4.0, size=img.shape)
        frames.append(np.clip(np.rint(img), 0, 255).astype(np.uint8))
    return np.stack(frames)


def write_jpegs(frames: np.ndarray, folder: Path) -> np.ndarray:
    """Write 00000.jpg ... and return the frames as PIL decodes them (what the reference sees)."""
    from PIL import Image

    decoded = []
    for t, frame in enumerate(frames):
        path = folder / f"{t:05d}.jpg"
        Image.fromarray(frame).save(path, quality=JPEG_QUALITY)
        decoded.append(np.array(Image.open(path).convert("RGB")))
    return np.stack(decoded)


def ellipse_mask(centre: tuple[float, float], radii: tuple[float, float]) -> np.ndarray:
    h, w = FRAME_HW
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    return ((rows - centre[0]) / radii[0]) ** 2 + ((cols - centre[1]) / radii[1]) ** 2 <= 1.0


def base_ops() -> tuple[list[dict], dict[int, np.ndarray]]:
    """The interaction script in our conventions (op 4's point is filled in at run time)."""
    c1 = blob_centre(0, 0)
    c2 = blob_centre(1, 3)
    r2 = BLOBS[1]["r"]
    c3 = blob_centre(2, 7)
    masks = {2: ellipse_mask((c3[0] + 0.5, c3[1] - 0.75), (6.5, 8.25))}
    ops = [
        dict(op="prompt", frame=0, obj=1,
             points_rc=[[c1[0] - 1.75, c1[1] - 2.6], [c1[0] + 2.25, c1[1] + 3.5]],
             labels=[1, 1], box_rc=None, mask=False),
        dict(op="prompt", frame=3, obj=2, points_rc=None, labels=None,
             box_rc=[c2[0] - 1.1 * r2[0], c2[1] - 1.1 * r2[1] + 0.5,
                     c2[0] + 1.1 * r2[0] + 0.25, c2[1] + 1.1 * r2[1]],
             mask=False),
        dict(op="prompt", frame=7, obj=3, points_rc=None, labels=None, box_rc=None, mask=True),
        dict(op="propagate", start=None, reverse=False, max_frames=None),
        dict(op="prompt", frame=5, obj=1, points_rc=None, labels=[0], box_rc=None, mask=False),
        dict(op="propagate", start=None, reverse=False, max_frames=None),
        dict(op="propagate", start=NUM_FRAMES - 1, reverse=True, max_frames=None),
        dict(op="propagate", start=6, reverse=True, max_frames=None),
        # an object whose only prompt is an empty mask: the object-absent paths
        # (no_obj_ptr, no_obj_embed_spatial in its memory) take part
        dict(op="prompt", frame=2, obj=4, points_rc=None, labels=None, box_rc=None, mask=True),
        dict(op="propagate", start=None, reverse=False, max_frames=3),
    ]
    masks[8] = np.zeros_like(masks[2])
    # quarter-pixel coordinates: exact in float32 and in the JSON text
    for op in ops:
        for key in ("points_rc", "box_rc"):
            if op.get(key) is not None:
                op[key] = (np.round(np.asarray(op[key], dtype=np.float64) * 4) / 4).tolist()
    return ops, masks


def choose_negative_point(logits: np.ndarray) -> list[float]:
    """A pixel well inside the mask: the positive pixel with the largest logit among
    those whose 5x5 neighbourhood is all positive (falls back to any positive pixel);
    offset by a quarter pixel so the coordinate is not an integer."""
    pos = logits > 0
    if not pos.any():
        raise RuntimeError("obj 1 has an empty mask on frame 5; cannot place a correction")
    h, w = pos.shape
    pad = np.pad(pos, 2, constant_values=False)
    interior = np.ones_like(pos)
    for dr in range(5):
        for dc in range(5):
            interior &= pad[dr:dr + h, dc:dc + w]
    cand = interior if interior.any() else pos
    score = np.where(cand, logits, -np.inf)
    r, c = np.unravel_index(int(np.argmax(score)), score.shape)
    return [float(r) + 0.25, float(c) - 0.25]


def build_reference(variant: str, seed: int):
    from sam2.build_sam import build_sam2_video_predictor

    predictor = build_sam2_video_predictor(
        CONFIGS[variant], ckpt_path=None, device="cpu", mode="eval",
        hydra_overrides_extra=list(HYDRA_OVERRIDES), apply_postprocessing=True,
    )
    expected = seeded_weights.official_shapes(variant)
    actual = {k: list(v.shape) for k, v in predictor.state_dict().items()}
    if actual != expected:
        missing = sorted(set(expected) - set(actual))
        extra = sorted(set(actual) - set(expected))
        wrong = sorted(k for k in set(actual) & set(expected) if actual[k] != expected[k])
        raise AssertionError(f"{variant}: state dict differs from the key table: "
                             f"missing={missing[:5]} extra={extra[:5]} wrong_shape={wrong[:5]}")
    weights = seeded_weights.seeded_state_dict(expected, seed=seed)
    predictor.load_state_dict(weights, strict=True)

    # build_sam2_video_predictor appends fill_hole_area=8 after our overrides.
    predictor.fill_hole_area = FILL_HOLE_AREA
    dec = predictor.sam_mask_decoder
    settings = dict(
        image_size=predictor.image_size,
        fill_hole_area=predictor.fill_hole_area,
        add_all_frames_to_correct_as_cond=predictor.add_all_frames_to_correct_as_cond,
        binarize_mask_from_pts_for_mem_enc=predictor.binarize_mask_from_pts_for_mem_enc,
        non_overlap_masks=predictor.non_overlap_masks,
        non_overlap_masks_for_mem_enc=predictor.non_overlap_masks_for_mem_enc,
        clear_non_cond_mem_around_input=predictor.clear_non_cond_mem_around_input,
        dynamic_multimask_via_stability=dec.dynamic_multimask_via_stability,
        dynamic_multimask_stability_delta=dec.dynamic_multimask_stability_delta,
        dynamic_multimask_stability_thresh=dec.dynamic_multimask_stability_thresh,
        max_cond_frames_in_attn=predictor.max_cond_frames_in_attn,
        memory_temporal_stride_for_eval=predictor.memory_temporal_stride_for_eval,
        max_obj_ptrs_in_encoder=predictor.max_obj_ptrs_in_encoder,
        use_mask_input_as_output_without_sam=predictor.use_mask_input_as_output_without_sam,
    )
    assert settings["image_size"] == IMAGE_SIZE
    assert settings["fill_hole_area"] == 0
    assert settings["add_all_frames_to_correct_as_cond"] is True
    assert settings["binarize_mask_from_pts_for_mem_enc"] is True
    assert settings["non_overlap_masks"] is False
    assert settings["dynamic_multimask_via_stability"] is True
    assert predictor.sam_prompt_encoder.image_embedding_size == (IMAGE_SIZE // 16,) * 2

    # On the CPU the stored memories are bfloat16 (the predictor casts them for
    # storage and relies on CUDA autocast to mix them with float32); cast them
    # back to float32 right before memory attention.  The bf16 rounding itself
    # is part of the reference numerics and stays.
    stats = {"calls": 0, "bf16_memory_calls": 0, "token_counts": set()}
    attn_forward = predictor.memory_attention.forward

    def forward_fp32(*args, **kwargs):
        for key in ("memory", "memory_pos"):
            value = kwargs.get(key)
            if value is not None:
                if key == "memory" and value.dtype == torch.bfloat16:
                    stats["bf16_memory_calls"] += 1
                kwargs[key] = value.float()
        stats["calls"] += 1
        curr = kwargs.get("curr")
        if isinstance(curr, list):
            stats["token_counts"].add(int(curr[0].shape[0]))
        return attn_forward(*args, **kwargs)

    predictor.memory_attention.forward = forward_fp32
    return predictor, seeded_weights.state_dict_digest(weights), settings, stats


def _object_score(out: dict | None) -> float:
    if out is None or out.get("object_score_logits") is None:
        return float("nan")
    return float(out["object_score_logits"].reshape(-1)[0])


def run_variant(variant: str, seed: int) -> tuple[dict, dict]:
    torch.manual_seed(0)
    predictor, digest, settings, attn_stats = build_reference(variant, seed)
    frames = make_frames()
    ops, masks = base_ops()

    logits, rec_op, rec_frame, rec_obj, rec_score, rec_cond = [], [], [], [], [], []
    op_times = []
    with tempfile.TemporaryDirectory(prefix="sam2-video-fixture-") as tmp:
        decoded = write_jpegs(frames, Path(tmp))
        state = predictor.init_state(video_path=tmp)
        assert (state["video_height"], state["video_width"]) == FRAME_HW
        H, W = FRAME_HW

        def record(i, frame, obj, video_logits, score, is_cond):
            arr = video_logits.detach().to("cpu", torch.float32).numpy().reshape(H, W)
            logits.append(arr.copy())
            rec_op.append(i)
            rec_frame.append(frame)
            rec_obj.append(obj)
            rec_score.append(score)
            rec_cond.append(is_cond)

        for i, op in enumerate(ops):
            t0 = time.perf_counter()
            if op["op"] == "prompt":
                frame, obj = op["frame"], op["obj"]
                if i == CORRECTION_OP:
                    prev = [k for k in range(len(logits))
                            if rec_op[k] == i - 1 and rec_frame[k] == frame and rec_obj[k] == obj]
                    assert len(prev) == 1
                    op["points_rc"] = [choose_negative_point(logits[prev[0]])]
                kwargs = {}
                if op["points_rc"] is not None:
                    pts = np.asarray(op["points_rc"], dtype=np.float32).reshape(-1, 2)
                    kwargs["points"] = pts[:, ::-1].copy()  # (row, col) -> (x, y)
                    kwargs["labels"] = np.asarray(op["labels"], dtype=np.int32)
                if op["box_rc"] is not None:
                    r0, c0, r1, c1 = op["box_rc"]
                    kwargs["box"] = np.asarray([c0, r0, c1, r1], dtype=np.float32)  # XYXY
                if op["mask"]:
                    out_frame, obj_ids, video_res = predictor.add_new_mask(
                        state, frame_idx=frame, obj_id=obj, mask=masks[i])
                else:
                    out_frame, obj_ids, video_res = predictor.add_new_points_or_box(
                        state, frame_idx=frame, obj_id=obj, **kwargs)
                assert out_frame == frame
                obj_idx = state["obj_id_to_idx"][obj]
                assert list(obj_ids).index(obj) == obj_idx
                temp = state["temp_output_dict_per_obj"][obj_idx]
                out = temp["cond_frame_outputs"].get(frame, temp["non_cond_frame_outputs"].get(frame))
                is_cond = frame in temp["cond_frame_outputs"]
                record(i, frame, obj, video_res[obj_idx], _object_score(out), is_cond)
            else:
                gen = predictor.propagate_in_video(
                    state, start_frame_idx=op["start"],
                    max_frame_num_to_track=op["max_frames"], reverse=op["reverse"])
                for frame, obj_ids, video_res in gen:
                    for obj_idx, obj in enumerate(obj_ids):
                        od = state["output_dict_per_obj"][obj_idx]
                        is_cond = frame in od["cond_frame_outputs"]
                        out = od["cond_frame_outputs" if is_cond else "non_cond_frame_outputs"].get(frame)
                        record(i, frame, obj, video_res[obj_idx], _object_score(out), is_cond)
            op_times.append(time.perf_counter() - t0)

    import PIL

    data: dict[str, np.ndarray] = {
        "format_version": np.int64(FORMAT_VERSION),
        "variant": np.str_(variant),
        "reference": np.str_(REFERENCE),
        "reference_config": np.str_(CONFIGS[variant]),
        "torch_version": np.str_(torch.__version__),
        "numpy_version": np.str_(np.__version__),
        "pillow_version": np.str_(PIL.__version__),
        "image_size": np.int64(IMAGE_SIZE),
        "hydra_overrides": np.str_(json.dumps(HYDRA_OVERRIDES)),
        "predictor_settings": np.str_(json.dumps(settings, sort_keys=True)),
        "weights_seed": np.int64(seed),
        "weights_scheme_version": np.int64(seeded_weights.SCHEME_VERSION),
        "weights_sha256": np.str_(digest),
        "frame_seed": np.int64(FRAME_SEED),
        "jpeg_quality": np.int64(JPEG_QUALITY),
        "frames": decoded,
        "ops": np.str_(json.dumps(ops)),
        "logits": np.stack(logits).astype(np.float32),
        "rec_op": np.asarray(rec_op, dtype=np.int32),
        "rec_frame": np.asarray(rec_frame, dtype=np.int32),
        "rec_obj": np.asarray(rec_obj, dtype=np.int32),
        "rec_object_score": np.asarray(rec_score, dtype=np.float32),
        "rec_is_cond": np.asarray(rec_cond, dtype=bool),
    }
    for i, m in masks.items():
        data[f"mask_{i}"] = m.astype(bool)
    summary = dict(op_times=op_times, attn=attn_stats, settings=settings)
    return data, summary


def check(data: dict) -> tuple[list[str], list[str]]:
    """(problems, notes): problems make the fixture a weak test."""
    problems, notes = [], []
    ops = json.loads(str(data["ops"]))
    lg, rop, rfr, rob = data["logits"], data["rec_op"], data["rec_frame"], data["rec_obj"]
    score, cond = data["rec_object_score"], data["rec_is_cond"]
    if not np.isfinite(lg).all():
        problems.append("non-finite logits")
    pos = (lg > 0).reshape(len(lg), -1).mean(1)
    prompted = {(op["frame"], op["obj"]) for op in ops if op["op"] == "prompt"}
    empty = {(op["frame"], op["obj"]) for i, op in enumerate(ops)
             if op["op"] == "prompt" and op["mask"] and not data[f"mask_{i}"].any()}
    for k in range(len(lg)):
        if pos[k] in (0.0, 1.0) and (int(rfr[k]), int(rob[k])) not in empty:
            where = "prompted frame" if (int(rfr[k]), int(rob[k])) in prompted else "tracked frame"
            msg = f"op {rop[k]} frame {rfr[k]} obj {rob[k]}: constant sign (pos {pos[k]}) on a {where}"
            (problems if where == "prompted frame" or pos[k] == 1.0 else notes).append(msg)
    present = float((score > 0).mean())
    if present < 0.75:
        problems.append(f"objects present in only {present:.0%} of records")
    # the correction must change obj 1 on frame 5
    corr = [k for k in range(len(lg)) if rop[k] == CORRECTION_OP]
    before = [k for k in range(len(lg)) if rop[k] == CORRECTION_OP - 1 and rfr[k] == 5 and rob[k] == 1]
    changed = int(((lg[corr[0]] > 0) != (lg[before[0]] > 0)).sum())
    notes.append(f"correction changed {changed} pixels of obj 1 on frame 5 "
                 f"(pos {pos[before[0]]:.3f} -> {pos[corr[0]]:.3f})")
    if changed == 0:
        problems.append("the correction in op 4 did not change obj 1's mask on frame 5")
    r, c = ops[CORRECTION_OP]["points_rc"][0]
    notes.append(f"logit at the negative point ({r}, {c}) -> pixel "
                 f"({int(r)}, {int(c)}): {lg[before[0]][int(r), int(c)]:+.2f} -> "
                 f"{lg[corr[0]][int(r), int(c)]:+.2f}")
    # conditioning frames are yielded unchanged: compare with the prompt records
    for k in range(len(lg)):
        if ops[rop[k]]["op"] == "propagate" and cond[k]:
            src = [j for j in range(k) if ops[rop[j]]["op"] == "prompt"
                   and rfr[j] == rfr[k] and rob[j] == rob[k]][-1]
            if not np.array_equal(lg[k], lg[src]):
                notes.append(f"op {rop[k]} frame {rfr[k]} obj {rob[k]}: cond frame differs "
                             f"from its prompt record (max {np.abs(lg[k] - lg[src]).max():.3g})")
    return problems, notes


def print_summary(data: dict, summary: dict) -> None:
    ops = json.loads(str(data["ops"]))
    lg, rop, rfr, rob = data["logits"], data["rec_op"], data["rec_frame"], data["rec_obj"]
    score, cond = data["rec_object_score"], data["rec_is_cond"]
    for i, op in enumerate(ops):
        desc = {k: v for k, v in op.items() if k != "op" and v not in (None, False)}
        print(f"  op {i} {op['op']} {desc}  ({summary['op_times'][i]:.1f} s)")
        for k in np.flatnonzero(rop == i):
            m = lg[k]
            print(f"     f{rfr[k]} obj{rob[k]}{' C' if cond[k] else '  '} "
                  f"[{m.min():+8.2f}, {m.max():+8.2f}] pos {(m > 0).mean():.3f} "
                  f"objscore {score[k]:+7.2f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    parser.add_argument("--seed", type=int, default=seeded_weights.FIXTURE_SEED)
    parser.add_argument("--no-write", action="store_true", help="only print the summary")
    args = parser.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    all_problems = []
    for variant in args.variants:
        t0 = time.perf_counter()
        data, summary = run_variant(variant, args.seed)
        problems, notes = check(data)
        all_problems += [f"{variant}: {p}" for p in problems]
        size = ""
        if not args.no_write:
            path = args.out / f"{variant}_{IMAGE_SIZE}.npz"
            np.savez_compressed(path, **data)
            size = f", {path.stat().st_size / 1024:.0f} KiB"
        attn = summary["attn"]
        print(f"== {variant}: {time.perf_counter() - t0:.1f} s{size}; {len(data['logits'])} records; "
              f"memory attention calls {attn['calls']} (bf16 memory in {attn['bf16_memory_calls']}), "
              f"query tokens {sorted(attn['token_counts'])}")
        print_summary(data, summary)
        for n in notes:
            print(f"   note: {n}")
        for p in problems:
            print(f"   PROBLEM: {p}")
        sys.stdout.flush()
    print(f"total {time.perf_counter() - t_all:.1f} s")
    if all_problems:
        print(f"{len(all_problems)} problem(s)")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
