"""Make the automatic-objects parity fixture with Meta's ``SAM2AutomaticMaskGenerator`` (sam2 1.1.0).

Runs ONLY in the reference environment (Meta's ``sam2`` on CPU torch), never in the project's test run:

    bash ../shared/tools/make-reference-env /tmp/sam2-reference
    /tmp/sam2-reference/bin/python tests/reference/make_amg_fixtures.py

Held-out style: other weights (seed 7, not the seed 0 of the other parity fixtures), another picture and
options far from the defaults, so that the random-weight model yields several masks. The model is
sam2.1_hiera_tiny built as users get it (``build_sam2(..., apply_postprocessing=True)``) at a model frame
of 512 (``++model.image_size=512``, as the video fixtures; the image predictor's hard-coded backbone
feature sizes are set to match). Output: ``tests/data/amg/sam2.1_hiera_tiny_512.npz``.

Two things of the reference environment are replaced here, with exact pure-torch stand-ins:

* ``torchvision.ops.batched_nms``: torchvision's compiled ops do not load in the reference environment.
  The stand-in sorts the scores stably in descending order and suppresses greedily with
  ``torchvision.ops.box_iou`` (pure Python), which is what torchvision's CPU kernel computes.
* ``sam2.utils.misc.get_connected_components``: SAM 2's CUDA kernel (8-connected components of the
  low-resolution masks, used when ``min_mask_region_area > 0``) is not built on the CPU, and without it
  the predictor silently skips the hole / speck removal. The stand-in labels components by repeated 3 x 3
  maxima until nothing changes (exact) and returns the same (labels, areas) pair.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))

import seeded_weights  # noqa: E402  (pure torch + stdlib, shared with our tests)
from make_image_fixtures import make_image  # noqa: E402

FORMAT_VERSION = 1
OUT_DIR = REPO / "tests" / "data" / "amg"
VARIANT = "sam2.1_hiera_tiny"
CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"
IMAGE_SIZE = 512
WEIGHTS_SEED = 7
IMAGE_HW = (150, 190)
IMAGE_SEED_BASE = 5004
MAX_IMAGE_TRIES = 4
MAX_MASKS = 60

#: Options per case, in Meta's names (points as (x, y) there; the fixture stores them as (row, col)).
CASES: dict[str, dict] = {
    "crops": dict(points_per_side=8, points_per_batch=24, pred_iou_thresh=0.2, stability_score_thresh=0.5,
                  stability_score_offset=0.7, box_nms_thresh=0.985, crop_n_layers=1, crop_nms_thresh=0.985,
                  crop_overlap_ratio=0.25, crop_n_points_downscale_factor=2, min_mask_region_area=12),
    "m2m": dict(points_per_side=6, points_per_batch=10, pred_iou_thresh=0.0, stability_score_thresh=0.0,
                mask_threshold=0.5, box_nms_thresh=0.99, use_m2m=True, multimask_output=False),
}
#: Fewest masks a case must give (with random weights the refinement makes every click's mask the same
#: image-wide one, so the m2m case checks the refinement's numbers on one mask).
MIN_COUNT = {"crops": 3, "m2m": 1}


def exact_batched_nms(boxes, scores, idxs, iou_threshold):
    """torchvision's batched_nms for one category (all idxs are 0 here), in plain torch."""
    from torchvision.ops import box_iou

    assert bool((idxs == idxs[0]).all()) if len(idxs) else True
    order = torch.sort(scores, stable=True, descending=True).indices
    iou = box_iou(boxes[order].float(), boxes[order].float())
    removed = torch.zeros(len(order), dtype=torch.bool)
    keep = []
    for i in range(len(order)):
        if removed[i]:
            continue
        keep.append(int(order[i]))
        removed |= iou[i] > iou_threshold
    return torch.tensor(keep, dtype=torch.int64)


def exact_connected_components(mask):
    """(N, 1, H, W) 0/1 -> (labels, areas) of 8-connected components, as SAM 2's CUDA kernel returns them."""
    fg = mask.bool()
    n, _, h, w = fg.shape
    index = torch.arange(1, h * w + 1, dtype=torch.float64).view(1, 1, h, w)
    labels = torch.where(fg, index, torch.zeros((), dtype=torch.float64))
    while True:
        grown = torch.where(fg, F.max_pool2d(labels, 3, stride=1, padding=1), torch.zeros((), dtype=torch.float64))
        if torch.equal(grown, labels):
            break
        labels = grown
    areas = torch.zeros_like(labels)
    for i in range(n):
        values, inverse, counts = torch.unique(labels[i], return_inverse=True, return_counts=True)
        areas[i] = counts[inverse].to(torch.float64)
    areas = torch.where(fg, areas, torch.zeros((), dtype=torch.float64))
    return labels.to(torch.int32), areas.to(torch.int32)


def build_generator(seed: int, options: dict, stats: dict):
    import sam2.automatic_mask_generator as amg_module
    import sam2.utils.misc as misc
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator
    from sam2.build_sam import build_sam2

    amg_module.batched_nms = exact_batched_nms
    misc.get_connected_components = exact_connected_components

    model = build_sam2(CONFIG, ckpt_path=None, device="cpu", mode="eval",
                       hydra_overrides_extra=[f"++model.image_size={IMAGE_SIZE}"], apply_postprocessing=True)
    expected = seeded_weights.official_shapes(VARIANT)
    actual = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert actual == expected, "reference state dict differs from the key table"
    weights = seeded_weights.seeded_state_dict(expected, seed=seed)
    model.load_state_dict(weights, strict=True)
    gen = SAM2AutomaticMaskGenerator(model, **options)
    g = IMAGE_SIZE // 4
    gen.predictor._bb_feat_sizes = [(g, g), (g // 2, g // 2), (g // 4, g // 4)]

    # record every predicted IoU and stability score, to keep the fixture off the filters' thresholds
    predict = gen.predictor._predict

    def recording_predict(*args, **kwargs):
        out = predict(*args, **kwargs)
        stats["iou"].append(out[1].flatten().clone())
        return out

    gen.predictor._predict = recording_predict
    stability = amg_module.calculate_stability_score

    def recording_stability(*args, **kwargs):
        out = stability(*args, **kwargs)
        stats["stability"].append(out.flatten().clone())
        return out

    amg_module.calculate_stability_score = recording_stability
    return gen, seeded_weights.state_dict_digest(weights)


def margins(stats: dict, options: dict) -> tuple[float, float]:
    iou = torch.cat(stats["iou"]) if stats["iou"] else torch.zeros(0)
    stab = torch.cat(stats["stability"]) if stats["stability"] else torch.zeros(0)
    stab = stab[torch.isfinite(stab)]
    t_iou, t_stab = options.get("pred_iou_thresh", 0.8), options.get("stability_score_thresh", 0.95)
    m_iou = float((iou - t_iou).abs().min()) if len(iou) and t_iou > 0 else 1.0  # a 0 threshold filters nothing
    m_stab = float((stab - t_stab).abs().min()) if len(stab) and t_stab > 0 else 1.0
    return m_iou, m_stab


def run_case(name: str, image: np.ndarray, seed: int) -> tuple[dict, dict]:
    options = CASES[name]
    stats: dict = {"iou": [], "stability": []}
    gen, digest = build_generator(seed, options, stats)
    t0 = time.perf_counter()
    anns = gen.generate(image)
    dt = time.perf_counter() - t0
    data: dict[str, np.ndarray] = {
        f"{name}_options": np.str_(json.dumps(options)),
        f"{name}_count": np.int64(len(anns)),
        f"{name}_masks_packed": np.packbits(np.stack([a["segmentation"] for a in anns]).astype(bool), axis=-1)
        if anns else np.zeros((0, image.shape[0], (image.shape[1] + 7) // 8), np.uint8),
        f"{name}_predicted_iou": np.array([a["predicted_iou"] for a in anns], np.float32),
        f"{name}_stability_score": np.array([a["stability_score"] for a in anns], np.float32),
        f"{name}_area": np.array([a["area"] for a in anns], np.int64),
        f"{name}_bbox_xywh": np.array([a["bbox"] for a in anns], np.float64).reshape(-1, 4),
        f"{name}_point_xy": np.array([a["point_coords"][0] for a in anns], np.float64).reshape(-1, 2),
        f"{name}_crop_box_xywh": np.array([a["crop_box"] for a in anns], np.float64).reshape(-1, 4),
    }
    m_iou, m_stab = margins(stats, options)
    summary = dict(seconds=dt, count=len(anns), iou_margin=m_iou, stability_margin=m_stab, digest=digest,
                   areas=[a["area"] for a in anns])
    return data, summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    try:
        import sam2  # noqa: F401
    except ImportError:
        print("Meta's `sam2` is not importable: run this with the reference environment.", file=sys.stderr)
        return 2
    from importlib.metadata import version

    torch.manual_seed(0)
    for image_seed in range(IMAGE_SEED_BASE, IMAGE_SEED_BASE + MAX_IMAGE_TRIES):
        image = make_image(image_seed, IMAGE_HW)
        data: dict[str, np.ndarray] = {
            "format_version": np.int64(FORMAT_VERSION), "variant": np.str_(VARIANT),
            "reference": np.str_(f"sam2 {version('sam2')}"), "torch_version": np.str_(torch.__version__),
            "image_size": np.int64(IMAGE_SIZE), "weights_seed": np.int64(WEIGHTS_SEED),
            "weights_scheme_version": np.int64(seeded_weights.SCHEME_VERSION),
            "image_seed": np.int64(image_seed), "image": image, "cases": np.array(list(CASES), dtype=np.str_),
        }
        problems = []
        for name in CASES:
            part, summary = run_case(name, image, WEIGHTS_SEED)
            data.update(part)
            data["weights_sha256"] = np.str_(summary["digest"])
            print(f"image seed {image_seed} {name}: {summary['count']} masks in {summary['seconds']:.1f} s, "
                  f"IoU margin {summary['iou_margin']:.2e}, stability margin {summary['stability_margin']:.2e}, "
                  f"areas {summary['areas']}")
            if not MIN_COUNT[name] <= summary["count"] <= MAX_MASKS:
                problems.append(f"{name}: {summary['count']} masks")
            if summary["iou_margin"] < 1e-3 or summary["stability_margin"] < 1e-4:
                problems.append(f"{name}: a score within a hair of its threshold")
        if not problems:
            break
        print("   rejected:", "; ".join(problems))
    else:
        print("no image seed gave a good fixture")
        return 1
    if not args.no_write:
        args.out.mkdir(parents=True, exist_ok=True)
        path = args.out / f"{VARIANT}_{IMAGE_SIZE}.npz"
        np.savez_compressed(path, **data)
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
