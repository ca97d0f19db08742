"""Shared fixtures: small random-weight SAM 2 checkpoints in the official file format."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for tests/reference helpers

from napari_sam2.model import HieraConfig, Sam2Config, Sam2Model  # noqa: E402
from napari_sam2.model.checkpoint import CONFIG_KEY  # noqa: E402
from reference.seeded_weights import seeded_state_dict  # noqa: E402


def _no_display() -> bool:
    display = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    return sys.platform.startswith("linux") and not display


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    """GUI tests need a real (virtual) display: pytest-xvfb has started Xvfb by now when it could
    (napari's OpenGL canvas does not work on Qt's "offscreen" platform). Where there is still no
    display, Qt is put offscreen so that non-GUI Qt tests run, and the GUI tests skip (gui_display)."""
    if _no_display():
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


#: A miniature SAM 2.1 for fast engine tests: same code paths, tiny widths,
#: 128-pixel model frame (8 x 8 embedding grid).
TINY_CONFIG = Sam2Config(
    name="test_tiny",
    version="2.1",
    hiera=HieraConfig(
        embed_dim=16,
        num_heads=1,
        stages=(1, 1, 2, 1),
        global_att_blocks=(3,),
        window_spec=(4, 4, 4, 2),
        pos_embed_bkg_size=(4, 4),
    ),
    image_size=128,
    d_model=32,
    mem_dim=16,
    memory_ffn_dim=64,
    decoder_heads=2,
    decoder_mlp_dim=64,
)


def tiny_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    shapes = {k: list(v.shape) for k, v in Sam2Model(TINY_CONFIG).state_dict().items()}
    return seeded_state_dict(shapes, seed=seed)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A .pt file like Meta's ({"model": state_dict}) plus our embedded config."""
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    torch.save({"model": tiny_state_dict(), CONFIG_KEY: TINY_CONFIG.to_dict()}, path)
    return path


@pytest.fixture(scope="session")
def tiny_model(tiny_checkpoint):
    import napari_sam2

    return napari_sam2.load_model(tiny_checkpoint, device="cpu")


@pytest.fixture
def gui_display():
    """Skip a test that opens napari windows when no display is available."""
    if _no_display() or os.environ.get("QT_QPA_PLATFORM") == "offscreen":
        pytest.skip("no display for napari's OpenGL canvas: install Xvfb (apt-get install xvfb) and "
                    "pytest-xvfb (pip install -e '.[testing]'), or run under a desktop session")
