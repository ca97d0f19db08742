"""A session's frame embeddings, in three tiers: RAM, then spill, then the persistent store.

* RAM (:class:`~.ram.ByteBudgetLRU`): the most recently used embeddings within a byte budget,
  so the session's memory stays bounded whatever the stack length;
* spill (:class:`~.spill.EmbeddingSpill`): exact copies of what RAM evicted, in the session's
  temporary folder, read back in milliseconds instead of re-encoding (seconds);
* persistent (:class:`~.persistent.PersistentEmbeddingStore`, optional): a zarr store that
  outlives the session, keyed by the stack, the model and each frame's pixels.

:meth:`EmbeddingStore.get` looks in that order and brings a hit back into RAM;
:meth:`EmbeddingStore.add` takes a newly computed embedding into RAM and the persistent store.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ...model.sam2 import ImageEmbedding
from .persistent import PersistentEmbeddingStore
from .ram import ByteBudgetLRU
from .spill import EmbeddingSpill


class EmbeddingStore:
    """Frame index -> :class:`ImageEmbedding` of one stack, RAM -> spill -> persistent."""

    def __init__(self, ram_bytes: int, spill_folder: str | Path,
                 persistent: PersistentEmbeddingStore | None = None) -> None:
        self.spill = EmbeddingSpill(spill_folder)
        self.ram: ByteBudgetLRU[ImageEmbedding] = ByteBudgetLRU(ram_bytes, on_evict=self.spill.put)
        self.persistent = persistent

    def get(self, frame: int, device: torch.device, dtype: torch.dtype,
            position: torch.Tensor) -> ImageEmbedding | None:
        """The embedding of ``frame`` on ``device`` from the first tier that has it, or None.

        ``dtype`` is the model's compute dtype (the persistent store keeps float32) and ``position``
        the shared (1, C, G, G) position grid the embedding is given (tiers on disk do not store it).
        """
        emb = self.ram.get(frame)
        if emb is not None:
            return emb
        emb = self.spill.get(frame, device, position)
        if emb is None and self.persistent is not None:
            emb = self.persistent.get(frame, device, dtype, position)
        if emb is not None:
            self.ram.put(frame, emb)
        return emb

    def add(self, frame: int, emb: ImageEmbedding) -> None:
        """Keep the newly computed embedding of ``frame`` (RAM, and the persistent store if any)."""
        if self.persistent is not None:
            self.persistent.put(frame, emb)
        self.ram.put(frame, emb)

    def __contains__(self, frame: int) -> bool:
        """Whether ``frame`` is at hand without the persistent store's pixel check: in RAM or spilled."""
        return frame in self.ram or frame in self.spill

    def clear(self) -> None:
        """Drop the RAM tier (the spill folder goes with the session's temporary folder)."""
        self.ram.clear()
