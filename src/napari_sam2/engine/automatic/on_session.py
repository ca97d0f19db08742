"""The automatic search on one frame of a tracking session.

Crops are embedded with the session's own preprocessing (the whole frame's embedding comes from the
session's store), results are placed in frame coordinates (a session with a ``roi`` sees only that
region), and objects that are already there are left out. ``TrackingSession.iter_find_labels`` checks
the arguments and hands the search over to :func:`search_frame`.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING

import numpy as np

from .labels import objects_to_labels
from .options import FindOptions
from .search import iter_find

if TYPE_CHECKING:
    from ...model.sam2 import ImageEmbedding
    from ..tracking.session import TrackingSession


def search_frame(session: TrackingSession, frame: int, options: FindOptions, region: tuple[int, int, int, int] | None,
                 min_area: int) -> Generator[tuple[int, int], None, np.ndarray]:
    """Yields ``(clicks done, clicks in all)``; returns the (H, W) int64 label image of the objects found on
    ``frame`` (1, 2, ... best first, 0 elsewhere), in frame coordinates. ``region``: in the coordinates the
    model sees (the session's roi, if any), already checked."""
    net = session.net
    hw = session.source.frame_hw  # what the model sees: the roi, if any
    dr, dc = (0, 0) if session.roi is None else session.roi[:2]

    def embed(crop: tuple[int, int, int, int]) -> ImageEmbedding:
        if crop == (0, 0, *hw):
            return session.embedding(frame)
        return net.encode_image(session.source.model_input(frame, net.cfg.image_size, net.device,
                                                           net.compute_dtype, crop=crop))

    found = yield from iter_find(net, hw, embed, options, region)
    labels, _kept = objects_to_labels(found, hw, min_area)
    full = np.zeros(session.frame_shape, np.int64)
    full[dr:dr + hw[0], dc:dc + hw[1]] = labels
    return not_found_before(session, frame, full)


def not_found_before(session: TrackingSession, frame: int, labels: np.ndarray) -> np.ndarray:
    """``labels`` (found objects, 1..n best first) without those that are already objects: an object found
    with at least half of its pixels in existing objects' masks on ``frame`` is dropped (so searching a
    frame twice, or after seeding it, adds only what is new); the rest are numbered 1, 2, ... again."""
    n = int(labels.max())
    if n == 0 or not session.object_ids:
        return labels
    taken = session.frame_labels(frame) > 0
    area = np.bincount(labels.ravel(), minlength=n + 1)
    covered = np.bincount(labels[taken].ravel(), minlength=n + 1)
    keep = [k for k in range(1, n + 1) if area[k] and covered[k] * 2 < area[k]]
    lookup = np.zeros(n + 1, np.int64)
    lookup[keep] = np.arange(1, len(keep) + 1)
    return lookup[labels]
