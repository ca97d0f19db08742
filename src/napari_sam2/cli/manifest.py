"""A batch's manifest and the outputs it plans: which stacks, which prompt files, which output names.

A manifest is a CSV file whose header names (at least) the columns ``stack`` and ``prompts``; every
other line is one stack and the prompt file to replay on it (:func:`~napari_sam2.cli.segment.segment_file`).
Paths are relative to the manifest's folder unless absolute; blank lines and extra columns are ignored::

    stack,prompts,comment
    embryo1.ome.tif,prompts/embryo1.json,first
    /data/embryo2.zarr,prompts/embryo2.json,

A batch run with ``--auto-seeds`` finds the objects of every stack itself: its manifest may leave a row's
``prompts`` cell empty, or have no ``prompts`` column at all (a row with a prompt file replays it, then the
objects found are added)::

    stack,prompts
    embryo1.ome.tif,
    embryo2.ome.tif,prompts/embryo2.json

Every row writes ``OUTDIR/<stack name without its extension>.labels<fmt>`` (``embryo1.labels.ome.tif``).
Two rows whose outputs would have the same name are refused before anything runs.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..engine.io.label_files import LABEL_FORMATS
from ..engine.io.stack_files import STACK_FORMATS
from ..errors import ManifestError, OutputError

__all__ = ["MANIFEST_COLUMNS", "STACK_SUFFIXES", "ManifestError", "Row", "check_format", "make_outdir",
           "output_name", "plan_rows", "read_manifest"]

#: Columns a manifest must have (others are ignored).
MANIFEST_COLUMNS = ("stack", "prompts")
#: Stack extensions removed to name the output (matched case-insensitively, longest first).
STACK_SUFFIXES = STACK_FORMATS


@dataclass(frozen=True)
class Row:
    """One manifest row: ``line`` in the CSV file, absolute ``stack``/``prompts`` paths (``prompts`` None: none,
    a batch with ``--auto-seeds``) and the ``output``."""

    line: int
    stack: Path
    prompts: Path | None
    output: Path


def check_format(fmt: str) -> str:
    """``fmt`` as one of :data:`LABEL_FORMATS` (a leading dot may be left out), else OutputError."""
    text = str(fmt).strip().lower()
    if text and not text.startswith("."):
        text = "." + text
    if text not in LABEL_FORMATS:
        raise OutputError(f"Unknown output format {fmt!r}; choose one of {', '.join(LABEL_FORMATS)}.")
    return text


def output_name(stack: str | Path, fmt: str) -> str:
    """``<stack file name without its stack extension>.labels<fmt>``: ``a.ome.tif`` -> ``a.labels.ome.zarr``."""
    name = Path(stack).name
    lower = name.lower()
    for suffix in STACK_SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            break
    return f"{name}.labels{fmt}"


def read_manifest(path: str | Path, prompts_required: bool = True) -> list[tuple[int, Path, Path | None]]:
    """The ``(line, stack, prompts)`` rows of a manifest, paths made absolute against its folder.

    With ``prompts_required=False`` (a batch with ``--auto-seeds``) the ``prompts`` column and its cells may
    be left out (``prompts`` None). Raises ManifestError when the file is missing or unreadable, has no
    header, lacks a column, has an empty ``stack`` (or required ``prompts``) cell, or lists no stack.
    """
    path = Path(path)
    if not path.is_file():
        what = "is a folder, not a CSV file" if path.is_dir() else "does not exist"
        raise ManifestError(f"The manifest {path} {what}; give the path of a CSV file with the columns "
                            f"stack,prompts.")
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            lines = [(n, cells) for n, cells in _csv_lines(csv.reader(f)) if any(c.strip() for c in cells)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ManifestError(f"Cannot read the manifest {path} ({type(exc).__name__}: {exc}).") from exc
    if not lines:
        raise ManifestError(f"The manifest {path} is empty; its first line must name the columns stack,prompts "
                            f"and every further line one stack and its prompt file.")
    header = [c.strip().lower() for c in lines[0][1]]
    columns = MANIFEST_COLUMNS if prompts_required or "prompts" in header else ("stack",)
    missing = [c for c in columns if c not in header]
    if missing:
        raise ManifestError(f"The manifest {path} has no {' and no '.join(repr(c) for c in missing)} column "
                            f"(its header is {','.join(header)}); its first line must name the columns "
                            f"stack,prompts.")
    if len(lines) == 1:
        raise ManifestError(f"The manifest {path} lists no stack: it has a header but no rows.")
    where = {c: header.index(c) for c in columns}
    folder = path.parent
    rows: list[tuple[int, Path, Path | None]] = []
    for n, cells in lines[1:]:
        values = {c: cells[i].strip() if i < len(cells) else "" for c, i in where.items()}
        empty = [c for c, v in values.items() if not v and (c == "stack" or prompts_required)]
        if empty:
            hint = " (or run the batch with --auto-seeds to find the objects)" if empty == ["prompts"] else ""
            raise ManifestError(f"{path}, line {n}: the {' and '.join(empty)} cell is empty; give a path{hint}.")
        prompts = values.get("prompts", "")
        rows.append((n, _absolute(folder, values["stack"]), _absolute(folder, prompts) if prompts else None))
    return rows


def _csv_lines(reader: Any) -> Iterable[tuple[int, list[str]]]:
    """``(line number where the record starts, cells)`` for each record of a ``csv.reader``."""
    start = 1
    for cells in reader:
        yield start, cells
        start = reader.line_num + 1


def _absolute(folder: Path, text: str) -> Path:
    """``text`` (``~`` expanded) relative to ``folder`` unless absolute; normalised, links not resolved."""
    return Path(os.path.abspath(folder / Path(text).expanduser()))


def plan_rows(entries: list[tuple[int, Path, Path | None]], outdir: Path, fmt: str, manifest: str | Path) -> list[Row]:
    """One :class:`Row` per manifest entry; ManifestError if two rows would write the same output."""
    rows: list[Row] = []
    seen: dict[str, Row] = {}
    for line, stack, prompts in entries:
        row = Row(line, stack, prompts, outdir / output_name(stack, fmt))
        first = seen.setdefault(row.output.name.casefold(), row)
        if first is not row:
            raise ManifestError(
                f"{manifest}: lines {first.line} and {line} would both write {row.output.name} ({first.stack} and "
                f"{stack}); outputs are named after the stack, so rename one stack or run them into different "
                f"output folders."
            )
        rows.append(row)
    return rows


def make_outdir(outdir: str | Path) -> Path:
    """Create the output folder if needed (absolute path); OutputError if that is impossible."""
    outdir = Path(os.path.abspath(Path(outdir).expanduser()))
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"{outdir} is a file, not a folder; choose another output folder.") from None
    except OSError as exc:
        raise OutputError(f"Cannot create the output folder {outdir} ({exc.strerror or exc}).") from exc
    return outdir
