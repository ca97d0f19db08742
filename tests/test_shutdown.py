"""Closing the viewer under running jobs (in a subprocess: exit code, stderr), and `viewer.layers.clear()`."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from gui_helpers import TIMEOUT, WIDGET_NAME, idle

# A real viewer, the widget from the Plugins menu, the tiny model from a checkpoint file; one torch thread
# (the machine is shared). The scenario prints "RESULT ..." lines for the test to read.
PRELUDE = """
import logging, os, sys, threading, time
import torch
torch.set_num_threads(1)
import napari
from qtpy.QtWidgets import QApplication
from napari_sam2.engine.tracking.session import TrackingSession
from napari_sam2.sample_data import make_timelapse

logging.basicConfig(level=logging.WARNING)

def wait(condition, what):
    end = time.monotonic() + 120
    while not condition():
        QApplication.processEvents()
        time.sleep(0.005)
        if time.monotonic() > end:
            sys.exit(f"timed out waiting for {what}")

def open_viewer(frames):
    viewer = napari.Viewer(show=False)
    viewer.add_image(make_timelapse(frames, 64), name="cells", axis_labels=("t", "y", "x"))
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-sam2", WIDGET_NAME)
    ctl = widget.controller
    ctl.load_model(CHECKPOINT, "cpu", "float32")
    wait(lambda: ctl.model is not None and not ctl.runner.busy, "the model")
    return viewer, ctl
"""

CLOSE_MID_PROPAGATION = """
track_frame = TrackingSession._track_frame

def slow_track_frame(*args, **kwargs):  # a frame as slow as a real model's, so the close comes mid-run
    time.sleep(0.3)
    return track_frame(*args, **kwargs)

TrackingSession._track_frame = slow_track_frame
viewer, ctl = open_viewer(40)
ctl.layers.points.add([[0, 30, 30]])
wait(lambda: ctl.session is not None and ctl.session.object_ids and not ctl.runner.busy, "the click")
session = ctl.session
ctl.propagate("forward")
wait(lambda: ctl.propagation.done >= 1, "the first propagated frame")
run = session.history[-1]
at_close = run.frames
viewer.close()
print("RESULT frames_at_close", at_close, flush=True)
print("RESULT frames_at_exit", run.frames, flush=True)
print("RESULT session_closed", session._closed, flush=True)
"""

ENCODE_RAISES = """
closing = threading.Event()
started = threading.Event()

def failing_embedding(self, frame):  # the "Preparing frame ..." job's engine call fails during the close
    started.set()
    closing.wait(30)
    raise ValueError("the engine failed during shutdown")

TrackingSession.embedding = failing_embedding
viewer, ctl = open_viewer(8)
ctl._view_moved()
wait(started.is_set, "the encode job")
print("RESULT job", ctl.runner.current.kind, flush=True)
closing.set()
viewer.close()
for _ in range(10):
    QApplication.processEvents()
print("RESULT closed", ctl.closed, flush=True)
"""


def run_script(tmp_path, tiny_checkpoint, body: str) -> tuple[subprocess.CompletedProcess, dict[str, str]]:
    script = tmp_path / "scenario.py"
    script.write_text(f"CHECKPOINT = {str(tiny_checkpoint)!r}\nWIDGET_NAME = {WIDGET_NAME!r}\n"
                      + textwrap.dedent(PRELUDE) + textwrap.dedent(body))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    results = dict(line.split(None, 2)[1:] for line in proc.stdout.splitlines() if line.startswith("RESULT "))
    return proc, results


def test_closing_the_viewer_mid_propagation_stops_within_a_frame(gui_display, tmp_path, tiny_checkpoint):
    proc, results = run_script(tmp_path, tiny_checkpoint, CLOSE_MID_PROPAGATION)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "has been deleted" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    at_close, at_exit = int(results["frames_at_close"]), int(results["frames_at_exit"])
    assert at_exit - at_close <= 2, results  # the frame in flight (and one begun while napari closes), of 40
    assert results["session_closed"] == "True"  # its temporary files are gone before the process ends


def test_a_job_failing_during_shutdown_is_logged_not_fatal(gui_display, tmp_path, tiny_checkpoint):
    proc, results = run_script(tmp_path, tiny_checkpoint, ENCODE_RAISES)
    assert proc.returncode == 0, proc.stderr[-3000:]  # not 134 (aborted)
    assert results == {"job": "encode", "closed": "True"}
    assert "Preparing frame" in proc.stderr and "the engine failed during shutdown" in proc.stderr, proc.stderr
    assert "has been deleted" not in proc.stderr


def test_a_failing_error_report_never_aborts(tmp_path):
    """An exception while reporting a job's failure (e.g. the widget that shows it is being deleted) is
    logged: raised into Qt, PyQt would abort the interpreter (exit code 134)."""
    script = tmp_path / "report.py"
    script.write_text(textwrap.dedent("""
        import time
        from qtpy.QtWidgets import QApplication
        from napari_sam2.gui.jobs import Job, JobRunner

        app = QApplication([])

        def failing_job():
            raise ValueError("the engine failed")
            yield

        def report(job, exc):
            raise RuntimeError("wrapped C/C++ object of type QLabel has been deleted")

        runner = JobRunner(report)
        runner.submit(Job("key", "encode", lambda: (failing_job, ()), on_end=lambda cancelled: 1 / 0))
        end = time.monotonic() + 60
        while runner.busy and time.monotonic() < end:
            app.processEvents()
            time.sleep(0.005)
        print("idle", not runner.busy, flush=True)
    """))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "idle True"
    assert "reporting the failure of" in proc.stderr and "ZeroDivisionError" in proc.stderr


def test_job_runner_shutdown_returns_once_the_step_in_flight_is_done(qtbot):
    import threading

    from napari_sam2.gui.jobs import Job, JobRunner

    gate, steps, cleaned = threading.Event(), [], []

    def job():
        for i in range(1000):
            steps.append(i)
            gate.wait(10)  # a slow frame
            yield i

    runner = JobRunner(lambda job, exc: None)
    runner.submit(Job("long", "propagate", lambda: (job, ())))
    qtbot.waitUntil(lambda: len(steps) == 1, timeout=TIMEOUT)
    threading.Timer(0.2, gate.set).start()  # the frame in flight ends while shutdown waits
    runner.shutdown(then=lambda: cleaned.append(len(steps)))
    assert cleaned == [len(steps)] and len(steps) <= 2  # cleaned up on return; at most one more step began
    assert not runner.busy


@pytest.mark.parametrize("sam2", ["direct", "plugin"], indirect=True)
def test_clearing_the_layers_gives_one_notification(sam2, qtbot, notes):
    viewer, widget = sam2
    ctl = widget.controller
    ctl.layers.points.add([[0, 30, 30]])
    idle(qtbot, widget)
    before = len(notes())
    viewer.layers.clear()
    qtbot.waitUntil(lambda: len(notes()) > before, timeout=TIMEOUT)
    for _ in range(5):
        qtbot.wait(10)  # every notification queued by the removals has had its turn
    shown = notes()[before:]
    assert len(shown) == 1, shown
    assert "'cells' was removed" in shown[0][1]
    assert ctl.image is None and ctl.session is None


def test_clearing_two_images_gives_one_notification(sam2, qtbot, notes):
    """With a second image picked, clearing the layers makes the widget fall back to the first one for a
    moment: that transient "Back on ..." is no news either."""
    from napari_sam2.sample_data import make_timelapse

    viewer, widget = sam2
    ctl = widget.controller
    ctl.layers.points.add([[0, 30, 30]])
    idle(qtbot, widget)
    viewer.add_image(make_timelapse(4, 64), name="second", axis_labels=("t", "y", "x"))
    names = [widget.image_combo.itemText(i) for i in range(widget.image_combo.count())]
    widget.image_combo.setCurrentIndex(names.index("second"))
    idle(qtbot, widget)
    assert ctl.image.name == "second"
    for _ in range(5):
        qtbot.wait(10)
    before = len(notes())
    viewer.layers.clear()
    qtbot.waitUntil(lambda: len(notes()) > before, timeout=TIMEOUT)
    for _ in range(5):
        qtbot.wait(10)
    shown = notes()[before:]
    assert len(shown) == 1, shown
    assert "was removed" in shown[0][1]
    assert ctl.image is None and ctl.session is None
