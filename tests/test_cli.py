"""The command line, as a user meets it: real files, a real process, one-line errors."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

import napari_sam2
from napari_sam2.cli.main import main
from napari_sam2.engine.io.stack_files import read_stack

T, H, W = 6, 48, 56


def stack_data(frames: int = T) -> np.ndarray:
    rng = np.random.default_rng(3)
    data = rng.integers(800, 1200, (frames, H, W), dtype=np.uint16)
    yy, xx = np.ogrid[:H, :W]
    for t in range(frames):
        data[t][(yy - 20 - t) ** 2 + (xx - 25) ** 2 < 64] += 2500
    return data


def clicked_once(tmp_path, model, data: np.ndarray, name: str):
    """``data`` saved as ``<name>.npy`` and the prompt file of one click on frame 0 (nothing propagated);
    returns (stack path, prompt path)."""
    np.save(tmp_path / f"{name}.npy", data)
    session = model.open_stack(data)
    session.set_prompts(0, 1, points=[[20, 25]])
    prompts = session.save_prompts(tmp_path / "p.json")
    session.close()
    return tmp_path / f"{name}.npy", prompts


@pytest.fixture(scope="module")
def model(tiny_checkpoint):
    return napari_sam2.load_model(tiny_checkpoint, device="cpu", dtype="float32")


@pytest.fixture
def annotated(tmp_path, model):
    """An OME-TIFF stack and the prompt file of a session with clicks, a propagation, a correction and
    another propagation; returns (stack path, prompt path, the session's labels)."""
    data = stack_data()
    stack = tmp_path / "cells.ome.tif"
    tifffile.imwrite(stack, data, metadata={"axes": "TYX"}, ome=True)
    session = model.open_stack(data, axis=0)
    session.set_prompts(1, 1, points=[[21, 25]])
    session.set_prompts(1, 2, box=(2, 30, 20, 54))
    list(session.propagate(direction="both"))
    session.set_prompts(4, 1, points=[[24, 25], [40, 10]], labels=[1, 0])  # a correction
    list(session.propagate(start=4))
    prompts = session.save_prompts(tmp_path / "cells.json", names={1: "cell"})
    labels = session.labels()
    session.close()
    return stack, prompts, labels


def run_cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "napari_sam2", *map(str, args)], capture_output=True, text=True,
                          timeout=300, **kwargs)


def test_segment_replays_the_session_exactly(annotated, tiny_checkpoint, tmp_path):
    """A new process replays the prompt file to the very labels of the session that saved it."""
    import ome_types

    stack, prompts, expected = annotated
    out = tmp_path / "out" / "cells.labels.ome.tif"
    out.parent.mkdir()
    proc = run_cli("segment", stack, "--prompts", prompts, "-o", out, "--model", tiny_checkpoint, "--device", "cpu",
                   "--dtype", "float32")
    assert proc.returncode == 0, proc.stderr
    got = read_stack(out)
    assert got.axes == "TYX" and got.data.dtype == np.uint16
    np.testing.assert_array_equal(np.asarray(got.data[:]), expected)
    got.close()
    meta = ome_types.from_tiff(out)
    pixels = meta.images[0].pixels
    assert (pixels.size_t, pixels.size_z, pixels.size_y, pixels.size_x) == (T, 1, H, W)
    assert "frames in" in proc.stderr and sorted(p.name for p in out.parent.iterdir()) == [out.name]


def test_segment_to_ome_zarr_opens_with_the_ome_zarr_reader(annotated, tiny_checkpoint, tmp_path):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    stack, prompts, expected = annotated
    out = tmp_path / "cells.labels.ome.zarr"
    assert main(["segment", str(stack), "-p", str(prompts), "-o", str(out), "--model", str(tiny_checkpoint),
                 "--device", "cpu", "--dtype", "float32", "-q"]) == 0
    nodes = list(Reader(parse_url(str(out)))())
    np.testing.assert_array_equal(np.asarray(nodes[0].data[0]), expected)
    assert [a["name"] for a in nodes[0].metadata["axes"]] == ["t", "y", "x"]


def test_a_prompt_file_without_propagation_is_propagated_through_the_stack(tmp_path, model, tiny_checkpoint,
                                                                          capsys):
    data = stack_data()
    np.save(tmp_path / "s.npy", data)
    session = model.open_stack(data)
    session.set_prompts(2, 1, points=[[22, 25]])
    session.save_prompts(tmp_path / "p.json")
    list(session.propagate(direction="both"))
    expected = session.labels()
    session.close()
    out = tmp_path / "s.labels.npy"
    assert main(["segment", str(tmp_path / "s.npy"), "-p", str(tmp_path / "p.json"), "-o", str(out), "--model",
                 str(tiny_checkpoint), "--device", "cpu", "--dtype", "float32", "-q"]) == 0
    np.testing.assert_array_equal(np.load(out), expected)
    assert "no propagation was recorded" in capsys.readouterr().err


@pytest.mark.parametrize(
    "case, match",
    [
        ("missing stack", "does not exist"),
        ("missing prompts", "prompt file .* does not exist"),
        ("other stack", "made for frames of \\(48, 56\\), but this stack's frames are \\(30, 30\\)"),
        ("existing output", "exists; pass --overwrite"),
        ("bad axis", "--axis z: the stack's axes are TYX"),
        ("missing model", "sam2_missing.pt"),
        ("no output folder", "does not exist; create it first"),
    ],
)
def test_bad_inputs_get_one_line_and_exit_1(annotated, tiny_checkpoint, tmp_path, capsys, case, match):
    stack, prompts, _ = annotated
    out = tmp_path / "o.ome.tif"
    args = {"stack": str(stack), "prompts": str(prompts), "out": str(out), "model": str(tiny_checkpoint)}
    extra: list[str] = []
    if case == "missing stack":
        args["stack"] = str(tmp_path / "nope.tif")
    elif case == "missing prompts":
        args["prompts"] = str(tmp_path / "nope.json")
    elif case == "other stack":
        np.save(tmp_path / "small.npy", np.zeros((T, 30, 30), np.uint16))
        args["stack"] = str(tmp_path / "small.npy")
    elif case == "existing output":
        out.write_bytes(b"keep me")
    elif case == "bad axis":
        extra = ["--axis", "z"]
    elif case == "missing model":
        args["model"] = str(tmp_path / "sam2_missing.pt")
    elif case == "no output folder":
        args["out"] = str(tmp_path / "no" / "where.ome.tif")
    code = main(["segment", args["stack"], "-p", args["prompts"], "-o", args["out"], "--model", args["model"],
                 "--device", "cpu", "-q", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and err[0].startswith("napari-sam2: error: "), err
    assert __import__("re").search(match, err[0]), err[0]
    if case == "existing output":
        assert out.read_bytes() == b"keep me"
    assert not [p for p in tmp_path.iterdir() if ".partial" in p.name]


@pytest.mark.parametrize(
    "args, match",
    [
        (["segment", "s.npy", "-o", "o.npy", "--axis", "q"], "argument --axis: --axis takes t, z or an axis number"),
        (["segment", "s.npy", "-o", "o.npy", "--device", "gpu"], "argument --device: --device takes cpu, cuda"),
        (["segment", "s.npy", "-o", "o.npy", "--seed-frame", "-1"], "argument --seed-frame: .* >= 0; got '-1'"),
        (["segment", "s.npy", "-o", "o.npy", "--roi", "40,40,10,10"], "argument --roi: .*0 <= ROW0 < ROW1"),
        (["batch", "m.csv", "-o", "out", "--workers", "0"], "argument --workers: .* >= 1; got '0'"),
        (["batch", "m.csv", "-o", "out", "--format", ".png"], "argument --format: Unknown output format '.png'"),
        (["segment", "s.npy", "-o", "o.png"], "argument --output/-o: .*end the output name with one of"),
    ],
)
def test_usage_errors_exit_2_before_anything_runs(tmp_path, monkeypatch, capsys, args, match):
    """docs/cli.md: 2 for a wrong command line, with argparse's usage and a message naming the option."""
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "s.npy", stack_data(2))
    with pytest.raises(SystemExit) as exc:
        main(args)
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    assert err.startswith("usage: napari-sam2 ") and __import__("re").search(match, err.splitlines()[-1]), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.npy"]


def test_a_refusal_prints_no_progress_bar(annotated, tiny_checkpoint, tmp_path, capsys):
    """Without --quiet, an existing output is refused with one line: no progress bar before it."""
    stack, prompts, _ = annotated
    out = tmp_path / "o.ome.tif"
    out.write_bytes(b"keep me")
    code = main(["segment", str(stack), "-p", str(prompts), "-o", str(out), "--model", str(tiny_checkpoint),
                 "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 1 and err == f"napari-sam2: error: {out} exists; pass --overwrite (overwrite=True) to replace it.\n"
    assert out.read_bytes() == b"keep me"


def test_progress_and_summary_count_frames_not_steps(annotated, model, tmp_path, capsys, tiny_checkpoint):
    """The fixture's file propagates 7 steps both ways from frame 1 and 2 more after a correction on
    frame 4: 9 steps over the stack's 6 frames. The bar and the summary say 6 frames."""
    from napari_sam2.cli.segment import segment_file

    stack, prompts, _ = annotated
    calls = []
    result = segment_file(stack, prompts, tmp_path / "a.npy", model=model, on_frame=lambda d, t: calls.append((d, t)))
    assert result.frames == T and len(calls) == 9
    assert calls[-1] == (T, T) and {t for _, t in calls} == {T}
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)  # never counts back, never past the total
    assert main(["segment", str(stack), "-p", str(prompts), "-o", str(tmp_path / "b.npy"), "--model",
                 str(tiny_checkpoint), "--device", "cpu", "--dtype", "float32", "-q"]) == 0
    assert f"b.npy: {T} frames in " in capsys.readouterr().err


def test_one_frame_is_one_frame(tmp_path, model, tiny_checkpoint, capsys):
    stack, prompts = clicked_once(tmp_path, model, stack_data(1), "one")
    assert main(["segment", str(stack), "-p", str(prompts), "-o", str(tmp_path / "o.npy"),
                 "--model", str(tiny_checkpoint), "--device", "cpu", "--dtype", "float32", "-q"]) == 0
    assert "o.npy: 1 frame in " in capsys.readouterr().err


def test_interrupted_run_leaves_no_output(tmp_path, tiny_checkpoint, model):
    """Ctrl-C in the middle: exit 130, one line, and nothing under the output's name (or half-written)."""
    # long enough that the run cannot end before the signal arrives on a loaded machine (~100 frames/s here)
    stack, prompts = clicked_once(tmp_path, model, stack_data(1000), "long")
    out = tmp_path / "long.labels.ome.tif"
    proc = subprocess.Popen([sys.executable, "-m", "napari_sam2", "segment", str(stack), "-p",
                             str(prompts), "-o", str(out), "--model", str(tiny_checkpoint), "--device",
                             "cpu"], stderr=subprocess.PIPE, text=True,
                            # Ctrl-C as in a terminal, even when the tests run as a background job (which
                            # starts with SIGINT ignored, and Python then keeps ignoring it)
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen = ""
    t0 = time.time()
    while "/1000" not in seen and time.time() - t0 < 120:  # the progress bar has started
        seen += proc.stderr.read(1)
    proc.send_signal(signal.SIGINT)
    rest = proc.communicate(timeout=120)[1]
    assert proc.returncode == 130, seen + rest
    assert "interrupted" in rest and "Traceback" not in rest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.npy", "p.json"]


def test_info_and_help(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "torch" in out and "checkpoint cache:" in out and "sam2.1_hiera_tiny" in out
    with pytest.raises(SystemExit) as exc:
        main(["segment"])
    assert exc.value.code == 2


def test_download_of_an_unknown_name_is_one_line(capsys):
    assert main(["download", "sam3_giant"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Unknown SAM 2 checkpoint 'sam3_giant'" in err


def test_console_script_and_demo_headless(tiny_checkpoint):
    exe = Path(sys.executable).parent / "napari-sam2"
    proc = subprocess.run([str(exe), "demo", "--headless", "--model", str(tiny_checkpoint)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "frame 0: mask of" in proc.stdout


def test_docs_cli_example_runs(tiny_checkpoint, tmp_path, monkeypatch):
    """docs/cli.md's "Try it": its Python block, then every command of its console block, in a fresh folder
    (the tiny random-weight checkpoint stands in for sam2.1_hiera_tiny)."""
    from doc_helpers import run_doc_example

    assert len(run_doc_example("cli.md", tiny_checkpoint, tmp_path, monkeypatch)) == 3
    assert (tmp_path / "cells.labels.ome.zarr").is_dir()


def test_seeds_from_a_label_file(tmp_path, model, tiny_checkpoint):
    """--seeds: every label of a label image (e.g. Cellpose's) becomes an object; labels as a session gives."""
    data = stack_data()
    np.save(tmp_path / "s.npy", data)
    seeds = np.zeros((H, W), np.uint16)
    seeds[15:27, 19:31] = 4
    seeds[2:10, 40:50] = 12
    tifffile.imwrite(tmp_path / "seeds.tif", seeds)
    session = model.open_stack(data)
    session.add_objects_from_labels(2, seeds)
    list(session.propagate(direction="both"))
    expected = session.labels()
    session.close()
    out = tmp_path / "s.labels.tif"
    assert main(["segment", str(tmp_path / "s.npy"), "--seeds", str(tmp_path / "seeds.tif"), "--seed-frame", "2",
                 "-o", str(out), "--model", str(tiny_checkpoint), "--device", "cpu", "--dtype", "float32",
                 "-q", "--track-table", str(tmp_path / "tracks.csv"), "--ctc", str(tmp_path / "RES")]) == 0
    got = tifffile.imread(out)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(got[2], seeds)
    import csv

    rows = list(csv.DictReader((tmp_path / "tracks.csv").open()))
    assert {r["obj_id"] for r in rows} == {"4", "12"} and any(r["prompted"] == "True" for r in rows)
    for t in range(T):  # both objects are on every frame: no gaps, so CTC keeps their ids
        np.testing.assert_array_equal(tifffile.imread(tmp_path / "RES" / f"mask{t:03d}.tif"), expected[t])
    assert (tmp_path / "RES" / "res_track.txt").is_file()

    # the track table is an output like the others: never replaced without --overwrite, never over a folder
    table = tmp_path / "tracks.csv"
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    for target in (table, keep):
        args = ["segment", str(tmp_path / "s.npy"), "--seeds", str(tmp_path / "seeds.tif"), "--seed-frame", "2",
                "-o", str(tmp_path / "other.tif"), "--model", str(tiny_checkpoint), "-q", "--track-table", str(target)]
        assert main(args) == 1
        assert main([*args, "--overwrite"]) == (0 if target == table else 1)
    assert (keep / "notes.txt").read_text() == "mine"


def test_a_region_is_saved_and_replayed(tmp_path, model, tiny_checkpoint):
    """A session on a region saves it in the prompt file; segment replays in the same region by itself."""
    data = stack_data()
    np.save(tmp_path / "s.npy", data)
    session = model.open_stack(data, roi=(10, 12, 42, 50))
    session.set_prompts(1, 1, points=[[21, 25]])
    list(session.propagate(direction="both"))
    session.save_prompts(tmp_path / "p.json")
    expected = session.labels()
    session.close()
    out = tmp_path / "s.labels.npy"
    assert main(["segment", str(tmp_path / "s.npy"), "-p", str(tmp_path / "p.json"), "-o", str(out), "--model",
                 str(tiny_checkpoint), "--device", "cpu", "--dtype", "float32", "-q"]) == 0
    np.testing.assert_array_equal(np.load(out), expected)
    assert not expected[:, :10].any() and not expected[:, 42:].any()


def test_a_failed_write_is_one_line_and_leaves_nothing(tmp_path, model, tiny_checkpoint, capsys, monkeypatch):
    """The system refuses the output (here: a name too long for the hidden temporary file next to it, after the
    whole stack was segmented): one line that names the output and keeps the system's reason, exit 1, no
    traceback, nothing left behind. With NAPARI_SAM2_DEBUG it is a WriteError, also an OSError."""
    stack, prompts = clicked_once(tmp_path, model, stack_data(2), "s")
    out = tmp_path / ("x" * 240 + ".npy")  # a legal name; its temporary sibling is 18 characters longer
    args = ["segment", str(stack), "-p", str(prompts), "-o", str(out), "--model", str(tiny_checkpoint), "--device",
            "cpu", "--dtype", "float32", "-q"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"napari-sam2: error: Cannot write {out} (File name too long)"), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.json", "s.npy"]
    monkeypatch.setenv("NAPARI_SAM2_DEBUG", "1")
    with pytest.raises(napari_sam2.WriteError) as info:
        main(args)
    assert isinstance(info.value, OSError) and isinstance(info.value, napari_sam2.NapariSam2Error)


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
def test_an_unavailable_device_is_a_user_error(model, tiny_checkpoint, tmp_path, capsys, monkeypatch):
    stack, prompts = clicked_once(tmp_path, model, stack_data(2), "s")
    args = ["segment", str(stack), "-p", str(prompts), "-o", str(tmp_path / "o.npy"), "--model",
            str(tiny_checkpoint), "--device", "cuda", "-q"]
    assert main(args) == 1
    assert capsys.readouterr().err == ("napari-sam2: error: device='cuda' was requested but PyTorch sees no CUDA "
                                       "GPU; use device=None or 'cpu'.\n")
    monkeypatch.setenv("NAPARI_SAM2_DEBUG", "1")
    with pytest.raises(napari_sam2.DeviceError):
        main(args)


@pytest.mark.parametrize("error", [RuntimeError("boom"), ValueError("boom"), OSError("boom")])
def test_a_bug_prints_its_traceback_and_asks_for_a_report(tmp_path, capsys, monkeypatch, error):
    """Anything that is not a NapariSam2Error is a bug (even a ValueError or OSError from a library): the
    traceback, then one line asking to report it, exit 1; NAPARI_SAM2_DEBUG re-raises it."""
    from napari_sam2.cli import segment

    def broken(*args, **kwargs):  # stands in for a bug inside segment_file
        raise error

    monkeypatch.setattr(segment, "segment_file", broken)
    args = ["segment", str(tmp_path / "s.npy"), "-p", str(tmp_path / "p.json"), "-o", str(tmp_path / "o.npy"), "-q"]
    assert main(args) == 1
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert lines[0] == "Traceback (most recent call last):" and "in broken" in err, err
    assert lines[-2] == f"{type(error).__name__}: boom", err
    assert lines[-1].startswith("napari-sam2: internal error: ") and "please report it" in lines[-1], err
    monkeypatch.setenv("NAPARI_SAM2_DEBUG", "1")
    with pytest.raises(type(error), match="boom"):
        main(args)


def test_every_error_of_napari_sam2_shares_one_base():
    """Each error is a NapariSam2Error and keeps its earlier built-in base, so `except ValueError` still works."""
    from napari_sam2 import errors

    bases = {errors.CheckpointError: RuntimeError, errors.SessionClosedError: RuntimeError,
             errors.PromptError: ValueError, errors.LabelDtypeError: errors.PromptError,
             errors.ImageDataError: ValueError, errors.OutputError: ValueError,
             errors.LabelFormatError: errors.OutputError, errors.WriteError: OSError,
             errors.ManifestError: ValueError, errors.DeviceError: ValueError, errors.ClusterError: OSError}
    for cls, base in bases.items():
        assert issubclass(cls, errors.NapariSam2Error) and issubclass(cls, base), cls
        assert getattr(napari_sam2, cls.__name__) is cls
    from napari_sam2.cli.batch import ManifestError

    assert ManifestError is errors.ManifestError


@pytest.mark.parametrize(
    "case, match",
    [
        ("ctc is a file", "RES exists and is not empty; pass --overwrite"),
        ("ctc ids above 65535", "Frame 0 holds object id 70000, above 65535, the largest label a CTC mask"),
        ("float seeds", "a label image must hold integer labels; got float32"),
    ],
)
def test_more_user_errors_are_one_line(tmp_path, model, tiny_checkpoint, capsys, monkeypatch, case, match):
    """Routes whose errors came from libraries or as bare ValueErrors: each is a NapariSam2Error now."""
    np.save(tmp_path / "s.npy", stack_data(2))
    seeds = np.zeros((H, W), np.uint32)
    seeds[15:27, 19:31] = 70000 if case == "ctc ids above 65535" else 3
    tifffile.imwrite(tmp_path / "seeds.tif", seeds.astype(np.float32) if case == "float seeds" else seeds)
    if case == "ctc is a file":
        (tmp_path / "RES").write_text("keep me")
    args = ["segment", str(tmp_path / "s.npy"), "--seeds", str(tmp_path / "seeds.tif"), "-o", str(tmp_path / "o.npy"),
            "--ctc", str(tmp_path / "RES"), "--model", str(tiny_checkpoint), "--device", "cpu", "--dtype", "float32",
            "-q"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("napari-sam2: error: ") and "Traceback" not in err, err
    assert __import__("re").search(match, err), err
    assert not (tmp_path / "o.npy").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    if case == "ctc is a file":
        assert (tmp_path / "RES").read_text() == "keep me"
    monkeypatch.setenv("NAPARI_SAM2_DEBUG", "1")
    with pytest.raises(napari_sam2.NapariSam2Error):
        main(args)


# ------------------------------------------------------------------ --auto-seeds
#: Search settings under which the random-weight tiny model finds objects (its scores are arbitrary).
LOOSE_SEARCH = ["--points-per-side", "4", "--find-option", "pred_iou_thresh=0", "--find-option",
                "stability_score_thresh=0", "--find-option", "box_nms_thresh=0.95"]


def test_segment_auto_seeds_finds_tracks_and_saves_a_prompt_file_that_replays(tmp_path, model, tiny_checkpoint,
                                                                                capsys):
    """--auto-seeds: the objects of the seed frame, found as session.find_objects finds them, tracked on every
    frame; --save-prompts records them (SetMasks) so that replaying the file gives the same labels."""
    from napari_sam2.engine.automatic import FindOptions
    from napari_sam2.engine.io.prompt_file import load_annotation
    from napari_sam2.engine.tracking.history import PropagationRun

    data = stack_data()
    np.save(tmp_path / "s.npy", data)
    session = model.open_stack(data)
    mapping = session.find_objects(2, FindOptions(points_per_side=4, pred_iou_thresh=0, stability_score_thresh=0,
                                                  box_nms_thresh=0.95), min_area=10)
    seeded = session.frame_labels(2)
    session.close()
    assert len(mapping) >= 2
    out, saved = tmp_path / "s.labels.npy", tmp_path / "auto.json"
    model_args = ["--model", str(tiny_checkpoint), "--device", "cpu", "--dtype", "float32", "-q"]
    assert main(["segment", str(tmp_path / "s.npy"), "--auto-seeds", "--seed-frame", "2", "--min-area", "10",
                 *LOOSE_SEARCH, "-o", str(out), "--save-prompts", str(saved), *model_args]) == 0
    assert f"{len(mapping)} objects found on frame 2" in capsys.readouterr().err
    labels = np.load(out)
    assert labels.shape == (T, H, W)
    np.testing.assert_array_equal(labels[2], seeded)  # frame-exact seeds on the seed frame
    assert sorted(np.unique(labels[2])[1:]) == sorted(mapping.values())
    assert all(labels[t].any() for t in range(T))  # tracked through the stack, both ways from frame 2
    annotation = load_annotation(saved)
    assert any(isinstance(r, PropagationRun) for r in annotation.history)
    again = tmp_path / "again.npy"
    assert main(["segment", str(tmp_path / "s.npy"), "-p", str(saved), "-o", str(again), *model_args]) == 0
    np.testing.assert_array_equal(np.load(again), labels)


def test_auto_seeds_after_a_prompt_file_add_objects_with_fresh_ids_inside_the_roi(tmp_path, model, tiny_checkpoint):
    """With a prompt file, the objects found join the replayed ones (fresh ids, the replayed object kept); with
    --roi the search stays in the region."""
    from napari_sam2.cli.segment import segment_file
    from napari_sam2.engine.automatic import FindOptions
    from napari_sam2.engine.io.prompt_file import load_annotation

    roi = (4, 6, 44, 50)
    np.save(tmp_path / "s.npy", stack_data())
    stack, session = tmp_path / "s.npy", model.open_stack(stack_data(), roi=roi)
    session.set_prompts(0, 1, points=[[20, 25]])
    prompts = session.save_prompts(tmp_path / "p.json", names={1: "cell A"})
    session.close()
    search = FindOptions(points_per_side=4, pred_iou_thresh=0, stability_score_thresh=0, box_nms_thresh=0.95)
    result = segment_file(stack, prompts, tmp_path / "o.npy", model=model, roi=roi, auto_seeds=search,
                          save_prompts=tmp_path / "all.json")
    labels = np.load(tmp_path / "o.npy")
    ids = set(np.unique(labels).tolist()) - {0}
    assert result.found >= 1 and 1 in ids and len(ids) == 1 + result.found
    assert ids - {1} == set(range(2, 2 + result.found))  # fresh ids after the replayed object 1
    outside = np.ones((H, W), bool)
    outside[roi[0]:roi[2], roi[1]:roi[3]] = False
    assert not labels[:, outside].any()
    session = model.open_stack(np.load(stack), roi=roi)
    saved = load_annotation(tmp_path / "all.json")
    assert saved.names[1] == "cell A" and len(saved.names) == len(ids)  # the replayed object keeps its name
    saved.replay(session)
    np.testing.assert_array_equal(session.labels(), labels)
    session.close()


def test_auto_seeds_finding_nothing_exits_1_with_one_line_and_writes_nothing(tmp_path, tiny_checkpoint, capsys):
    np.save(tmp_path / "s.npy", stack_data(2))
    out = tmp_path / "o.ome.tif"
    args = ["segment", str(tmp_path / "s.npy"), "--min-area", str(H * W), *LOOSE_SEARCH, "-o", str(out),
            "--track-table", str(tmp_path / "t.csv"), "--save-prompts", str(tmp_path / "p.json"), "--model",
            str(tiny_checkpoint), "--device", "cpu", "--dtype", "float32", "-q"]  # --min-area implies --auto-seeds
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("napari-sam2: error: No objects were found on frame 0"), err
    assert f"smaller --min-area (now {H * W})" in err and "more --points-per-side (now 4)" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.npy"]


@pytest.mark.parametrize(
    "extra, code, match",
    [
        (["--find-option", "pred_iou=0.5"], 2, "--find-option takes NAME=VALUE with NAME one of points_per_side"),
        (["--find-option", "use_m2m=maybe"], 2, "--find-option use_m2m takes true or false"),
        (["--find-option", "pred_iou_thresh=2"], 1, "pred_iou_thresh must be a number in \\[0.0, 1.0\\]"),
        (["--points-per-side", "8", "--find-option", "points_per_side=4"], 1, "points_per_side was given twice"),
        (["--auto-seeds", "--seed-frame", "9"], 1, "--seed-frame 9 is outside the stack's 2 frames"),
    ],
)
def test_bad_search_options_are_refused_before_any_work(tmp_path, tiny_checkpoint, capsys, extra, code, match):
    import re

    np.save(tmp_path / "s.npy", stack_data(2))
    args = ["segment", str(tmp_path / "s.npy"), *extra, "-o", str(tmp_path / "o.npy"), "--model",
            str(tiny_checkpoint), "--device", "cpu", "-q"]
    if code == 2:
        with pytest.raises(SystemExit) as exc:
            main(args)
        assert exc.value.code == 2
    else:
        assert main(args) == 1
    err = capsys.readouterr().err
    assert re.search(match, err), err
    assert not (tmp_path / "o.npy").exists()
