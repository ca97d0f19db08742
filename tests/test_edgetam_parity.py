"""EdgeTAM (RepViT trunk + spatial perceiver) equals Meta's EdgeTAM code on seeded weights.

The fixtures in tests/data/edgetam/ were recorded by
tests/reference/make_edgetam_fixtures.py with facebookresearch/EdgeTAM's code
(timm 1.0.15 for the RepViT trunk) on the seeded weights of
tests/reference/edgetam_weights.py; here the same weights are rebuilt, written
as an official-format .pt file and loaded through ``load_model`` (see docs/parity.md).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

import napari_sam2
from napari_sam2.errors import CheckpointError
from napari_sam2.model import VARIANTS, Sam2Model
from napari_sam2.model.checkpoint import CONFIG_KEY, build_model, detect_config
from reference.edgetam_weights import edgetam_shapes, edgetam_state_dict
from reference.seeded_weights import save_official_checkpoint, state_dict_digest
from test_image_parity import check_image_cases
from test_video_parity import check_float32_records, check_mixed_precision_records

FIXTURES = Path(__file__).parent / "data" / "edgetam"


def test_edgetam_parameters_match_meta_state_dict():
    """Our EdgeTAM has exactly the keys and shapes of Meta's model (recorded in the reference env)."""
    ours = {k: list(v.shape) for k, v in Sam2Model(VARIANTS["edgetam"]).state_dict().items()}
    assert ours == edgetam_shapes()


def test_edgetam_state_dict_is_recognised_and_loads_strictly():
    state = edgetam_state_dict(seed=3)
    assert detect_config(state).name == "edgetam"
    model = build_model(state)
    assert model.cfg.repvit is not None and model.cfg.perceiver is not None
    assert len(model.memory_attention.layers) == 2
    torch.testing.assert_close(model.spatial_perceiver.latents_2d, state["spatial_perceiver.latents_2d"])
    del state["spatial_perceiver.layers.1.self_ff.3.weight"]
    with pytest.raises(CheckpointError, match="1 missing.*spatial_perceiver.layers.1.self_ff.3.weight"):
        build_model(state)


@pytest.mark.slow
def test_edgetam_predict_image_matches_reference(tmp_path):
    fx = np.load(FIXTURES / "image.npz")
    assert str(fx["variant"]) == "edgetam"
    state = edgetam_state_dict(seed=int(fx["weights_seed"]))
    assert state_dict_digest(state) == str(fx["weights_sha256"])  # the weights the reference saw
    ckpt = tmp_path / "renamed-on-purpose.pt"  # the variant must come from the keys, not the name
    save_official_checkpoint(state, ckpt)
    del state
    seg = napari_sam2.load_model(ckpt, device="cpu", dtype="float32")
    assert seg.variant == "edgetam"

    check_image_cases(seg, fx, "edgetam")


@pytest.mark.slow
def test_edgetam_session_matches_video_predictor(tmp_path):
    """The scenario of test_video_parity (two objects and more, clicks, a box, a mask, a correction,
    forward and backward) on EdgeTAM, against its model driven by sam2 1.1.0's video predictor."""
    fx = np.load(FIXTURES / "video_512.npz")
    state = edgetam_state_dict(seed=int(fx["weights_seed"]))
    assert state_dict_digest(state) == str(fx["weights_sha256"])
    cfg = dataclasses.replace(VARIANTS["edgetam"], image_size=int(fx["image_size"]))
    ckpt = tmp_path / "model.pt"
    torch.save({"model": state, CONFIG_KEY: cfg.to_dict()}, ckpt)
    session = napari_sam2.load_model(ckpt, device="cpu", dtype="float32").open_stack(fx["frames"], axis=0)
    check_float32_records(fx, session, "edgetam video")


@pytest.mark.slow
def test_edgetam_fast_mode_stays_close_to_the_reference(tmp_path):
    """EdgeTAM in bfloat16 (encoder, memory attention, memory encoder and perceiver; heads in float32) on the
    video script: >= 99% of mask pixels as Meta's float32 EdgeTAM, every presence decision the same."""
    fx = np.load(FIXTURES / "video_512.npz")
    state = edgetam_state_dict(seed=int(fx["weights_seed"]))
    cfg = dataclasses.replace(VARIANTS["edgetam"], image_size=int(fx["image_size"]))
    ckpt = tmp_path / "model.pt"
    torch.save({"model": state, CONFIG_KEY: cfg.to_dict()}, ckpt)
    model = napari_sam2.load_model(ckpt, device="cpu", dtype="bfloat16")
    assert {p.dtype for p in model.net.spatial_perceiver.parameters()} == {torch.bfloat16}
    check_mixed_precision_records(fx, model.open_stack(fx["frames"], axis=0), "edgetam bfloat16")


def test_edgetam_loads_by_name_and_from_its_file(tmp_path, monkeypatch):
    """By name, EdgeTAM is downloaded like the SAM 2 files (here from a local mirror, checked against the git
    object id the registry records) and recognised by its keys; a path to the file loads it too."""
    import functools
    import http.server
    import threading

    from napari_sam2 import weights

    state = edgetam_state_dict(seed=1)
    served = tmp_path / "mirror"
    served.mkdir()
    save_official_checkpoint(state, served / "edgetam.pt")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("NAPARI_SAM2_CACHE", str(tmp_path / "cache"))
        monkeypatch.setenv("NAPARI_SAM2_BASE_URL", f"http://127.0.0.1:{httpd.server_address[1]}/")
        real = weights.CHECKPOINTS["edgetam"]
        monkeypatch.setitem(weights.CHECKPOINTS, "edgetam", weights.Checkpoint(
            real.url, None, None, git_blob=weights.git_blob_id(served / "edgetam.pt")))
        assert napari_sam2.load_model("edgetam", device="cpu", dtype="float32").variant == "edgetam"
        assert (tmp_path / "cache" / "edgetam.pt").read_bytes() == (served / "edgetam.pt").read_bytes()
        # the registry's own id (Meta's file) refuses anything else, and nothing enters the cache
        monkeypatch.setitem(weights.CHECKPOINTS, "edgetam", real)
        monkeypatch.setenv("NAPARI_SAM2_CACHE", str(tmp_path / "cache2"))
        with pytest.raises(CheckpointError, match="git object id abd54d22"):
            napari_sam2.load_model("edgetam")
        assert not (tmp_path / "cache2" / "edgetam.pt").exists()
    finally:
        httpd.shutdown()
    ckpt = served / "edgetam.pt"
    assert napari_sam2.load_model(ckpt, device="cpu", dtype="float32").variant == "edgetam"
