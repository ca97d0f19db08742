"""Per-(object, frame) numbers of a tracking session, and where the tracker is unsure.

``session.track_table()`` gives one row per object and frame: presence score,
predicted IoU, area and centroid. :func:`doubtful_frames` finds the frames a
user should look at first: where an object vanished, where its area jumped,
where the model's confidence dropped. :func:`write_track_table` writes the
rows as CSV.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io.atomic import write_text

COLUMNS = ("frame", "obj_id", "present_score", "present_logit", "iou", "area", "centroid_row", "centroid_col",
           "prompted", "divided_from")


def mask_stats(mask: np.ndarray) -> tuple[int, float, float]:
    """(area in pixels, centroid row, centroid col) of an (H, W) bool mask; NaN centroid when empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return 0, math.nan, math.nan
    area = int(np.count_nonzero(mask))
    r = float((np.count_nonzero(mask, axis=1) * np.arange(mask.shape[0])).sum() / area)
    c = float((np.count_nonzero(mask, axis=0) * np.arange(mask.shape[1])).sum() / area)
    return area, r, c


def write_track_table(path: str | Path, rows: Iterable[dict]) -> Path:
    """Write track-table rows as CSV (the columns of :data:`COLUMNS`), atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path = write_text(path, buffer.getvalue())
    return path


@dataclass(frozen=True)
class Doubt:
    """A frame worth checking: ``reason`` is ``"vanished"``, ``"area jump"``, ``"low confidence"`` or
    ``"automatic division"``."""

    frame: int
    obj_id: int
    reason: str
    detail: str


def doubtful_frames(rows: Sequence[dict], area_jump: float = 0.5, min_present: float = 0.5,
                    min_iou: float = 0.5) -> list[Doubt]:
    """Frames where an object vanished (presence score falls below ``min_present`` after it was present),
    its area changed by more than ``area_jump`` (a fraction) from the previous frame, or its confidence
    (presence score x predicted IoU) dropped below ``min_iou`` while present. Prompted frames are the
    user's own word and never doubtful, except a daughter's first frame of an automatic division (a row with
    ``divided_from``): the division is the tracker's decision, to review. Sorted by frame, then object."""
    out: list[Doubt] = []
    by_obj: dict[int, list[dict]] = {}
    for row in rows:
        by_obj.setdefault(row["obj_id"], []).append(row)
    for oid, seq in by_obj.items():
        seq = sorted(seq, key=lambda r: r["frame"])
        for prev, row in zip([None, *seq[:-1]], seq):
            if row.get("divided_from") is not None:
                out.append(Doubt(row["frame"], oid, "automatic division",
                                 f"daughter of object {row['divided_from']} (undo: undo_division)"))
                continue
            if row["prompted"]:
                continue
            present = row["present_score"] >= min_present and row["area"] > 0
            was_present = prev is not None and prev["present_score"] >= min_present and prev["area"] > 0
            adjacent = prev is not None and abs(row["frame"] - prev["frame"]) == 1
            if was_present and adjacent and not present:
                out.append(Doubt(row["frame"], oid, "vanished", f"presence {row['present_score']:.2f}"))
            elif present and was_present and adjacent and prev is not None and prev["area"] > 0:
                change = row["area"] / prev["area"] - 1
                if abs(change) > area_jump:
                    out.append(Doubt(row["frame"], oid, "area jump", f"area {prev['area']} -> {row['area']}"))
                    continue
            if present and row["iou"] is not None and row["present_score"] * row["iou"] < min_iou:
                out.append(Doubt(row["frame"], oid, "low confidence",
                                 f"presence {row['present_score']:.2f} x IoU {row['iou']:.2f}"))
    return sorted(out, key=lambda d: (d.frame, d.obj_id))
