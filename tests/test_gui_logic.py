"""The widget logic without a viewer: geometry, layer content as prompts, run plans, the job runner."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from napari.layers import Image, Points, Shapes

from napari_sam2 import CheckpointError
from napari_sam2.engine.coords.geometry import StackGeometry
from napari_sam2.engine.prompts import Prompts
from napari_sam2.gui.jobs import Job, JobRunner
from napari_sam2.gui.layers import collect
from napari_sam2.gui.propagation import plan_runs, run_length
from napari_sam2.gui.stack import axis_names, default_axis, label_axes, layer_geometry


@pytest.mark.parametrize(
    ("shape", "labels", "rgb", "axis"),
    [
        ((5, 40, 50), ("t", "y", "x"), False, 0),
        ((5, 8, 40, 50), ("t", "z", "y", "x"), False, 0),
        ((8, 5, 40, 50), ("z", "t", "y", "x"), False, 1),  # t is preferred over z
        ((8, 5, 40, 50), ("c", "z", "y", "x"), False, 1),
        ((8, 5, 40, 50), None, False, 0),
        ((40, 50), None, False, None),
        ((4, 40, 50, 3), ("t", "y", "x"), True, 0),
        ((40, 50, 3), None, True, None),
    ],
)
def test_default_axis(shape, labels, rgb, axis):
    kwargs = {"axis_labels": labels} if labels else {}
    layer = Image(np.zeros(shape, np.uint8), rgb=rgb, **kwargs)
    assert default_axis(layer) == axis


def test_napari_default_axis_labels_read_as_axis_numbers():
    """A plain TIFF in napari 0.9 gets labels -3, -2, -1: the widget says "axis 0", never "-3"."""
    plain = Image(np.zeros((30, 40, 50), np.uint8), axis_labels=("-3", "-2", "-1"))
    assert axis_names(plain) == ["axis 0", "axis 1", "axis 2"]
    geo = layer_geometry(plain, None)
    assert geo.describe(axis_names(plain)) == "along axis 0 (30 frames)"
    named = Image(np.zeros((30, 40, 50), np.uint8), axis_labels=("t", "y", "x"))
    assert axis_names(named) == ["t", "y", "x"]


def test_geometry_maps_points_frames_and_labels():
    layer = Image(np.zeros((5, 8, 40, 50), np.uint16), axis_labels=("t", "z", "y", "x"))
    geo = layer_geometry(layer, None, position=[2, 3.2, 10, 10])
    assert geo.axis == 0 and geo.fixed == {1: 3} and geo.num_frames == 5 and geo.frame_hw == (40, 50)
    assert geo.frame_of([4, 3, 1, 1]) == 4 and geo.frame_of([4, 2, 1, 1]) is None
    assert geo.index(2) == (2, 3, slice(None), slice(None))
    np.testing.assert_array_equal(geo.coords(2, [[5, 6]]), [[2, 3, 5, 6]])
    z = layer_geometry(layer, 1, position=[2, 3, 10, 10])
    assert (
        z.axis == 1 and z.fixed == {0: 2} and z.describe(["t", "z", "y", "x"]) == "along z (8 frames), t = 2"
    )
    rgb = layer_geometry(Image(np.zeros((40, 50, 3), np.uint8), rgb=True), 0)
    assert rgb.axis is None and rgb.label_shape == (40, 50) and rgb.num_frames == 1 and rgb.frame_of([3, 4]) == 0
    assert rgb.channel_axis == 2 and rgb.shape == (40, 50, 3)
    video = layer_geometry(Image(np.zeros((6, 40, 50, 3), np.uint8), rgb=True), None)
    assert video.axis == 0 and video.label_shape == (6, 40, 50) and video.index(4) == (4, slice(None), slice(None))


def test_geometry_in_label_space_skips_the_channel_axis():
    """(T, C, Y, X) with channels on axis 1: label images are (T, Y, X), coordinates follow."""
    geo = StackGeometry.resolve((6, 3, 40, 50), axis=0, channel_axis=1)
    assert geo.label_shape == (6, 40, 50) and geo.spatial_axes == (2, 3) and geo.label_axis == 0
    assert geo.index(5) == (5, slice(None), slice(None)) and geo.frame_of([5, 1, 2]) == 5
    np.testing.assert_array_equal(geo.rc([[5, 7, 9]]), [[7, 9]])
    np.testing.assert_array_equal(geo.coords(2, [[7, 9]]), [[2, 7, 9]])
    frame = geo.to_frame_array(np.arange(3 * 40 * 50).reshape(3, 40, 50))
    assert frame.shape == (40, 50, 3) and frame[1, 2, 1] == 2000 + 52


def test_collect_groups_prompts_by_frame_and_object():
    geo = StackGeometry.resolve((5, 40, 50), 0)
    points = Points(
        np.array([[1, 5, 6], [1, 7, 8], [2, 9, 9], [1, 3, 3.0]]),
        features={"obj_id": [1, 1, 1, 2], "positive": [True, False, True, True]},
    )
    rect = np.array([[3, 10, 10], [3, 10, 30], [3, 20, 30], [3, 20, 10]])
    shapes = Shapes(
        [rect, rect + [0, 1, 1]], shape_type=["rectangle", "ellipse"], features={"obj_id": [2, 2]}
    )
    mask = np.zeros((40, 50), bool)
    prompts, notes = collect(points, shapes, geo, {(4, 3): mask})
    assert sorted(prompts) == [(1, 1), (1, 2), (2, 1), (3, 2), (4, 3)]
    p = prompts[(1, 1)]
    assert p.points.tolist() == [[5, 6], [7, 8]] and p.labels.tolist() == [1, 0] and p.box is None
    assert prompts[(3, 2)].box.tolist() == [10, 10, 20, 30] and len(prompts[(3, 2)].points) == 0
    assert prompts[(4, 3)].mask is mask and len(prompts[(4, 3)].points) == 0
    assert all(isinstance(p, Prompts) and p.hw == (40, 50) for p in prompts.values())  # the engine's one type
    assert notes == [
        "1 shape(s) in 'Shapes' are not rectangles and are ignored; draw boxes with the rectangle tool."
    ]
    again, _ = collect(points, shapes, geo, {(4, 3): mask})
    assert all(again[k].same_as(prompts[k]) for k in prompts)
    assert not again[(1, 1)].same_as(prompts[(2, 1)])


@pytest.mark.parametrize(
    ("direction", "first", "last", "prompted", "runs"),
    [
        ("forward", 0, 9, [3, 6], [(3, "forward", 6)]),
        ("backward", 0, 9, [3, 6], [(6, "backward", 6)]),
        ("both", 0, 9, [3, 6], [(3, "forward", 6), (3, "backward", 3)]),
        ("both", 0, 9, [0], [(0, "forward", 9)]),
        ("both", 2, 5, [0, 8], [(2, "forward", 3)]),  # no prompt inside the range: from its start
        ("backward", 2, 5, [], [(5, "backward", 3)]),
        ("both", 0, 0, [0], [(0, "forward", 0)]),
    ],
)
def test_plan_runs(direction, first, last, prompted, runs):
    assert plan_runs(direction, first, last, prompted) == runs


def test_run_length_matches_the_engine(tiny_model):
    stack = np.random.default_rng(0).integers(0, 255, (7, 32, 32), dtype=np.uint8)
    session = tiny_model.open_stack(stack)
    session.set_prompts(3, 1, points=[[10, 10]])
    for run in [
        (3, "forward", 3),
        (3, "backward", 3),
        (0, "backward", 0),
        (6, "forward", 0),
        (2, "forward", 2),
    ]:
        assert len(list(session.propagate(*run))) == run_length(*run)
    session.close()


def _steps(values, gate=None, ran=None):
    """Yield ``values``; with a ``gate`` (threading.Semaphore) each step waits for one permit, so a test
    decides how far a job gets (counted, not timed); ``ran`` records the steps the worker computed."""
    for v in values:
        if gate is not None and not gate.acquire(timeout=60):
            raise RuntimeError("test gate never opened")
        if ran is not None:
            ran.append(v)
        yield v


def test_job_runner_runs_one_at_a_time_coalesces_and_cancels(qtbot):
    seen, errors, ended = [], [], []
    runner = JobRunner(lambda job, exc: errors.append(exc))

    def job(key, values, kind="prompt"):
        return Job(key, kind, lambda: (_steps, (values,)), seen.append, lambda c: ended.append((key, c)))

    runner.submit(job("a", [1, 2]))
    runner.submit(job("b", [3]))
    runner.submit(job("b", [4]))  # replaces the waiting "b"
    qtbot.waitUntil(lambda: not runner.busy, timeout=10_000)
    assert seen == [1, 2, 4] and ended == [("a", False), ("b", False)] and not errors

    gate, ran = threading.Semaphore(0), []
    runner.submit(Job("long", "propagate", lambda: (_steps, (list(range(100)), gate, ran)), seen.append,
                      lambda c: ended.append(("long", c))))
    gate.release(2)
    qtbot.waitUntil(lambda: len(seen) == 5, timeout=10_000)  # 1, 2, 4 and two steps of "long"
    assert runner.cancel(kinds=("propagate",))
    gate.release(100)  # every step may go now: only the cancel stops the worker
    qtbot.waitUntil(lambda: not runner.busy, timeout=10_000)
    assert ended[-1] == ("long", True) and seen == [1, 2, 4, 0, 1]  # results after the cancel are dropped
    assert len(ran) <= 3  # the worker stopped: at most the step in flight ran after the cancel


def test_job_runner_reports_errors_even_runtime_errors(qtbot):
    errors = []
    runner = JobRunner(lambda job, exc: errors.append(exc))

    def failing():
        yield 1
        raise CheckpointError("bad file: download it again")  # a RuntimeError subclass

    runner.submit(Job("x", "load", lambda: (failing, ())))
    runner.submit(Job("y", "load", lambda: 1 / 0))  # prepare() itself fails
    qtbot.waitUntil(lambda: not runner.busy, timeout=10_000)
    assert [type(e) for e in errors] == [CheckpointError, ZeroDivisionError]


def test_job_runner_shutdown_waits_for_the_worker_then_cleans_up(qtbot):
    seen, cleaned = [], []
    runner = JobRunner(lambda job, exc: None)
    gate, ran = threading.Semaphore(2), []
    runner.submit(Job("long", "propagate", lambda: (_steps, (list(range(100)), gate, ran)), seen.append))
    runner.submit(Job("next", "prompt", lambda: (_steps, ([-1],)), seen.append))
    qtbot.waitUntil(lambda: len(seen) == 2, timeout=10_000)
    runner.shutdown(then=lambda: cleaned.append(True), wait_s=0)  # no wait: the step in flight waits for the gate
    assert not cleaned and runner.closed  # the worker is still in its third step
    gate.release(100)  # every step may go now: only the shutdown stops the job
    qtbot.waitUntil(lambda: cleaned == [True], timeout=10_000)
    assert seen == [0, 1] and len(ran) <= 3  # the worker stopped within a step; the waiting job never ran
    n = len(seen)
    runner.submit(Job("after", "prompt", lambda: (_steps, ([0],)), seen.append))
    assert not runner.busy  # a closed runner starts nothing
    qtbot.wait(200)  # (nothing would arrive later either)
    assert len(seen) == n


def test_download_progress_is_driven_from_another_thread(qtbot):
    import threading

    from napari_sam2.gui.model_picker import DownloadProgress
    from napari_sam2.gui.notify import DownloadCancelled

    bar = DownloadProgress()

    def download():  # what fetch_checkpoint does with its progress object, in the loading thread
        bar.total = 300
        for _ in range(3):
            bar.update(100)

    thread = threading.Thread(target=download)
    thread.start()
    thread.join()
    qtbot.waitUntil(lambda: bar._bar is not None and bar._bar.n == 300, timeout=5000)
    assert bar._bar.total == 300
    bar.close()  # from the loading thread too: closed on the GUI thread
    qtbot.waitUntil(lambda: bar._bar is None, timeout=5000)
    bar.cancel()
    with pytest.raises(DownloadCancelled):
        bar.update(1)


def test_points_outside_the_image_are_ignored_with_a_note():
    geo = StackGeometry.resolve((5, 40, 50), 0)
    points = Points(
        np.array([[1, 5, 6], [1, 45, 8], [1, 7, 8]]),  # the second lies below the 40-row image
        features={"obj_id": [1, 1, 1], "positive": [True, True, False]},
    )
    prompts, notes = collect(points, None, geo, {})
    assert prompts[(1, 1)].points.tolist() == [[5, 6], [7, 8]] and prompts[(1, 1)].labels.tolist() == [1, 0]
    assert len(notes) == 1 and "(row 45, col 8) on frame 1" in notes[0] and "40 x 50" in notes[0]


@pytest.mark.parametrize(
    ("shape", "labels", "axis", "axes"),
    [
        ((5, 40, 50), ("t", "y", "x"), None, "TYX"),
        ((5, 40, 50), ("z", "y", "x"), None, "ZYX"),
        ((5, 40, 50), None, None, "TYX"),  # unnamed: the frame axis is T
        ((5, 8, 40, 50), ("t", "z", "y", "x"), 1, "TZYX"),
        ((5, 8, 40, 50), None, 1, "ZTYX"),  # frame axis 1 is T; the other leading axis Z
    ],
)
def test_label_axes_for_export(shape, labels, axis, axes):
    kwargs = {"axis_labels": labels} if labels else {}
    layer = Image(np.zeros(shape, np.uint8), **kwargs)
    assert label_axes(layer, layer_geometry(layer, axis)) == axes
