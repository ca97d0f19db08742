"""``napari-sam2``: segment stacks from a prompt file, run batches, download models, show the setup.

    napari-sam2 segment STACK [--prompts FILE] [--seeds LABELS --seed-frame N] -o OUT [--axis t|z|N]
                        [--plane AXIS=INDEX] [--roi R0,C0,R1,C1] [--track-table CSV] [--ctc FOLDER]
                        [--model NAME|PATH] [--device DEV] [--dtype auto|float32|bfloat16|float16]
                        [--overwrite] [--quiet]
    napari-sam2 batch MANIFEST.csv -o OUTDIR [--scheduler ADDRESS] [--workers N] [--format .ome.tif]
                        [--model ...] [--device ...] [--dtype ...]
    napari-sam2 download [NAME ...]
    napari-sam2 info
    napari-sam2 demo [--headless] [--model NAME|PATH]

Every failure prints one line, ``napari-sam2: error: <what is wrong and what to do>``, and exits
with status 1 (2 for a wrong command line, 130 when interrupted; set NAPARI_SAM2_DEBUG=1 for the
traceback). See docs/cli.md.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from ..errors import CheckpointError, ImageDataError, OutputError, PromptError, SessionClosedError, plural

#: Errors that are the user's to fix: one line, no traceback.
USER_ERRORS = (CheckpointError, ImageDataError, OutputError, PromptError, SessionClosedError, OSError, ValueError)
PROG = "napari-sam2"


def _plane(text: str) -> tuple[int, int]:
    try:
        axis, index = text.split("=")
        return int(axis), int(index)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--plane takes AXIS=INDEX (two integers, e.g. 1=12); got {text!r}") \
            from None


def _roi(text: str) -> tuple[int, int, int, int]:
    try:
        r0, c0, r1, c1 = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--roi takes ROW0,COL0,ROW1,COL1 (four integers); got {text!r}") from None
    if min(r0, c0) < 0 or r1 <= r0 or c1 <= c0:
        raise argparse.ArgumentTypeError(f"--roi takes ROW0,COL0,ROW1,COL1 with 0 <= ROW0 < ROW1 and 0 <= COL0 < COL1 "
                                         f"(the top-left and bottom-right corners); got {text!r}")
    return r0, c0, r1, c1


def _axis(text: str) -> str:
    word = text.strip().lower()
    if word in ("t", "z") or word.lstrip("-").isdigit():
        return word
    raise argparse.ArgumentTypeError(f"--axis takes t, z or an axis number (e.g. 0); got {text!r}")


def _count(option: str, least: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = least - 1
        if value < least:
            raise argparse.ArgumentTypeError(f"{option} takes a whole number >= {least}; got {text!r}")
        return value
    return parse


def _device(text: str) -> str:
    if re.fullmatch(r"cpu|mps|cuda(:\d+)?", text.strip().lower()):
        return text.strip().lower()
    raise argparse.ArgumentTypeError(f"--device takes cpu, cuda, cuda:N or mps; got {text!r}")


def _format(text: str) -> str:
    from ..errors import OutputError
    from .batch import check_format

    try:
        return check_format(text)
    except OutputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _output(text: str) -> Path:
    from ..engine.io.label_files import label_format

    try:
        label_format(text)
    except OutputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return Path(text)


def _model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="sam2.1_hiera_tiny",
                   help="checkpoint name (downloaded once) or .pt file (default: sam2.1_hiera_tiny)")
    p.add_argument("--device", type=_device, default=None,
                   help="cpu, cuda, cuda:1 or mps (default: the best available)")
    p.add_argument("--dtype", default=None, choices=("auto", "float32", "bfloat16", "float16"),
                   help="precision (default auto: bfloat16 where the hardware computes it fast). Replaying a "
                        "prompt file gives identical labels with the model, device and precision it was saved with")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="SAM 2 for microscopy stacks, without the viewer.",
                                     epilog="See docs/cli.md and docs/batch.md.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    seg = sub.add_parser("segment", help="replay a prompt file (or track seed labels) on a stack, write labels",
                         description="Replay a prompt file (saved from the widget or session.save_prompts) on "
                                     "a stack, and/or track the objects of a seed label image, and write the "
                                     "label image.")
    seg.add_argument("stack", type=Path, help="TIFF / OME-TIFF, zarr / OME-Zarr (level 0) or .npy")
    seg.add_argument("--prompts", "-p", type=Path, default=None, help="the prompt file (JSON)")
    seg.add_argument("--seeds", type=Path, default=None, help="a label image (e.g. Cellpose output): every label "
                                                               "becomes an object, prompted with its mask")
    seg.add_argument("--seed-frame", type=_count("--seed-frame", 0), default=0,
                     help="the frame the seed labels belong to (default 0)")
    seg.add_argument("--output", "-o", type=_output, required=True,
                     help="labels: .ome.tif, .ome.zarr, .zarr, .tif or .npy (by extension)")
    seg.add_argument("--axis", type=_axis, default=None, metavar="t|z|N",
                     help="frame axis: t, z or a number (default: as the prompt file was saved, else T then Z "
                          "from the file's axes)")
    seg.add_argument("--plane", type=_plane, action="append", default=[], metavar="AXIS=INDEX",
                     help="hold an extra axis of a 4-D/5-D stack at INDEX (repeatable)")
    _model_options(seg)
    seg.add_argument("--roi", type=_roi, default=None, metavar="R0,C0,R1,C1",
                     help="track only in this region of the frames, at the model's full resolution (small objects "
                          "in large frames; default: the region the prompt file was saved with)")
    seg.add_argument("--track-table", type=Path, default=None, metavar="CSV",
                     help="also write presence, IoU, area and centroid of every object on every frame")
    seg.add_argument("--ctc", type=Path, default=None, metavar="FOLDER",
                     help="also write the tracks in the Cell Tracking Challenge format (masks + res_track.txt)")
    seg.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    seg.add_argument("--quiet", "-q", action="store_true", help="no progress bar")

    bat = sub.add_parser("batch", help="segment many stacks on dask.distributed",
                         description="Segment every row (stack,prompts) of a CSV manifest on a dask.distributed "
                                     "cluster; OUTDIR/status.csv records each result.")
    bat.add_argument("manifest", type=Path, help="CSV with columns stack,prompts (paths relative to it)")
    bat.add_argument("--output", "-o", type=Path, required=True, help="output folder")
    bat.add_argument("--scheduler", default=None, help="address of a running scheduler (default: a local "
                                                       "cluster)")
    bat.add_argument("--workers", type=_count("--workers", 1), default=2,
                     help="worker processes of the local cluster (default 2)")
    bat.add_argument("--format", type=_format, default=".ome.tif", dest="fmt",
                     help="output extension (default .ome.tif)")
    _model_options(bat)

    dl = sub.add_parser("download", help="download official checkpoints into the cache folder")
    dl.add_argument("names", nargs="*", default=["sam2.1_hiera_tiny"], help="checkpoint names, or 'all'")
    sub.add_parser("info", help="versions, devices, cache folder, checkpoints present")
    demo = sub.add_parser("demo", help="napari on the sample time-lapse with the widget")
    demo.add_argument("--headless", action="store_true", help="segment one cell and print it, no window")
    demo.add_argument("--model", default="sam2.1_hiera_tiny", help="checkpoint name or .pt file")
    return parser


def _version() -> str:
    from .. import __version__

    return __version__


def _segment(a) -> int:
    from .segment import segment_file

    bar = None

    def on_frame(done: int, total: int) -> None:  # the bar starts with the first frame: after every check
        nonlocal bar
        if a.quiet:
            return
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(total=total, unit="frame", desc=a.stack.name, file=sys.stderr, leave=False)
        bar.total = total
        bar.update(done - bar.n)

    try:
        result = segment_file(a.stack, a.prompts, a.output, model=a.model, device=a.device, dtype=a.dtype,
                              axis=a.axis, planes=dict(a.plane), seeds=a.seeds, seed_frame=a.seed_frame,
                              track_table=a.track_table, ctc=a.ctc, roi=a.roi, overwrite=a.overwrite,
                              on_frame=on_frame)
    finally:
        if bar is not None:
            bar.close()
    extra = " (no propagation was recorded: propagated through the whole stack)" if result.propagated_extra else ""
    print(f"{result.output}: {plural(result.frames, 'frame')} in {result.seconds:.1f} s{extra}", file=sys.stderr)
    return 0


def _batch(a) -> int:
    from .batch import run_batch

    summary = run_batch(a.manifest, a.output, scheduler=a.scheduler, workers=a.workers, model=a.model,
                        device=a.device, dtype=a.dtype, fmt=a.fmt, echo=lambda s: print(s, file=sys.stderr))
    print(f"{summary.done} done, {summary.failed} failed, {summary.skipped} skipped; see {summary.status_path}",
          file=sys.stderr)
    return 1 if summary.failed else 0


def _download(a) -> int:
    from ..weights import CHECKPOINTS, fetch_checkpoint

    names = list(CHECKPOINTS) if a.names == ["all"] else a.names
    for name in names:
        print(fetch_checkpoint(name))
    return 0


def _info(a) -> int:
    import platform

    import torch

    from ..precision import auto_precision
    from ..weights import CHECKPOINTS, cache_dir

    print(f"napari-sam2 {_version()}  (Python {platform.python_version()}, {platform.system()} "
          f"{platform.machine()})")
    print(f"torch {torch.__version__}")
    devices = ["cpu", *(f"cuda:{i}" for i in range(torch.cuda.device_count()))]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    print("devices (automatic precision, and why):")
    for dev in devices:
        chosen = auto_precision(dev)
        print(f"  {dev}: {chosen.describe()} - {chosen.reason}")
    folder = cache_dir()
    print(f"checkpoint cache: {folder}")
    for name, ckpt in CHECKPOINTS.items():
        present = (folder / ckpt.filename).is_file()
        print(f"  {'present' if present else 'missing':<8} {name}")
    return 0


def _demo(a) -> int:
    from .. import demo

    return demo.main(["--model", a.model, *(["--headless"] if a.headless else [])])


COMMANDS = {"segment": _segment, "batch": _batch, "download": _download, "info": _info, "demo": _demo}


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; no incomplete output was left under its final name.", file=sys.stderr)
        return 130
    except USER_ERRORS as exc:
        if os.environ.get("NAPARI_SAM2_DEBUG"):
            raise
        text = " ".join(str(exc).split()) or type(exc).__name__
        print(f"{PROG}: error: {text}", file=sys.stderr)
        return 1
