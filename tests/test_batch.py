"""``napari-sam2 batch`` on real dask.distributed clusters (127.0.0.1), real files, the tiny model."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import zarr

import napari_sam2
import napari_sam2.weights
from napari_sam2 import OutputError
from napari_sam2.cli.batch import run_batch
from napari_sam2.cli.gpus import local_workers, task_resources, worker_device, worker_index
from napari_sam2.cli.manifest import ManifestError, output_name
from napari_sam2.cli.options import SegmentOptions
from napari_sam2.engine.io.prompt_file import load_annotation
from napari_sam2.engine.io.stack_files import read_stack

SHAPE = (4, 48, 56)
GOOD = ("a.npy", "b.tif", "c.zarr")
MODEL = {"device": "cpu", "dtype": "float32"}


def options(checkpoint, **changes) -> SegmentOptions:
    """The batch's options: ``checkpoint`` on the CPU in float32 (and ``changes``)."""
    return SegmentOptions(model=str(checkpoint), **MODEL).updated(**changes)


def _write_stack(path: Path, array: np.ndarray) -> None:
    if path.suffix == ".npy":
        np.save(path, array)
    elif path.suffix == ".tif":
        tifffile.imwrite(path, array, photometric="minisblack")
    else:
        z = zarr.open_array(str(path), mode="w", shape=array.shape, dtype=array.dtype, chunks=(1, *array.shape[1:]))
        z[:] = array


@pytest.fixture(scope="module")
def model(tiny_checkpoint):
    return napari_sam2.load_model(tiny_checkpoint, **MODEL)


@pytest.fixture(scope="module")
def data(tmp_path_factory, model) -> Path:
    """Three stacks with prompt files saved from real sessions, and two broken rows, listed in manifest.csv."""
    root = tmp_path_factory.mktemp("batch")
    (root / "prompts").mkdir()
    rng = np.random.default_rng(7)
    for i, name in enumerate(GOOD):
        array = (rng.random(SHAPE) * 4000).astype(np.uint16)
        array[:, 12 + 4 * i : 30 + 4 * i, 15:40] += 20000  # a bright object
        _write_stack(root / name, array)
        session = model.open_stack(array)
        session.set_prompts(1, 1, points=[[20 + 4 * i, 27]])
        list(session.propagate(direction="both"))
        session.save_prompts(root / "prompts" / f"{Path(name).stem}.json")
        session.close()
    np.save(root / "wrong_shape.npy", np.zeros((4, 40, 56), np.uint16))  # a.json does not fit it
    (root / "damaged.tif").write_bytes(b"II*\x00 this is not a TIFF")
    rows = [(name, f"prompts/{Path(name).stem}.json") for name in GOOD]
    rows += [("wrong_shape.npy", "prompts/a.json"), (str(root / "damaged.tif"), str(root / "prompts/b.json"))]
    text = "stack,prompts,note\n" + "".join(f"{s},{p},row {i}\n\n" for i, (s, p) in enumerate(rows))
    (root / "manifest.csv").write_text(text)
    return root


@contextmanager
def torch_threads(n: int):
    """Run with torch's thread count of the workers, so that the reference labels are computed alike."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def expected_labels(model, stack: Path, prompts: Path, threads: int) -> np.ndarray:
    """The labels of a session in this process that replays ``prompts`` on ``stack``."""
    source = read_stack(stack)
    try:
        with torch_threads(threads):
            session = model.open_stack(np.asarray(source.data))
            load_annotation(prompts).replay(session)
            labels = np.asarray(session.labels())
            session.close()
    finally:
        source.close()
    return labels


def read_output(path: Path) -> np.ndarray:
    source = read_stack(path)
    try:
        return np.asarray(source.data[...])
    finally:
        source.close()


def status_lines(outdir: Path) -> dict[str, dict[str, str]]:
    with open(outdir / "status.csv", newline="") as f:
        return {Path(line["stack"]).name: line for line in csv.DictReader(f)}


def check_good_outputs(model, data: Path, outdir: Path, *summaries, fmt: str = ".ome.tif") -> None:
    """Every good output equals the replay in this process (with the thread count of the worker that wrote it)."""
    threads = {r.stack: r.torch_threads for summary in summaries for r in summary.results}
    for name in GOOD:
        stack = data / name
        output = outdir / output_name(stack, fmt)
        expected = expected_labels(model, stack, data / "prompts" / f"{stack.stem}.json", threads[stack])
        assert expected.max() > 0
        np.testing.assert_array_equal(read_output(output), expected)


def test_local_cluster_batch_and_rerun(data, model, tiny_checkpoint, tmp_path):
    outdir = tmp_path / "out"  # created by run_batch
    lines: list[str] = []
    summary = run_batch(data / "manifest.csv", outdir, options(tiny_checkpoint), workers=2, echo=lines.append)
    assert (summary.done, summary.failed, summary.skipped) == (3, 2, 0)
    assert summary.status_path == outdir / "status.csv"
    status = status_lines(outdir)
    assert list(status) == [*GOOD, "wrong_shape.npy", "damaged.tif"]  # manifest order
    assert [status[n]["status"] for n in GOOD] == ["done"] * 3
    assert "made for frames of (48, 56), but this stack's frames are (40, 56)" in status["wrong_shape.npy"]["message"]
    assert status["wrong_shape.npy"]["status"] == status["damaged.tif"]["status"] == "failed"
    assert status["damaged.tif"]["message"].startswith(f"Cannot read {data / 'damaged.tif'} as a TIFF file")
    assert status["a.npy"]["output"] == "a.labels.ome.tif" and float(status["a.npy"]["seconds"]) > 0
    assert any(line.startswith("done  a.npy  ") and line.endswith(" s") for line in lines)
    assert any(line.startswith("FAILED damaged.tif: Cannot read") for line in lines)
    assert sorted(p.name for p in outdir.iterdir()) == sorted(
        ["status.csv", "a.labels.ome.tif", "b.labels.ome.tif", "c.labels.ome.tif"])  # nothing half-written
    check_good_outputs(model, data, outdir, summary)

    # Each worker loaded the model once and reused it: 5 tasks on at most 2 processes, every task saw 1 load.
    tasks = Counter(r.worker_pid for r in summary.results)
    assert 1 <= len(tasks) <= 2 and sum(tasks.values()) == 5 and max(tasks.values()) >= 2
    assert {r.model_loads for r in summary.results} == {1}
    assert {r.device for r in summary.results} == {"cpu"}  # no CUDA: every worker as asked

    # Rerun after deleting one output: only that row and the failed ones run; status keeps every row.
    (outdir / "b.labels.ome.tif").unlink()
    lines.clear()
    again = run_batch(data / "manifest.csv", outdir, options(tiny_checkpoint), workers=1, echo=lines.append)
    assert (again.done, again.failed, again.skipped) == (1, 2, 2)
    assert sorted(r.stack.name for r in again.results) == ["b.tif", "damaged.tif", "wrong_shape.npy"]
    assert {line.split()[1] for line in lines if line.startswith("skip")} == {"a.npy", "c.zarr"}
    status_after = status_lines(outdir)
    assert list(status_after) == list(status)
    assert status_after["a.npy"] == status["a.npy"] and status_after["b.tif"]["status"] == "done"
    check_good_outputs(model, data, outdir, summary, again)

    # Nothing left to do but the failures when they are dropped from the manifest; old rows stay in status.csv.
    short = data / "short.csv"
    short.write_text("prompts,stack\nprompts/a.json,a.npy\n")
    lines.clear()
    assert run_batch(short, outdir, options(tiny_checkpoint), workers=1, echo=lines.append).skipped == 1
    assert lines[-1].startswith("Nothing to run") and list(status_lines(outdir)) == list(status)


def test_interrupt_cancels_the_rest_and_keeps_what_finished(data, tiny_checkpoint, tmp_path):
    """Ctrl-C while waiting (a KeyboardInterrupt raised as the first result is echoed): the finished task is in
    status.csv, the others are cancelled, the local cluster's processes are gone, the interrupt is re-raised."""
    import psutil

    def echo(line: str) -> None:
        seen.append(line)
        if line.startswith(("done", "FAILED")):
            raise KeyboardInterrupt

    seen: list[str] = []
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    with pytest.raises(KeyboardInterrupt):
        run_batch(data / "manifest.csv", tmp_path / "out", options(tiny_checkpoint), workers=1, echo=echo)
    assert seen[-2].startswith(("done", "FAILED")) and seen[-1].startswith("Interrupted: cancelling 4 unfinished")
    assert len(status_lines(tmp_path / "out")) == 1
    left = [p for p in psutil.Process().children(recursive=True) if p.pid not in before and p.is_running()
            and p.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in " ".join(p.cmdline())]
    assert not left, [p.cmdline() for p in left]


def _start(args: list[str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-m", *args], stdout=out, stderr=subprocess.STDOUT)


def _stop(processes: list[subprocess.Popen]) -> None:
    for p in processes:
        if p.poll() is None:
            p.terminate()
    for p in processes:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


@pytest.fixture
def running_cluster(tmp_path):
    """A ``dask scheduler`` and one ``dask worker`` (one thread) as separate processes; yields the address."""
    from distributed import Client

    scheduler_file = tmp_path / "scheduler.json"
    processes = [_start(["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                         "--scheduler-file", str(scheduler_file)], tmp_path / "scheduler.log")]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline and processes[0].poll() is None:
            time.sleep(0.1)
        assert scheduler_file.exists(), (tmp_path / "scheduler.log").read_text()
        address = json.loads(scheduler_file.read_text())["address"]
        processes.append(_start(["distributed.cli.dask_worker", address, "--nthreads", "1", "--no-nanny",
                                 "--no-dashboard", "--host", "127.0.0.1"], tmp_path / "worker.log"))
        with Client(address) as client:
            client.wait_for_workers(1, timeout=60)
        yield address
    finally:
        _stop(processes[::-1])


def test_existing_cluster(running_cluster, data, model, tiny_checkpoint, tmp_path):
    from distributed import Client

    manifest = tmp_path / "good.csv"
    manifest.write_text("stack,prompts\n" + "".join(f"{data / n},{data / 'prompts' / Path(n).stem}.json\n"
                                                    for n in GOOD))
    # A model that cannot be loaded fails every task with the loader's message; the worker survives.
    bad = run_batch(manifest, tmp_path / "out", options(tmp_path / "missing.pt"), scheduler=running_cluster, workers=1,
                    fmt="ome.zarr", echo=lambda s: None)
    assert (bad.done, bad.failed) == (0, 3)
    assert {line["message"] for line in status_lines(tmp_path / "out").values()} == {
        f"'{tmp_path / 'missing.pt'}' is neither an existing checkpoint file nor a known model name. Known names: "
        + ", ".join(napari_sam2.weights.CHECKPOINTS) + "."}

    summary = run_batch(manifest, tmp_path / "out", scheduler=running_cluster, workers=1, fmt="ome.zarr",
                        model=str(tiny_checkpoint), echo=lambda s: None, **MODEL)  # options as keywords also work
    assert (summary.done, summary.failed) == (3, 0)
    assert len({r.worker_pid for r in summary.results}) == 1 and {r.model_loads for r in summary.results} == {1}
    check_good_outputs(model, data, tmp_path / "out", summary, fmt=".ome.zarr")

    # The batch's options reach every row: here the frame axis (axis 2 makes frames of (4, 48), which a.json
    # does not fit), as `napari-sam2 segment --axis 2` would use it.
    (tmp_path / "one.csv").write_text(f"stack,prompts\n{data / 'a.npy'},{data / 'prompts' / 'a.json'}\n")
    other_axis = run_batch(tmp_path / "one.csv", tmp_path / "axis", options(tiny_checkpoint, axis=2),
                           scheduler=running_cluster, workers=1, echo=lambda s: None)
    assert (other_axis.done, other_axis.failed) == (0, 1)
    assert "but this stack's frames are (4, 48)" in other_axis.results[0].message

    with Client(running_cluster) as client:  # the cluster is still there, without our model plugin
        assert len(client.scheduler_info()["workers"]) == 1
        assert client.run(lambda dask_worker: "napari-sam2-model" in dask_worker.plugins) == {
            w: False for w in client.scheduler_info()["workers"]}


@pytest.mark.parametrize(
    "text, match",
    [
        (None, "does not exist"),
        ("", "is empty"),
        ("\n\n", "is empty"),
        ("stack,prompts\n", "lists no stack"),
        ("stack,prompt\na.npy,a.json\n", "has no 'prompts' column \\(its header is stack,prompt\\)"),
        ("file,notes\na.npy,x\n", "no 'stack' and no 'prompts' column"),
        ("stack,prompts\na.npy,\n", "line 2: the prompts cell is empty"),
        ("stack,prompts\na.npy,a.json\n\nsub/a.tif,b.json\n", "lines 2 and 4 would both write a.labels.ome.tif"),
    ],
)
def test_manifest_errors(tmp_path, text, match):
    manifest = tmp_path / "manifest.csv"
    if text is not None:
        manifest.write_text(text)
    with pytest.raises(ManifestError, match=match) as info:
        run_batch(manifest, tmp_path / "out", model="unused")
    assert isinstance(info.value, ValueError)


def test_bad_format_and_workers(tmp_path):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("stack,prompts\na.npy,a.json\n")
    with pytest.raises(OutputError, match="Unknown output format '.png'; choose one of .ome.tif"):
        run_batch(manifest, tmp_path / "out", fmt=".png")
    with pytest.raises(ValueError, match="workers must be at least 1"):
        run_batch(manifest, tmp_path / "out", workers=0)
    (tmp_path / "out").write_text("a file")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        run_batch(manifest, tmp_path / "out")
    (tmp_path / "out2").mkdir()
    (tmp_path / "out2" / "status.csv").write_text("name,value\nx,1\n")
    with pytest.raises(OutputError, match="not a napari-sam2 batch status file"):
        run_batch(manifest, tmp_path / "out2")


@pytest.mark.parametrize(
    "stack, fmt, name",
    [("x/a.ome.tif", ".ome.zarr", "a.labels.ome.zarr"), ("a.OME.TIFF", ".tif", "a.labels.tif"),
     ("a.b.zarr/", ".npy", "a.b.labels.npy"), ("cells.npy", ".ome.tif", "cells.labels.ome.tif"),
     ("scan.png", ".zarr", "scan.png.labels.zarr")],
)
def test_output_names(stack, fmt, name):
    assert output_name(stack, fmt) == name


def test_docs_batch_example_runs(tiny_checkpoint, tmp_path, monkeypatch):
    """docs/batch.md's "Try it on this machine": its Python block, then its console commands (a LocalCluster of
    2 worker processes; the tiny random-weight checkpoint stands in for sam2.1_hiera_tiny)."""
    from doc_helpers import run_doc_example

    run_doc_example("batch.md", tiny_checkpoint, tmp_path, monkeypatch)
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == [
        "movie0.labels.ome.tif", "movie1.labels.ome.tif", "movie2.labels.ome.tif", "status.csv"]


@pytest.mark.parametrize(
    "device, gpus, workers, expected",
    [(None, 0, 3, 3), ("cpu", 4, 3, 3), ("mps", 0, 2, 2), (None, 2, 3, 2), (None, 4, 3, 3), ("cuda", 1, 2, 1),
     ("cuda", 8, 2, 2), ("cuda:1", 4, 3, 1)],
)
def test_local_cluster_has_at_most_one_worker_per_gpu(device, gpus, workers, expected):
    assert local_workers(workers, device, gpus) == expected


def test_each_worker_gets_its_own_gpu():
    assert [worker_device(None, 2, i) for i in range(4)] == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]
    assert [worker_device("cuda", 3, i) for i in range(3)] == ["cuda:0", "cuda:1", "cuda:2"]
    assert worker_device("cuda:1", 4, 0) == "cuda:1"  # pinned
    assert worker_device("cpu", 4, 1) == "cpu" and worker_device("mps", 0, 1) == "mps"
    assert worker_device(None, 0, 1) is None  # no GPU: the loader chooses, as before
    assert worker_device("cuda", 2, None) == "cuda"  # unknown index: the worker's default GPU
    assert [worker_index(n) for n in (0, 3, "2", "node1-1", "tcp://127.0.0.1:4567", "gpu", None)] == [
        0, 3, 2, 1, None, None, None]


def test_tasks_ask_for_a_gpu_only_where_workers_declare_one():
    assert task_resources("cuda", [{"GPU": 1}, {}]) == {"GPU": 1}
    assert task_resources(None, [{"GPU": 1.0}]) == {"GPU": 1}
    assert task_resources("cuda:0", [{}, {"memory": 4}]) is None  # no worker declares GPUs: as before
    assert task_resources("cpu", [{"GPU": 1}]) is None and task_resources(None, []) is None


def test_options_take_changes_by_name():
    base = SegmentOptions(model="m.pt", device="cpu")
    assert base.updated(roi=(0, 0, 4, 4)).roi == (0, 0, 4, 4) and base.roi is None
    assert SegmentOptions.of(None, dtype="float32") == SegmentOptions(dtype="float32")
    with pytest.raises(TypeError, match="unknown segmentation option fmt"):
        base.updated(fmt=".npy")
    with pytest.raises(TypeError, match="not a loaded model"):
        run_batch("unused.csv", "unused", model=object())


# ------------------------------------------------------------------ --auto-seeds
def test_batch_with_auto_seeds_runs_rows_without_prompts(data, model, tiny_checkpoint, tmp_path):
    """With --auto-seeds a row may leave its prompts out: the worker finds the objects of its seed frame and
    tracks them; a row with prompts replays them and adds the objects found. Each output equals
    segment_file in this process with the same options (and the worker's thread count)."""
    from napari_sam2.cli.segment import segment_file
    from napari_sam2.engine.automatic import FindOptions

    search = FindOptions(points_per_side=4, pred_iou_thresh=0, stability_score_thresh=0, box_nms_thresh=0.95)
    manifest = tmp_path / "auto.csv"
    manifest.write_text(f"stack,prompts\n{data / 'a.npy'},\n{data / 'b.tif'},{data / 'prompts' / 'b.json'}\n")
    outdir = tmp_path / "out"
    summary = run_batch(manifest, outdir, options(tiny_checkpoint, auto_seeds=search, seed_frame=1, min_area=10),
                        workers=1, echo=lambda line: None)
    assert (summary.done, summary.failed) == (2, 0), [r.message for r in summary.results]
    status = status_lines(outdir)
    assert status["a.npy"]["prompts"] == "" and status["b.tif"]["prompts"] == str(data / "prompts" / "b.json")
    threads = {r.stack.name: r.torch_threads for r in summary.results}
    for name, prompts in (("a.npy", None), ("b.tif", data / "prompts" / "b.json")):
        with torch_threads(threads[name]):
            result = segment_file(data / name, prompts, tmp_path / f"{name}.npy", model=model, auto_seeds=search,
                                  seed_frame=1, min_area=10)
        assert result.found >= 1
        labels = read_output(outdir / output_name(name, ".ome.tif"))
        np.testing.assert_array_equal(labels, np.load(tmp_path / f"{name}.npy"))
        assert all(labels[t].any() for t in range(SHAPE[0]))
    assert 1 in np.unique(labels)  # b.json's object kept next to the ones found
    # A rerun skips both rows (an empty prompts cell matches the empty status cell).
    again = run_batch(manifest, outdir, options(tiny_checkpoint, auto_seeds=search, seed_frame=1, min_area=10),
                      workers=1, echo=lambda line: None)
    assert again.skipped == 2


def test_manifest_without_prompts_needs_auto_seeds(tmp_path):
    from napari_sam2.cli.manifest import read_manifest
    from napari_sam2.engine.automatic import FindOptions

    manifest = tmp_path / "m.csv"
    manifest.write_text("stack\na.npy\nsub/b.tif\n")
    assert read_manifest(manifest, prompts_required=False) == [
        (2, tmp_path / "a.npy", None), (3, tmp_path / "sub" / "b.tif", None)]
    with pytest.raises(ManifestError, match="has no 'prompts' column"):
        run_batch(manifest, tmp_path / "out", model="unused")
    manifest.write_text("stack,prompts\na.npy,\nb.npy,b.json\n")
    with pytest.raises(ManifestError, match="line 2: the prompts cell is empty; give a path \\(or run the batch "
                                            "with --auto-seeds"):
        run_batch(manifest, tmp_path / "out", model="unused")
    assert read_manifest(manifest, prompts_required=False) == [
        (2, tmp_path / "a.npy", None), (3, tmp_path / "b.npy", tmp_path / "b.json")]
    manifest.write_text("stack,prompts\n,a.json\n")
    with pytest.raises(ManifestError, match="line 2: the stack cell is empty"):
        run_batch(manifest, tmp_path / "out", model="unused", auto_seeds=FindOptions())


def test_batch_command_line_takes_the_search_options():
    from napari_sam2.cli.main import _options, build_parser

    args = build_parser().parse_args(["batch", "m.csv", "-o", "out", "--auto-seeds", "--seed-frame", "2",
                                      "--min-area", "30", "--points-per-side", "48", "--find-option",
                                      "pred_iou_thresh=0.6"])
    opts = _options(args)
    assert opts.seed_frame == 2 and opts.min_area == 30
    assert opts.auto_seeds is not None and (opts.auto_seeds.points_per_side, opts.auto_seeds.pred_iou_thresh) == (
        48, 0.6)
    assert _options(build_parser().parse_args(["batch", "m.csv", "-o", "out"])).auto_seeds is None
