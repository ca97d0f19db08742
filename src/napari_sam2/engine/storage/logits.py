"""Where tracking results live when they are not needed in memory.

Every (object, frame) result keeps its low-resolution logits exactly (float32),
because they decide the returned masks, re-encoded memories and corrections.
Only the frames near the current position stay in RAM; the rest go to a
file-backed array in a temporary folder (or ``workdir``), so resident memory
does not grow with the length of the stack.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np


class LogitStore:
    """Per-object (num_frames, side, side) float32 logits in sparse files.

    Only frames that were written take disk space. Reads and writes are
    ordinary file I/O (no memory map), so stored frames never count as this
    process's resident memory.
    """

    def __init__(self, num_frames: int, side: int, workdir: str | Path | None = None) -> None:
        self.num_frames, self.side = num_frames, side
        self._tmp = tempfile.TemporaryDirectory(prefix="napari-sam2-", dir=workdir)
        self.folder = Path(self._tmp.name)
        self._files: dict[int, Path] = {}
        self._frame_bytes = side * side * 4

    def _file(self, obj_id: int) -> Path:
        path = self._files.get(obj_id)
        if path is None:
            path = self.folder / f"logits-{obj_id}.f32"
            with open(path, "wb") as fh:
                fh.truncate(self.num_frames * self._frame_bytes)  # sparse: no disk until written
            self._files[obj_id] = path
        return path

    def put(self, obj_id: int, frame: int, logits: np.ndarray) -> None:
        with open(self._file(obj_id), "r+b") as fh:
            fh.seek(frame * self._frame_bytes)
            fh.write(np.ascontiguousarray(logits, dtype=np.float32).tobytes())

    def get(self, obj_id: int, frame: int) -> np.ndarray:
        count = self.side * self.side
        flat = np.fromfile(self._file(obj_id), np.float32, count=count, offset=frame * self._frame_bytes)
        return flat.reshape(self.side, self.side)

    def drop(self, obj_id: int) -> None:
        path = self._files.pop(obj_id, None)
        if path is not None:
            path.unlink(missing_ok=True)

    def clear(self) -> None:
        for obj_id in list(self._files):
            self.drop(obj_id)

    def close(self) -> None:
        self._files.clear()
        self._tmp.cleanup()
