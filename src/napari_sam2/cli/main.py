"""``napari-sam2``: segment stacks from a prompt file, run batches, download models, show the setup.

    napari-sam2 segment STACK [--prompts FILE] [--seeds LABELS] [--seed-frame N] -o OUT [--axis t|z|N]
                        [--auto-seeds [--min-area A] [--points-per-side K] [--find-option NAME=VALUE]]
                        [--plane AXIS=INDEX] [--roi R0,C0,R1,C1] [--track-table CSV] [--ctc FOLDER]
                        [--trackmate XML] [--save-prompts JSON]
                        [--detect-divisions [--division-frames N] [--division-min-area A]]
                        [--model NAME|PATH] [--device DEV] [--dtype auto|float32|bfloat16|float16]
                        [--overwrite] [--quiet]
    napari-sam2 batch MANIFEST.csv -o OUTDIR [--scheduler ADDRESS] [--workers N] [--format .ome.tif]
                        [--auto-seeds [--seed-frame N] [--min-area A] [--points-per-side K] [--find-option ...]]
                        [--model ...] [--device ...] [--dtype ...]
    napari-sam2 download [NAME ...]
    napari-sam2 info
    napari-sam2 demo [--headless] [--model NAME|PATH]

Every failure the user can fix (a :class:`~napari_sam2.errors.NapariSam2Error`) prints one line,
``napari-sam2: error: <what is wrong and what to do>``, and exits with status 1 (2 for a wrong command
line, 130 when interrupted; set NAPARI_SAM2_DEBUG=1 for the traceback). Any other exception is a bug: its
traceback is printed, then a line asking to report it, and the status is 1. See docs/cli.md.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import MissingExtraError, NapariSam2Error, OutputError, plural
from .options import SegmentOptions

if TYPE_CHECKING:
    from ..engine.automatic import FindOptions
    from ..engine.tracking.divisions import DivisionRule

#: Errors that are the user's to fix: one line, no traceback. Anything else is a bug (traceback, "please report").
USER_ERRORS = (NapariSam2Error,)
PROG = "napari-sam2"
#: Commands that need more than the core install: command -> (what, the modules it imports, the pip extra).
EXTRAS = {"batch": ("dask.distributed", ("distributed",), "batch"),
          "demo": ("napari with a Qt binding", ("napari", "qtpy"), "napari,qt")}


def _require_extra(command: str) -> None:
    """Raise MissingExtraError, naming the pip extra to install, when ``command`` cannot import what it needs."""
    what, modules, extra = EXTRAS[command]
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:  # not installed, or (qtpy) installed without a Qt binding
            raise MissingExtraError(f"'{PROG} {command}' needs {what}, which is not installed here ({exc}); "
                                    f"install it with: pip install 'napari-sam2[{extra}]'") from exc


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


def _count(option: str, least: int) -> Callable[[str], int]:
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
    from .manifest import check_format  # not .batch: reading the command line needs no dask

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


def _find_option(text: str) -> tuple[str, Any]:
    """``NAME=VALUE`` of ``--find-option``: NAME a :class:`~napari_sam2.engine.automatic.FindOptions` field, VALUE
    parsed as that field's type (a whole number, a number, or true/false)."""
    from dataclasses import fields

    from ..engine.automatic import FindOptions

    defaults: dict[str, Any] = {f.name: f.default for f in fields(FindOptions) if f.name != "point_grids"}
    name, sep, value = text.partition("=")
    name = name.strip().replace("-", "_")
    if not sep or name not in defaults:
        raise argparse.ArgumentTypeError(f"--find-option takes NAME=VALUE with NAME one of {', '.join(defaults)}; "
                                         f"got {text!r}")
    kind = type(defaults[name])
    word = value.strip().lower()
    try:
        if kind is bool:
            if word not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(word)
            return name, word in ("true", "1", "yes")
        return name, int(word) if kind is int else float(word)
    except ValueError:
        what = "true or false" if kind is bool else "a whole number" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"--find-option {name} takes {what}; got {value!r}") from None


def _auto_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--auto-seeds", action="store_true",
                   help="find every object on the seed frame with SAM 2's automatic mask generator (after the "
                        "prompt file's replay; fresh ids; inside --roi if given) and track them")
    p.add_argument("--min-area", type=_count("--min-area", 0), default=None, metavar="A",
                   help="drop objects found with fewer than A pixels (default 0; implies --auto-seeds)")
    p.add_argument("--points-per-side", type=_count("--points-per-side", 1), default=None, metavar="K",
                   help="search with a K x K grid of clicks (default 32; more finds smaller cells; implies "
                        "--auto-seeds)")
    p.add_argument("--find-option", type=_find_option, action="append", default=[], metavar="NAME=VALUE",
                   help="any other setting of the search by its name in SAM 2's automatic mask generator, e.g. "
                        "pred_iou_thresh=0.7 or stability_score_thresh=0.9 (repeatable; implies --auto-seeds)")


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
                     help="the frame the seed labels belong to, and that --auto-seeds searches (default 0)")
    _auto_options(seg)
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
    seg.add_argument("--trackmate", type=Path, default=None, metavar="XML",
                     help="also write the tracks as a TrackMate XML file for Fiji (spots, links, divisions)")
    seg.add_argument("--save-prompts", type=Path, default=None, metavar="JSON",
                     help="also write the prompt file of this run (replayed prompts, seeds, objects found, "
                          "propagation): --prompts replays it, the widget's Load prompts... opens it for review")
    seg.add_argument("--detect-divisions", action="store_true",
                     help="divide an object where its mask splits into two parts that stay apart (daughters "
                          "tracked on; see docs/tracking.md)")
    seg.add_argument("--division-frames", type=_count("--division-frames", 1), default=None, metavar="N",
                     help="both parts must last N frames, the split frame included (default 3; implies "
                          "--detect-divisions)")
    seg.add_argument("--division-min-area", type=_count("--division-min-area", 1), default=None, metavar="A",
                     help="parts smaller than A pixels are fragments and ignored (default 20; implies "
                          "--detect-divisions)")
    seg.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    seg.add_argument("--quiet", "-q", action="store_true", help="no progress bar")

    bat = sub.add_parser("batch", help="segment many stacks on dask.distributed",
                         description="Segment every row (stack,prompts) of a CSV manifest on a dask.distributed "
                                     "cluster; OUTDIR/status.csv records each result.")
    bat.add_argument("manifest", type=Path, help="CSV with columns stack,prompts (paths relative to it; with "
                                                 "--auto-seeds the prompts may be left out)")
    bat.add_argument("--output", "-o", type=Path, required=True, help="output folder")
    bat.add_argument("--scheduler", default=None, help="address of a running scheduler (default: a local "
                                                       "cluster)")
    bat.add_argument("--workers", type=_count("--workers", 1), default=2,
                     help="worker processes of the local cluster (default 2)")
    bat.add_argument("--format", type=_format, default=".ome.tif", dest="fmt",
                     help="output extension (default .ome.tif)")
    bat.add_argument("--seed-frame", type=_count("--seed-frame", 0), default=0,
                     help="the frame --auto-seeds searches in every stack (default 0)")
    _auto_options(bat)
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


def _options(a: argparse.Namespace) -> SegmentOptions:
    """The :class:`SegmentOptions` of a parsed ``segment`` or ``batch`` command line (batch has only the model
    options; the others keep their defaults)."""
    return SegmentOptions(model=a.model, device=a.device, dtype=a.dtype, axis=getattr(a, "axis", None),
                          planes=dict(getattr(a, "plane", [])), roi=getattr(a, "roi", None),
                          seed_frame=getattr(a, "seed_frame", 0), overwrite=getattr(a, "overwrite", False),
                          detect_divisions=_division_rule(a), auto_seeds=_find_options(a),
                          min_area=getattr(a, "min_area", None) or 0)


def _find_options(a: argparse.Namespace) -> FindOptions | None:
    """The search of ``--auto-seeds`` / ``--points-per-side`` / ``--find-option`` / ``--min-area`` (None: not
    asked); PromptError for a value out of range or points_per_side given twice."""
    changes = dict(getattr(a, "find_option", []))
    points = getattr(a, "points_per_side", None)
    if not getattr(a, "auto_seeds", False) and not changes and points is None and getattr(a, "min_area", None) is None:
        return None
    from ..engine.automatic import FindOptions
    from ..errors import PromptError

    if points is not None:
        if changes.get("points_per_side", points) != points:
            raise PromptError("points_per_side was given twice (--points-per-side and --find-option); give it once.")
        changes["points_per_side"] = points
    return FindOptions().replace(**changes)


def _division_rule(a: argparse.Namespace) -> DivisionRule | None:
    """The rule of ``--detect-divisions`` / ``--division-frames`` / ``--division-min-area`` (None: not asked)."""
    frames, area = getattr(a, "division_frames", None), getattr(a, "division_min_area", None)
    if not getattr(a, "detect_divisions", False) and frames is None and area is None:
        return None
    from ..engine.tracking.divisions import DivisionRule

    default = DivisionRule()
    return DivisionRule(default.frames if frames is None else frames, default.min_area if area is None else area)


def _segment(a: argparse.Namespace) -> int:
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
        result = segment_file(a.stack, a.prompts, a.output, _options(a), seeds=a.seeds, track_table=a.track_table,
                              ctc=a.ctc, trackmate=a.trackmate, save_prompts=a.save_prompts, on_frame=on_frame)
    finally:
        if bar is not None:
            bar.close()
    extra = " (no propagation was recorded: propagated through the whole stack)" if result.propagated_extra else ""
    if result.found:
        extra = f" ({plural(result.found, 'object')} found on frame {a.seed_frame}, tracked through the stack)"
    print(f"{result.output}: {plural(result.frames, 'frame')} in {result.seconds:.1f} s{extra}", file=sys.stderr)
    return 0


def _batch(a: argparse.Namespace) -> int:
    _require_extra("batch")
    from .batch import run_batch

    summary = run_batch(a.manifest, a.output, _options(a), scheduler=a.scheduler, workers=a.workers, fmt=a.fmt,
                        echo=lambda s: print(s, file=sys.stderr))
    print(f"{summary.done} done, {summary.failed} failed, {summary.skipped} skipped; see {summary.status_path}",
          file=sys.stderr)
    return 1 if summary.failed else 0


def _download(a: argparse.Namespace) -> int:
    from ..weights import CHECKPOINTS, fetch_checkpoint

    names = list(CHECKPOINTS) if a.names == ["all"] else a.names
    for name in names:
        print(fetch_checkpoint(name))
    return 0


def _info(a: argparse.Namespace) -> int:
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


def _demo(a: argparse.Namespace) -> int:
    if not a.headless:
        _require_extra("demo")
    from .. import demo

    return demo.main(["--model", a.model, *(["--headless"] if a.headless else [])])


COMMANDS = {"segment": _segment, "batch": _batch, "download": _download, "info": _info, "demo": _demo}


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    A :data:`USER_ERRORS` exception prints one line ``napari-sam2: error: ...``; any other exception (a bug)
    prints its traceback and a line asking to report it. Both return 1; with ``NAPARI_SAM2_DEBUG`` set, both
    are re-raised instead. A wrong command line exits 2 (argparse's ``SystemExit``), Ctrl-C returns 130.
    """
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
    except Exception:
        if os.environ.get("NAPARI_SAM2_DEBUG"):
            raise
        traceback.print_exc(file=sys.stderr)
        print(f"{PROG}: internal error: this is a bug in napari-sam2, not a problem with your input; please "
              f"report it with the traceback above and the command you ran.", file=sys.stderr)
        return 1
