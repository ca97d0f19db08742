"""An optional on-disk cache of frame embeddings (zarr), for stacks that are revisited.

Computing a frame's embedding is the slow part of SAM 2. With
``open_stack(..., embedding_store="movie.sam2.zarr")`` every embedding is
also written to a zarr group, and a later session on the same stack with the
same model reads it back instead of recomputing it. The group records what
it was made from (model, model frame, dtype, stack geometry, intensity
window); opening it for anything else is refused rather than silently mixed
or overwritten. The group's signature samples 16 frames; every stored
embedding also keeps a hash of its own frame's pixels, checked when it is read,
so a frame edited in place since (sampled or not) is encoded again, never
served its stale embedding.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ...errors import ImageDataError
from ...model.sam2 import ImageEmbedding, Sam2Model
from .zarr_format import ZARR_V2

if TYPE_CHECKING:
    from ..preprocess.frames import FrameSource

_PARTS = ("embed", "high_res_0", "high_res_1")
_HASH = "pixel_hash"  # (num_frames, 16) uint8: the pixel hash of each stored frame (zeros: none stored)
_HASH_BYTES = 16


def frame_hash(frame: np.ndarray) -> np.ndarray:
    """(16,) uint8 hash of one frame's pixels, shape and dtype (blake2b; far cheaper than encoding the frame)."""
    frame = np.ascontiguousarray(frame)
    h = hashlib.blake2b(digest_size=_HASH_BYTES)
    h.update(f"{frame.shape}{frame.dtype.str}".encode())
    h.update(frame.view(np.uint8).reshape(-1).data)
    return np.frombuffer(h.digest(), dtype=np.uint8)


class PersistentEmbeddingStore:
    """Frame embeddings of one stack in a zarr group at ``path``.

    ``source`` is the stack's :class:`~napari_sam2.engine.preprocess.frames.FrameSource`: each embedding is stored
    with the hash of the frame it was computed from (``source.read(frame)``) and read back only while
    that frame still has those pixels.
    """

    def __init__(self, path: str | Path, signature: dict, source: FrameSource) -> None:
        import zarr

        self.path = Path(path)
        self.signature = json.loads(json.dumps(signature))  # plain JSON types, comparable
        self.source = source
        self.num_frames = len(source)
        self._hashes: dict[int, np.ndarray] = {}  # frames hashed by get() and not yet put()
        # a store made by an earlier release keeps its format; a new one is format 2 like every output
        fmt = {} if (self.path / "zarr.json").exists() else ZARR_V2
        self._group = zarr.open_group(str(self.path), mode="a", **fmt)
        stored = self._group.attrs.get("napari_sam2_signature")
        if stored is None:
            self._group.attrs["napari_sam2_signature"] = self.signature
        elif stored != self.signature:
            differs = sorted(k for k in set(stored) | set(self.signature) if stored.get(k) != self.signature.get(k))
            raise ImageDataError(
                f"The embedding store {self.path} was made for a different stack or model (differs in: "
                f"{', '.join(differs)}). Use another folder, or delete it to start over."
            )
        self.reads = 0
        self.writes = 0
        #: Stored embeddings not used because their frame's pixels changed since they were stored.
        self.stale = 0

    def _arrays(self, emb: ImageEmbedding) -> None:
        n = self.num_frames
        if _HASH not in self._group:  # (a store from before per-frame hashes: its frames are encoded again)
            self._group.create(_HASH, shape=(n, _HASH_BYTES), chunks=(n, _HASH_BYTES), dtype="uint8", fill_value=0)
        if "done" in self._group:
            return
        for name, t in zip(_PARTS, (emb.embed, *emb.high_res)):
            shape = (n, *t.shape[1:])
            self._group.create(name, shape=shape, chunks=(1, *t.shape[1:]), dtype="float32", fill_value=0)
        self._group.create("done", shape=(n,), chunks=(n,), dtype="bool", fill_value=False)

    def get(
        self, frame: int, device: torch.device, dtype: torch.dtype, pos: torch.Tensor
    ) -> ImageEmbedding | None:
        """The stored embedding of ``frame`` or None; ``pos`` is the shared position grid."""
        if "done" not in self._group or not bool(self._group["done"][frame]):
            return None
        current = self._hashes[frame] = frame_hash(self.source.read(frame))
        if _HASH not in self._group or not np.array_equal(self._group[_HASH][frame], current):
            self.stale += 1
            return None
        del self._hashes[frame]
        parts = [torch.from_numpy(np.asarray(self._group[name][frame : frame + 1])).to(device, dtype)
                 for name in _PARTS]
        self.reads += 1
        return ImageEmbedding(parts[0], pos, (parts[1], parts[2]))

    def put(self, frame: int, emb: ImageEmbedding) -> None:
        """Store the embedding of ``frame`` (computed from its current pixels) with their hash."""
        self._arrays(emb)
        pixels = self._hashes.pop(frame, None)
        if pixels is None:
            pixels = frame_hash(self.source.read(frame))
        self._group["done"][frame] = False  # a crash between the writes leaves the frame unstored, not mixed
        for name, t in zip(_PARTS, (emb.embed, *emb.high_res)):
            self._group[name][frame : frame + 1] = t.detach().float().cpu().numpy()  # exact for fp32/bf16/fp16
        self._group[_HASH][frame] = pixels
        self._group["done"][frame] = True
        self.writes += 1


def stack_signature(source: FrameSource, net: Sam2Model) -> dict:
    """What the embeddings of a stack depend on: every weight of ``net``, the pixels of up to 16 evenly spaced
    frames, the model frame size and precision, and where the frames are (another checkpoint, another movie of
    the same shape or another region never matches)."""
    weights = hashlib.sha256()
    for name, t in sorted(net.state_dict().items()):
        weights.update(name.encode())
        weights.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    pixels = hashlib.sha256()
    picks = np.unique(np.linspace(0, source.num_frames - 1, min(16, source.num_frames)).astype(int))
    for i in picks:
        pixels.update(np.ascontiguousarray(source.read(int(i))).tobytes())
    win = source.window
    geo = source.geometry
    return {
        "model": net.cfg.name, "weights": weights.hexdigest()[:16], "pixels": pixels.hexdigest()[:16],
        "image_size": net.cfg.image_size,
        "dtype": str(net.compute_dtype), "stack_shape": list(source.stack.shape), "stack_dtype": str(source.dtype),
        "axis": geo.axis, "fixed": {str(k): v for k, v in geo.fixed.items()}, "channel_axis": geo.channel_axis,
        "roi": None if source.roi is None else list(source.roi),
        "window": None if win.low is None or win.high is None else [list(win.low), list(win.high)],
    }
