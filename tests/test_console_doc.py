"""docs/console.md pasted block by block into a real napari viewer, and a closed session failing at the call."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from napari_sam2.errors import PromptError, SessionClosedError

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 120_000


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The tiny model on one thread: on a busy machine more threads make it many times slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def console_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "console.md").read_text(), re.S)


def test_console_doc_blocks_run_in_order(gui_display, make_napari_viewer, qtbot, tiny_checkpoint, tmp_path,
                                         monkeypatch):
    """Every block of docs/console.md in one namespace, in order, as a console user pastes them."""
    from qtpy.QtWidgets import QApplication

    from napari_sam2.gui.layers import same_layer

    blocks = console_blocks()
    assert len(blocks) == 4
    viewer = make_napari_viewer()
    viewer.open_sample("napari-sam2", "timelapse")
    monkeypatch.chdir(tmp_path)
    scope = {"viewer": viewer}

    def run(i):
        code = blocks[i].replace('"sam2.1_hiera_tiny"', repr(str(tiny_checkpoint)))  # no download
        exec(compile(code, f"docs/console.md block {i + 1}", "exec"), scope)

    run(0)
    session, labels = scope["session"], scope["labels"]
    assert labels.data[16].any() and (tmp_path / "prompts.json").is_file()
    assert scope["again"].object_ids == [1, 2]

    run(1)  # the propagation in a thread worker, on the session block 1 left open
    worker, ended = scope["worker"], []
    worker.finished.connect(lambda: ended.append(True))
    qtbot.waitUntil(lambda: bool(ended), timeout=TIMEOUT)
    QApplication.processEvents()  # what the worker yielded last
    assert session.history[-1].frames == session.num_frames  # "both" from frame 0: forward only
    np.testing.assert_array_equal(labels.data, session.labels())

    run(2)
    ctl = scope["ctl"]
    assert ctl.model is scope["model"]
    key = re.search(r'dock_widgets\["(.*?)"\]', blocks[2]).group(1)  # the name the doc gives
    assert viewer.window.dock_widgets[key] is scope["widget"]
    assert ctl.layers.labels is not None and not same_layer(ctl.layers.labels, labels)  # a layer of its own
    np.testing.assert_array_equal(labels.data, session.labels())  # the widget left the console's layer alone
    qtbot.waitUntil(lambda: not ctl.runner.busy, timeout=TIMEOUT)

    run(3)
    with pytest.raises(SessionClosedError, match="open a new one"):
        scope["track"](session.propagate(direction="both"))  # raises here, not in the worker thread


def test_closed_session_raises_when_called(tiny_model, tmp_path):
    """Every public call of a closed session raises SessionClosedError at once, before any work or file."""
    from napari_sam2.engine.storage.labels import LabelOutput

    stack = np.random.default_rng(0).integers(0, 255, (3, 32, 32), dtype=np.uint8)
    session = tiny_model.open_stack(stack, axis=0)
    session.set_prompts(0, 1, points=[[16, 16]], labels=[1])
    result = session.labels()
    session.close()
    calls = {
        "propagate": lambda: session.propagate(),
        "propagate (bad stop_absent_after)": lambda: session.propagate(stop_absent_after=0),
        "set_prompts": lambda: session.set_prompts(0, 1, points=[[16, 16]], labels=[1]),
        "set_mask_prompts": lambda: session.set_mask_prompts(0, {1: np.ones((32, 32), bool)}),
        "add_objects_from_labels": lambda: session.add_objects_from_labels(0, np.ones((32, 32), np.uint16)),
        "clear_prompts": lambda: session.clear_prompts(0),
        "remove_object": lambda: session.remove_object(1),
        "reset": session.reset,
        "set_parent": lambda: session.set_parent(1, None),
        "embedding": lambda: session.embedding(0),
        "has_embedding": lambda: session.has_embedding(0),
        "logits": lambda: session.logits(0, 1),
        "presence": lambda: session.presence(0, 1),
        "label_dtype": session.label_dtype,
        "frame_labels": lambda: session.frame_labels(0),
        "labels": lambda: session.labels(path=tmp_path / "labels.zarr"),
        "write_labels": lambda: session.write_labels(LabelOutput(session.geometry, np.uint16)),
        "track_table": session.track_table,
        "export_ctc": lambda: session.export_ctc(tmp_path / "ctc", labels=result),
        "export_geff": lambda: session.export_geff(tmp_path / "tracks.geff", labels=result),
        "export_trackmate": lambda: session.export_trackmate(tmp_path / "tracks.xml", labels=result),
        "frames_with_output": session.frames_with_output,
        "prompts": session.prompts,
        "save_prompts": lambda: session.save_prompts(tmp_path / "prompts.json"),
    }
    for name, call in calls.items():
        with pytest.raises(SessionClosedError):
            call()
        assert not list(tmp_path.iterdir()), f"{name} made {list(tmp_path.iterdir())} on a closed session"
    session.close()  # twice is fine


def test_propagate_checks_its_arguments_when_called(tiny_model):
    """Bad arguments raise when propagate() is called (the caller's thread), not at the first next()."""
    stack = np.random.default_rng(0).integers(0, 255, (3, 32, 32), dtype=np.uint8)
    session = tiny_model.open_stack(stack, axis=0)
    with pytest.raises(PromptError, match="Nothing to propagate"):
        session.propagate()
    session.set_prompts(0, 1, points=[[16, 16]], labels=[1])
    for kwargs in ({"direction": "sideways"}, {"start": 5}, {"max_frames": -1}, {"stop_absent_after": 0}):
        with pytest.raises(PromptError):
            session.propagate(**kwargs)
    assert session.history[-1].__class__.__name__ == "SetPrompts"  # nothing recorded for the refused runs
    session.close()
