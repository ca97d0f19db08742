"""A batch's status ledger, ``OUTDIR/status.csv``: what finished, how, and which rows a rerun skips.

``status.csv`` (columns ``stack,prompts,output,status,seconds,message``) records the last finished attempt
of every row ever run into OUTDIR: ``status`` is ``done`` or ``failed``, ``message`` the one-line reason of a
failure (napari-sam2's own errors by their message, anything else as ``TypeName: message``), ``seconds`` the
task's wall time on its worker (the first task of a worker includes loading the model), ``output`` the file
name inside OUTDIR, ``stack`` and ``prompts`` absolute paths (``prompts`` empty for a row without one). It
is rewritten atomically (a temporary file, then ``os.replace``) every time a task finishes: the rows of the
manifest first, in manifest order, then the rows of earlier runs for stacks that are not in this manifest. A
row keeps its earlier line until its new attempt finishes.

**Reruns.** A row is skipped when status.csv says ``done`` for its output, with the same stack and prompt
paths, and the output exists (:func:`is_done`); every other row runs (again).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from ..engine.io.atomic import write_text
from ..errors import OutputError
from .manifest import Row

__all__ = ["STATUS_COLUMNS", "STATUS_FILE", "RowResult", "StatusBook", "is_done", "prompt_cell", "read_status"]

#: Columns of ``OUTDIR/status.csv``, in order.
STATUS_COLUMNS = ("stack", "prompts", "output", "status", "seconds", "message")
STATUS_FILE = "status.csv"


@dataclass(frozen=True)
class RowResult:
    """The outcome of one row's task in this run.

    ``worker_pid``, ``model_loads`` (the models that worker had loaded by the end of the task),
    ``torch_threads`` (torch's thread count in that worker) and ``device`` (the device that worker's model
    was asked for: ``"cuda:1"``, ``"cpu"``, or None for automatic) are None when the task produced no result
    (cancelled, or its worker died).
    """

    stack: Path
    prompts: Path | None
    output: Path
    status: str  # "done" | "failed"
    seconds: float | None
    message: str
    worker_pid: int | None = None
    model_loads: int | None = None
    torch_threads: int | None = None
    device: str | None = None

    def status_row(self) -> dict[str, str]:
        """This result as a status.csv line."""
        seconds = "" if self.seconds is None else f"{self.seconds:.1f}"
        return {"stack": str(self.stack), "prompts": prompt_cell(self.prompts), "output": self.output.name,
                "status": self.status, "seconds": seconds, "message": self.message}


class StatusBook:
    """The lines of ``OUTDIR/status.csv``, keyed by output file name, written back atomically.

    ``order`` (the output names of the manifest rows) comes first; lines of earlier runs for other outputs
    follow in the order they had.
    """

    def __init__(self, path: Path, order: list[str]) -> None:
        self.path = path
        self.order = order
        self.lines = read_status(path)

    def get(self, output: str) -> dict[str, str] | None:
        """The line for output file name ``output``, if any."""
        return self.lines.get(output)

    def record(self, result: RowResult) -> None:
        """Replace (or add) the line of ``result``'s output."""
        line = result.status_row()
        self.lines[line["output"]] = line

    def write(self) -> None:
        """Rewrite status.csv atomically (:func:`~napari_sam2.engine.io.atomic.write_text`)."""
        first = set(self.order)
        ordered = [self.lines[o] for o in self.order if o in self.lines]
        ordered += [line for o, line in self.lines.items() if o not in first]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=STATUS_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(ordered)
        write_text(self.path, buffer.getvalue())


def read_status(path: Path) -> dict[str, dict[str, str]]:
    """The lines of an existing status.csv by output name (empty if there is none); OutputError if the file is
    not one (so that a foreign file is never overwritten)."""
    if not path.exists():
        return {}
    try:
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in STATUS_COLUMNS if c not in (reader.fieldnames or [])]
            lines = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise OutputError(f"Cannot read {path} ({type(exc).__name__}: {exc}); move it away to start afresh.") \
            from exc
    if missing:
        raise OutputError(f"{path} is not a napari-sam2 batch status file (no column {', '.join(missing)}); move "
                          f"it away or choose another output folder.")
    return {line["output"]: {c: line.get(c) or "" for c in STATUS_COLUMNS} for line in lines if line.get("output")}


def is_done(row: Row, book: StatusBook) -> bool:
    """status.csv says ``done`` for this row's output, stack and prompts, and the output exists."""
    line = book.get(row.output.name)
    return (line is not None and line["status"] == "done" and line["stack"] == str(row.stack)
            and line["prompts"] == prompt_cell(row.prompts) and row.output.exists())


def prompt_cell(prompts: Path | None) -> str:
    """The ``prompts`` cell of status.csv: the absolute path, or empty for a row without a prompt file."""
    return "" if prompts is None else str(prompts)
