"""Make the image-prediction parity fixtures with Meta's reference SAM 2.

Runs ONLY in the reference environment (Meta's ``sam2`` package on CPU torch),
never in the project's test run:

    bash ../shared/tools/make-reference-env /tmp/sam2-reference
    /tmp/sam2-reference/bin/python tests/reference/make_image_fixtures.py

For each of the eight official variants it builds the reference model exactly
as users get it (``build_sam2(..., apply_postprocessing=True)``, i.e. with the
dynamic single-mask -> multimask fallback on), loads the seeded weights of
``seeded_weights.py`` strictly, embeds one small synthetic image and records
the predictor's outputs for a fixed set of prompts in
``tests/data/image_parity/<variant>.npz``.  See ``docs/parity.md`` for the
prompt conventions and the file format.
"""

from __future__ import annotations

import argparse
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

FORMAT_VERSION = 1
OUT_DIR = REPO / "tests" / "data" / "image_parity"

#: our variant name -> reference Hydra config
CONFIGS: dict[str, str] = {
    f"{prefix}_hiera_{size}": f"configs/{folder}/{prefix}_hiera_{short}.yaml"
    for prefix, folder in (("sam2.1", "sam2.1"), ("sam2", "sam2"))
    for size, short in (("tiny", "t"), ("small", "s"), ("base_plus", "b+"), ("large", "l"))
}

IMAGE_HW = (90, 124)  # deliberately non-square and not a multiple of 8/16/32
MASK_PROMPT_LOGIT = 10.0
MASK_PROMPT_SIZE = 256
# The (K, 256, 256) low-res logits are random-looking float32 (they do not
# compress) and would make each file ~2.5 MB, so only every 5th row/column is
# kept: (K, 52, 52), odd stride so both parities and both edges (0 and 255)
# are sampled.  The image-resolution logits are stored in full.
LOWRES_STRIDE = 5
IMAGE_SEED_BASE = 1000
MAX_IMAGE_TRIES = 10
MIN_POSITIVE_FRACTION = 0.01  # every returned mask must be neither all + nor all -
STABILITY_MARGIN = 0.002  # keep the dynamic-multimask decision off its 0.98 threshold

# Prompts in OUR conventions: points (row, col) in pixels, labels 1/0,
# box (row0, col0, row1, col1), mask an (H, W) boolean array.
CASES: dict[str, dict] = {
    "point": dict(points_rc=[[40.5, 77.25]], labels=[1], multimask=False),
    "multipoint": dict(
        points_rc=[[30.0, 40.0], [60.5, 90.0], [45.0, 62.75]], labels=[1, 1, 0], multimask=False
    ),
    "box": dict(box_rc=[20.0, 30.0, 70.0, 100.0], multimask=False),
    "box_point": dict(
        box_rc=[18.5, 25.0, 72.0, 104.25], points_rc=[[45.0, 65.0]], labels=[0], multimask=False
    ),
    "mask": dict(use_mask=True, multimask=False),
    "mask_point": dict(use_mask=True, points_rc=[[50.25, 60.5]], labels=[1], multimask=False),
    "multimask": dict(points_rc=[[25.5, 95.0]], labels=[1], multimask=True),
}


def make_image(seed: int, hw: tuple[int, int] = IMAGE_HW) -> np.ndarray:
    """A smooth synthetic uint8 RGB picture: gradient + blurred blobs + mild noise."""
    rng = np.random.default_rng(seed)
    h, w = hw
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    # Centred on the ImageNet mean with a spread of about one normalised unit,
    # like a natural photograph (a dim, low-contrast picture gives features
    # that are mostly a constant offset).
    img = np.empty((h, w, 3))
    img[..., 0] = 124 + 70 * (cols / w - 0.5)
    img[..., 1] = 116 + 60 * (rows / h - 0.5)
    img[..., 2] = 104 - 50 * ((rows + cols) / (h + w) - 0.5)
    for _ in range(7):
        r0, c0 = rng.uniform(0, h), rng.uniform(0, w)
        sr, sc = rng.uniform(5, 18), rng.uniform(5, 22)
        colour = rng.uniform(-110, 110, size=3)
        blob = np.exp(-0.5 * (((rows - r0) / sr) ** 2 + ((cols - c0) / sc) ** 2))
        img += blob[..., None] * colour
    img += rng.normal(0.0, 4.0, size=img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def make_mask_prompt(hw: tuple[int, int] = IMAGE_HW) -> np.ndarray:
    """Boolean (H, W) ellipse, off-centre, used as the mask prompt."""
    h, w = hw
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    return ((rows - 48.0) / 22.0) ** 2 + ((cols - 58.0) / 33.0) ** 2 <= 1.0


def mask_to_logits_256(mask_hw: np.ndarray) -> np.ndarray:
    """The documented mask-prompt rule (our predict_image implements the same).

    ``where(mask, +10, -10)`` as float32, resized to 256x256 with bilinear
    interpolation (align_corners=False, antialias=True); returns (1, 256, 256).
    """
    logits = np.where(mask_hw, MASK_PROMPT_LOGIT, -MASK_PROMPT_LOGIT).astype(np.float32)
    resized = F.interpolate(
        torch.from_numpy(logits)[None, None],
        size=(MASK_PROMPT_SIZE, MASK_PROMPT_SIZE),
        mode="bilinear",
        align_corners=False,
        antialias=True,
    )
    return resized[0].numpy().astype(np.float32)


def build_reference(variant: str, table: dict, seed: int):
    from sam2.build_sam import build_sam2
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    model = build_sam2(CONFIGS[variant], ckpt_path=None, device="cpu", mode="eval")
    expected = table[variant]
    actual = {k: list(v.shape) for k, v in model.state_dict().items()}
    if actual != expected:
        missing = sorted(set(expected) - set(actual))
        extra = sorted(set(actual) - set(expected))
        wrong = sorted(k for k in set(actual) & set(expected) if actual[k] != expected[k])
        raise AssertionError(
            f"{variant}: reference state dict differs from the key table: "
            f"missing={missing[:5]} extra={extra[:5]} wrong_shape={wrong[:5]}"
        )
    weights = seeded_weights.seeded_state_dict(expected, seed=seed)
    model.load_state_dict(weights, strict=True)
    return SAM2ImagePredictor(model), seeded_weights.state_dict_digest(weights)


class DecoderProbe:
    """Records the decoder's raw outputs (all 4 mask tokens) for debugging fields."""

    def __init__(self, decoder):
        self.decoder = decoder
        self.last = None
        original = decoder.predict_masks

        def wrapped(*args, **kwargs):
            out = original(*args, **kwargs)
            self.last = out
            return out

        decoder.predict_masks = wrapped

    def details(self, multimask: bool) -> dict:
        masks, iou, _, obj = self.last
        info = {"object_score": float(obj.reshape(-1)[0])}
        if not multimask:
            stab = float(self.decoder._get_stability_scores(masks[:, 0:1]).reshape(-1)[0])
            info["stability"] = stab
            info["fallback"] = bool(stab < self.decoder.dynamic_multimask_stability_thresh)
        return info


def run_variant(
    variant: str, predictor, probe: DecoderProbe, digest: str, seed: int, image_seed: int
) -> tuple[dict, dict]:
    from importlib.metadata import version

    import torchvision

    image = make_image(image_seed)
    mask_hw = make_mask_prompt()
    mask_input_256 = mask_to_logits_256(mask_hw)

    t0 = time.perf_counter()
    with torch.inference_mode():
        predictor.set_image(image)
    t_embed = time.perf_counter() - t0
    embed = predictor._features["image_embed"]

    data: dict[str, np.ndarray] = {
        "format_version": np.int64(FORMAT_VERSION),
        "variant": np.str_(variant),
        "reference": np.str_(f"sam2 {version('sam2')}"),
        "reference_config": np.str_(CONFIGS[variant]),
        "torch_version": np.str_(torch.__version__),
        "torchvision_version": np.str_(torchvision.__version__),
        "numpy_version": np.str_(np.__version__),
        "weights_seed": np.int64(seed),
        "weights_scheme_version": np.int64(seeded_weights.SCHEME_VERSION),
        "weights_sha256": np.str_(digest),
        "image_seed": np.int64(image_seed),
        "image": image,
        "mask_hw": mask_hw,
        "mask_input_256": mask_input_256,
        "embed_mean": np.float64(embed.double().mean()),
        "embed_std": np.float64(embed.double().std()),
        "cases": np.array(list(CASES), dtype=np.str_),
        "lowres_stride": np.int64(LOWRES_STRIDE),
    }
    summary = {"embed_s": t_embed, "embed_mean": float(data["embed_mean"]),
               "embed_std": float(data["embed_std"]), "cases": {}}

    for name, case in CASES.items():
        kwargs = {"multimask_output": case["multimask"], "return_logits": True}
        if "points_rc" in case:
            pts_rc = np.asarray(case["points_rc"], dtype=np.float32).reshape(-1, 2)
            data[f"{name}_points_rc"] = pts_rc
            data[f"{name}_labels"] = np.asarray(case["labels"], dtype=np.int32)
            kwargs["point_coords"] = pts_rc[:, ::-1].copy()  # (row, col) -> (x, y)
            kwargs["point_labels"] = data[f"{name}_labels"]
        if "box_rc" in case:
            r0, c0, r1, c1 = case["box_rc"]
            data[f"{name}_box_rc"] = np.asarray(case["box_rc"], dtype=np.float32)
            kwargs["box"] = np.asarray([c0, r0, c1, r1], dtype=np.float32)  # XYXY
        if case.get("use_mask"):
            data[f"{name}_use_mask"] = np.bool_(True)
            kwargs["mask_input"] = mask_input_256
        data[f"{name}_multimask"] = np.bool_(case["multimask"])

        with torch.inference_mode():
            logits, scores, lowres = predictor.predict(**kwargs)
        data[f"{name}_logits"] = logits.astype(np.float32)
        data[f"{name}_scores"] = scores.astype(np.float32)
        data[f"{name}_lowres_s{LOWRES_STRIDE}"] = lowres[:, ::LOWRES_STRIDE, ::LOWRES_STRIDE].astype(
            np.float32
        )
        info = probe.details(case["multimask"])
        data[f"{name}_object_score"] = np.float32(info["object_score"])
        if "stability" in info:
            data[f"{name}_stability"] = np.float32(info["stability"])
            data[f"{name}_fallback"] = np.bool_(info["fallback"])
        summary["cases"][name] = dict(
            info,
            lmin=float(logits.min()), lmax=float(logits.max()),
            lstd=float(logits.std()),
            clamped=float((np.abs(lowres) >= 32.0).mean()),
            pos=[float((m > 0).mean()) for m in logits],
            scores=[float(s) for s in scores],
        )
    return data, summary


def check(variant: str, data: dict) -> list[str]:
    """Problems that would make the fixture a weak test (returned, not raised)."""
    problems = []
    for name in CASES:
        logits = data[f"{name}_logits"]
        if not np.isfinite(logits).all():
            problems.append(f"{name}: non-finite logits")
        for k, m in enumerate(logits):
            frac = float((m > 0).mean())
            if not MIN_POSITIVE_FRACTION <= frac <= 1.0 - MIN_POSITIVE_FRACTION:
                problems.append(f"{name}[{k}]: (nearly) constant sign (positive fraction {frac:.4f})")
            if float(m.std()) < 0.1:
                problems.append(f"{name}[{k}]: nearly constant logits (std {m.std():.3g})")
        if float(np.abs(logits).max()) > 200:
            problems.append(f"{name}: huge logits ({np.abs(logits).max():.3g})")
    mm = data["multimask_logits"]
    if mm.shape[0] != 3:
        problems.append(f"multimask: expected 3 masks, got {mm.shape[0]}")
    for i in range(mm.shape[0]):
        for j in range(i + 1, mm.shape[0]):
            if np.abs(mm[i] - mm[j]).max() < 1e-3:
                problems.append(f"multimask: masks {i} and {j} are identical")
    for name in CASES:
        st = data.get(f"{name}_stability")
        if st is not None and abs(float(st) - 0.98) < STABILITY_MARGIN:
            problems.append(
                f"{name}: stability {float(st):.4f} is within {STABILITY_MARGIN} of the 0.98 threshold"
            )
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    parser.add_argument("--seed", type=int, default=seeded_weights.FIXTURE_SEED)
    parser.add_argument("--key-table", type=Path, default=seeded_weights.KEY_TABLE_PATH)
    parser.add_argument("--no-write", action="store_true", help="only print the summary")
    args = parser.parse_args(argv)

    try:
        import sam2  # noqa: F401
    except ImportError:
        print("Meta's `sam2` is not importable: run this with the reference environment,\n"
              "  bash ../shared/tools/make-reference-env /tmp/sam2-reference\n"
              "  /tmp/sam2-reference/bin/python tests/reference/make_image_fixtures.py",
              file=sys.stderr)
        return 2
    table = seeded_weights.load_key_table(args.key_table)
    args.out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    all_problems = []
    for variant in args.variants:
        t0 = time.perf_counter()
        torch.manual_seed(0)
        predictor, digest = build_reference(variant, table, args.seed)
        probe = DecoderProbe(predictor.model.sam_mask_decoder)
        # The first image seed whose outputs pass every check (see `check`):
        # a random-weight network can land on a knife edge for one picture.
        base = IMAGE_SEED_BASE + 100 * list(CONFIGS).index(variant)
        for image_seed in range(base, base + MAX_IMAGE_TRIES):
            data, summary = run_variant(variant, predictor, probe, digest, args.seed, image_seed)
            problems = check(variant, data)
            if not problems:
                break
            print(f"   image seed {image_seed} rejected: {'; '.join(problems)}")
        all_problems += [f"{variant}: {p}" for p in problems]
        dt = time.perf_counter() - t0
        size = ""
        if not args.no_write:
            path = args.out / f"{variant}.npz"
            np.savez_compressed(path, **data)
            size = f", {path.stat().st_size / 1024:.0f} KiB"
        print(f"== {variant}: {dt:.1f} s (last set_image {summary['embed_s']:.1f} s){size}; "
              f"image seed {image_seed}; "
              f"embed mean {summary['embed_mean']:+.4f} std {summary['embed_std']:.4f}")
        for name, s in summary["cases"].items():
            extra = ""
            if "stability" in s:
                extra = f" stab {s['stability']:.4f}{' FALLBACK' if s['fallback'] else ''}"
            pos = " ".join(f"{p:.3f}" for p in s["pos"])
            sc = " ".join(f"{x:.3f}" for x in s["scores"])
            print(f"   {name:11s} logits [{s['lmin']:+8.2f}, {s['lmax']:+8.2f}] std {s['lstd']:6.2f}"
                  f"  pos {pos}  iou {sc}  obj {s['object_score']:+.2f}"
                  f"  clamp {s['clamped']:.3f}{extra}")
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
