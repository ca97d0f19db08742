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

#: Label images larger than this are file-backed (numpy.memmap) instead of in RAM.
LABELS_IN_MEMORY_BYTES = 256 * 2**20


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
        self._labels_made = 0

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

    def labels(self, shape: tuple[int, int, int], dtype, frames: dict[int, callable]) -> np.ndarray:
        """A (T, H, W) label array filled by ``frames[t]()`` for the frames that have labels.

        Small arrays live in RAM. Large ones are written frame by frame to a
        sparse file with ordinary file writes and returned as a memmap, so
        writing them does not map the whole array into this process (its
        resident memory stays bounded); pages are mapped only when read.
        """
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        if nbytes <= LABELS_IN_MEMORY_BYTES:
            out = np.zeros(shape, dtype)
            for t, make in frames.items():
                out[t] = make()
            return out
        self._labels_made += 1
        path = self.folder / f"labels-{self._labels_made}.bin"  # a new file: earlier results stay as they were
        frame_bytes = nbytes // shape[0]
        with open(path, "wb") as fh:
            fh.truncate(nbytes)  # sparse: unwritten frames read as zeros and take no disk
            for t, make in sorted(frames.items()):
                fh.seek(t * frame_bytes)
                fh.write(np.ascontiguousarray(make(), dtype=dtype).tobytes())
        return np.memmap(path, dtype=dtype, mode="r+", shape=shape)

    def close(self) -> None:
        self._files.clear()
        self._tmp.cleanup()
