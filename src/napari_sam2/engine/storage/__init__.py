"""Where a session's data lives while it works: embeddings, logits and label images.

* :mod:`.embeddings` -- :class:`~.embeddings.EmbeddingStore`: frame embeddings, RAM -> spill -> persistent,
  composed of :mod:`.ram` (byte-budget LRU), :mod:`.spill` (exact copies in the session's temporary
  folder) and :mod:`.persistent` (an optional zarr store that outlives the session).
* :mod:`.logits` -- per-object logits of frames outside the memory window, on disk.
* :mod:`.labels` -- :class:`~.labels.LabelOutput`: the one label image (numpy, or zarr when large).
* :mod:`.zarr_format` -- the zarr format everything is written in.
"""
