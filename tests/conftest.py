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


# ------------------------------------------------------------------ GUI fixtures
@pytest.fixture
def notes():
    """Notifications shown during the test, as (severity, message)."""
    from napari.utils.notifications import notification_manager

    start = len(notification_manager.records)
    return lambda: [(str(n.severity), n.message) for n in notification_manager.records[start:]]


@pytest.fixture
def slow_model(monkeypatch):
    """The tiny model, but 0.2 s per propagated frame (so a run can be interrupted mid-way)."""
    import time

    from napari_sam2.engine.tracking.session import TrackingSession

    track_frame = TrackingSession._track_frame

    def slow_track_frame(*args, **kwargs):
        time.sleep(0.2)
        return track_frame(*args, **kwargs)

    monkeypatch.setattr(TrackingSession, "_track_frame", slow_track_frame)


@pytest.fixture
def sam2(gui_display, make_napari_viewer, qtbot, tiny_checkpoint, request):
    """A viewer with a 6-frame time-lapse and the widget with the tiny model loaded. Tests that take
    ``route`` (indirect parametrisation) run on both routes; the default is the direct one."""
    from gui_helpers import SIZE, T, idle, open_widget
    from napari_sam2.sample_data import make_timelapse

    route = getattr(request, "param", "direct")
    viewer = make_napari_viewer()
    viewer.add_image(make_timelapse(T, SIZE), name="cells", axis_labels=("t", "y", "x"))
    widget = open_widget(viewer, route)
    widget.model_picker.set_source(str(tiny_checkpoint))
    widget.model_picker.device.setCurrentText("cpu")
    widget.model_picker.load_button.click()
    idle(qtbot, widget)
    assert widget.controller.model is not None
    yield viewer, widget
    idle(qtbot, widget)
