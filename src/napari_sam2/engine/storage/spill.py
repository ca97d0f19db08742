"""Frame embeddings pushed out of RAM, kept in a session's temporary folder.

Encoding a 1024² frame takes seconds on a CPU; reading its embedding back
from a local disk (8 MB in bfloat16, 16 MB in float32) takes milliseconds.
So the in-RAM embedding cache can stay small (its byte budget bounds the
session's memory) while re-propagating after a correction still never runs
the image encoder twice for a frame. Files are written with ordinary file
writes (not memory maps), so they do not count as this process's resident
memory, and they are deleted with the session.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ...model.sam2 import ImageEmbedding


def _raw(t: torch.Tensor) -> bytes:
    """The bytes of a tensor (any dtype, bfloat16 included), C order, on the CPU."""
    return t.detach().to("cpu").contiguous().view(torch.uint8).numpy().tobytes()


class EmbeddingSpill:
    """Exact copies of evicted :class:`ImageEmbedding` s, one file per frame under ``folder``."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._layout: dict[int, list[tuple[tuple[int, ...], torch.dtype]]] = {}
        self.reads = 0
        self.writes = 0

    def _path(self, frame: int) -> Path:
        return self.folder / f"embedding-{frame}.bin"

    def __contains__(self, frame: int) -> bool:
        return frame in self._layout

    def put(self, frame: int, emb: ImageEmbedding) -> None:
        """Store ``emb`` unless this frame is stored already (an embedding never changes)."""
        if frame in self._layout:
            return
        parts = (emb.embed, *emb.high_res)
        with open(self._path(frame), "wb") as fh:
            for t in parts:
                fh.write(_raw(t))
        self._layout[frame] = [(tuple(t.shape), t.dtype) for t in parts]
        self.writes += 1

    def get(self, frame: int, device: torch.device, pos: torch.Tensor) -> ImageEmbedding | None:
        """The stored embedding of ``frame`` on ``device`` (``pos``: the shared position grid), or None."""
        layout = self._layout.get(frame)
        if layout is None:
            return None
        raw = np.fromfile(self._path(frame), dtype=np.uint8)
        parts, offset = [], 0
        for shape, dtype in layout:
            n = int(np.prod(shape)) * torch.empty((), dtype=dtype).element_size()
            t = torch.from_numpy(raw[offset:offset + n].copy()).view(dtype).reshape(shape)
            parts.append(t.to(device))
            offset += n
        self.reads += 1
        return ImageEmbedding(parts[0], pos, (parts[1], parts[2]))

    def clear(self) -> None:
        for frame in list(self._layout):
            self._path(frame).unlink(missing_ok=True)
        self._layout.clear()
