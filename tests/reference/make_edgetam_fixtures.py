"""Make the EdgeTAM parity fixtures with Meta's EdgeTAM code.

Runs ONLY in the EdgeTAM reference environment, never in the project's test run:

    EDGETAM_GIT=<git dir of facebookresearch/EdgeTAM> ../shared/tools/make-edgetam-env /tmp/edgetam-reference
    /tmp/edgetam-reference/bin/python tests/reference/make_edgetam_fixtures.py [--keys] [--image] [--video]

``--keys`` records the state dict's key/shape table of Meta's model
(``tests/data/edgetam/edgetam-state-dict-keys.json``); ``--image`` the image
prediction fixture ``tests/data/edgetam/image.npz``: the same image, prompts
and file format as ``make_image_fixtures.py`` (whose helpers it reuses),
recorded with EdgeTAM's ``SAM2ImagePredictor`` at the real size (1024);
``--video`` the tracking fixture ``tests/data/edgetam/video_512.npz``: the
clip, interaction script and file format of ``make_video_fixtures.py`` (run
through its ``run_variant``), model frame 512.

Video: EdgeTAM's own ``SAM2VideoPredictor`` is the SAM 2.0-era one (objects
batched together) and fails as soon as two objects are tracked; the fixture
drives EdgeTAM's model with sam2 1.1.0's per-object video predictor instead
(``sam2_v11_video_predictor``, which the project's engine follows), given
EdgeTAM's ``_get_maskmem_pos_enc`` (perceiver positions are (B, tokens, C)).
At 512 pixels the memory-attention RoPE grids of the config (64 x 64 queries)
become 32 x 32; the perceiver's 16 x 16 window grid stays (2 x 2 windows).

The reference model is built from EdgeTAM's ``configs/edgetam.yaml`` exactly as
``build_sam2`` builds it for users (dynamic multimask fallback on), except that
timm's RepViT is created with ``pretrained=False`` (no download; the seeded
weights of ``edgetam_weights.py`` are then loaded strictly). See docs/parity.md.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))

import edgetam_weights  # noqa: E402
import make_image_fixtures as image_fx  # noqa: E402  (helpers only; its CONFIGS get an EdgeTAM entry)
import make_video_fixtures as video_fx  # noqa: E402  (its scenario and run_variant, on EdgeTAM)
import seeded_weights  # noqa: E402

OUT_DIR = REPO / "tests" / "data" / "edgetam"
CONFIG = "configs/edgetam.yaml"
IMAGE_SEED_BASE = 5000


def _edgetam_commit() -> str:
    import sam2

    commit = Path(sam2.__path__[0]).parent / "COMMIT"
    return commit.read_text().strip()[:12] if commit.is_file() else "unknown"


def _no_pretrained_timm() -> None:
    """EdgeTAM's TimmBackbone asks timm for ImageNet weights; turn that off (no network, seeded weights)."""
    import sam2.modeling.backbones.timm as timm_backbone

    create = timm_backbone.create_model
    if getattr(create, "_no_pretrained", False):
        return

    def create_model(*args, **kwargs):
        return create(*args, **{**kwargs, "pretrained": False})

    create_model._no_pretrained = True
    timm_backbone.create_model = create_model


def build_reference_model(hydra_overrides: list[str] | None = None, model_target: str | None = None):
    """EdgeTAM's model on CPU in eval mode, seeded weights not yet loaded."""
    from sam2.build_sam import build_sam2

    _no_pretrained_timm()
    overrides = list(hydra_overrides or [])
    if model_target:
        overrides.append(f"++model._target_={model_target}")
    return build_sam2(CONFIG, ckpt_path=None, device="cpu", mode="eval", hydra_overrides_extra=overrides)


def load_seeded(model, seed: int) -> str:
    """Load the seeded weights strictly (after checking the key table); returns their digest."""
    expected = edgetam_weights.edgetam_shapes()
    actual = {k: list(v.shape) for k, v in model.state_dict().items()}
    if actual != expected:
        raise AssertionError(
            f"reference state dict differs from the key table: missing={sorted(set(expected) - set(actual))[:5]} "
            f"extra={sorted(set(actual) - set(expected))[:5]}"
        )
    weights = edgetam_weights.edgetam_state_dict(expected, seed=seed)
    model.load_state_dict(weights, strict=True)
    return seeded_weights.state_dict_digest(weights)


def write_keys(path: Path) -> None:
    model = build_reference_model()
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    path.write_text("{\n" + ",\n".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in shapes.items()) + "\n}\n")
    print(f"{len(shapes)} keys -> {path}")


def make_image_fixture(out: Path, seed: int, write: bool) -> list[str]:
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    image_fx.CONFIGS["edgetam"] = CONFIG
    real_version = importlib.metadata.version
    commit = _edgetam_commit()
    # run_variant records version("sam2"); EdgeTAM's package is not installed as a distribution
    importlib.metadata.version = lambda name: f"EdgeTAM@{commit}" if name == "sam2" else real_version(name)
    try:
        torch.manual_seed(0)
        model = build_reference_model()
        digest = load_seeded(model, seed)
        predictor = SAM2ImagePredictor(model)
        probe = image_fx.DecoderProbe(model.sam_mask_decoder)
        for image_seed in range(IMAGE_SEED_BASE, IMAGE_SEED_BASE + image_fx.MAX_IMAGE_TRIES):
            data, summary = image_fx.run_variant("edgetam", predictor, probe, digest, seed, image_seed)
            problems = image_fx.check("edgetam", data)
            if not problems:
                break
            print(f"   image seed {image_seed} rejected: {'; '.join(problems)}")
    finally:
        importlib.metadata.version = real_version
    data["weights_scheme"] = np.str_(f"edgetam_weights v{edgetam_weights.EDGETAM_SCHEME_VERSION}")
    if write:
        np.savez_compressed(out / "image.npz", **data)
    print(f"== edgetam image: seed {image_seed}; embed mean {summary['embed_mean']:+.4f} "
          f"std {summary['embed_std']:.4f}; set_image {summary['embed_s']:.1f} s")
    for name, s in summary["cases"].items():
        pos = " ".join(f"{p:.3f}" for p in s["pos"])
        print(f"   {name:11s} logits [{s['lmin']:+8.2f}, {s['lmax']:+8.2f}] std {s['lstd']:6.2f} pos {pos}"
              f" obj {s['object_score']:+.2f}")
    return problems


class _EdgeTAMWeights:
    """Stands in for ``seeded_weights`` inside make_video_fixtures: EdgeTAM's key table and rules."""

    SCHEME_VERSION = seeded_weights.SCHEME_VERSION
    state_dict_digest = staticmethod(seeded_weights.state_dict_digest)

    @staticmethod
    def official_shapes(variant):
        return edgetam_weights.edgetam_shapes()

    @staticmethod
    def seeded_state_dict(shapes, seed=0):
        return edgetam_weights.edgetam_state_dict(shapes, seed=seed)


def _video_predictor_builder(build):
    """Wrap EdgeTAM's build_sam2_video_predictor: no timm download, EdgeTAM's memory positions on the
    sam2 1.1.0 predictor that the overrides select."""
    import types

    from sam2.sam2_video_predictor import SAM2VideoPredictor as EdgeTAMVideoPredictor

    def build_video_predictor(config, *args, **kwargs):
        _no_pretrained_timm()
        predictor = build(config, *args, **kwargs)
        assert type(predictor).__module__ == "sam2_v11_video_predictor", type(predictor)
        predictor._get_maskmem_pos_enc = types.MethodType(EdgeTAMVideoPredictor._get_maskmem_pos_enc, predictor)
        return predictor

    return build_video_predictor


def make_video_fixture(out: Path, seed: int, write: bool) -> list[str]:
    import sam2.build_sam as build_sam

    original_build = build_sam.build_sam2_video_predictor
    saved = (video_fx.seeded_weights, video_fx.REFERENCE)
    build_sam.build_sam2_video_predictor = _video_predictor_builder(original_build)
    video_fx.seeded_weights = _EdgeTAMWeights
    video_fx.REFERENCE = f"EdgeTAM@{_edgetam_commit()} model, sam2 1.1.0 video predictor"
    video_fx.CONFIGS["edgetam"] = CONFIG
    side = video_fx.IMAGE_SIZE // 16
    extra = [
        # the predictor class: the last _target_ override wins over build_sam2_video_predictor's own
        "++model._target_=sam2_v11_video_predictor.SAM2VideoPredictor",
        # the config's RoPE grids are those of 1024 pixels
        f"++model.memory_attention.layer.self_attention.feat_sizes=[{side},{side}]",
        f"++model.memory_attention.layer.cross_attention.q_sizes=[{side},{side}]",
    ]
    video_fx.HYDRA_OVERRIDES.extend(extra)
    try:
        data, summary = video_fx.run_variant("edgetam", seed)
    finally:
        build_sam.build_sam2_video_predictor = original_build
        video_fx.seeded_weights, video_fx.REFERENCE = saved[0], saved[1]
        del video_fx.HYDRA_OVERRIDES[-len(extra):]
    data["weights_scheme"] = np.str_(f"edgetam_weights v{edgetam_weights.EDGETAM_SCHEME_VERSION}")
    problems, notes = video_fx.check(data)
    video_fx.print_summary(data, summary)
    for note in notes:
        print("   note:", note)
    if write:
        np.savez_compressed(out / f"video_{video_fx.IMAGE_SIZE}.npz", **data)
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", action="store_true", help="write the key/shape table")
    parser.add_argument("--image", action="store_true", help="write the image fixture")
    parser.add_argument("--video", action="store_true", help="write the video fixture")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    parser.add_argument("--seed", type=int, default=seeded_weights.FIXTURE_SEED)
    parser.add_argument("--no-write", action="store_true", help="only print the summary")
    args = parser.parse_args(argv)
    try:
        import sam2.modeling.perceiver  # noqa: F401
    except ImportError:
        print("EdgeTAM's `sam2` is not importable: run this with the EdgeTAM reference environment "
              "(../shared/tools/make-edgetam-env).", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    problems: list[str] = []
    if args.keys:
        write_keys(args.out / edgetam_weights.KEY_TABLE_PATH.name)
    if args.image:
        problems += make_image_fixture(args.out, args.seed, not args.no_write)
    if args.video:
        problems += make_video_fixture(args.out, args.seed, not args.no_write)
    print(f"done in {time.perf_counter() - t0:.1f} s")
    for p in problems:
        print("PROBLEM:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
