"""The user-facing model object: a loaded SAM 2 plus its embedding cache."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from ..model.sam2 import ImageEmbedding, Sam2Model
from .automatic import FindOptions, FoundObject, find_objects, resolve_options
from .coords.geometry import StackGeometry
from .coords.transforms import image_to_tensor
from .predict import ImagePrediction, predict_from_embedding
from .preprocess.frames import FrameSource
from .preprocess.intensity import split_channels, to_rgb01
from .prompts import make_prompts
from .storage.ram import ByteBudgetLRU
from .tracking.session import DEFAULT_EMBEDDING_CACHE_BYTES, TrackingSession

DEFAULT_IMAGE_CACHE_BYTES = 512 * 2**20


def _fingerprint(image: np.ndarray, contrast_limits: tuple[float, ...] | None) -> tuple:
    digest = hashlib.blake2b(np.ascontiguousarray(image).view(np.uint8).reshape(-1).data, digest_size=16)
    return (image.shape, str(image.dtype), digest.hexdigest(), contrast_limits)


class Segmenter:
    """A SAM 2 / 2.1 model ready to segment images (and, later, stacks).

    Get one from :func:`napari_sam2.load_model`. ``variant`` names the
    checkpoint's architecture (e.g. ``"sam2.1_hiera_tiny"``).
    """

    def __init__(self, net: Sam2Model, image_cache_bytes: int = DEFAULT_IMAGE_CACHE_BYTES,
                 trained: bool = True, precision_reason: str = "") -> None:
        self.net = net
        #: Why the heavy parts run in the dtypes they do (see :mod:`napari_sam2.precision`).
        self.precision_reason = precision_reason
        #: False for a model with random (untrained) weights, e.g. the offline demo's stand-in:
        #: its masks show how the tool works but mean nothing.
        self.trained = trained
        self._image_cache: ByteBudgetLRU[ImageEmbedding] = ByteBudgetLRU(image_cache_bytes)

    @property
    def variant(self) -> str:
        return self.net.cfg.name

    @property
    def device(self) -> torch.device:
        return self.net.device

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the image encoder and its embeddings (memory attention: ``net.memory_dtype``)."""
        return self.net.compute_dtype

    @property
    def precision(self) -> str:
        """``"float32"`` (exact), or e.g. ``"bfloat16 (mixed)"``: heavy parts in 16 bits, heads in float32;
        ``"encoder bfloat16, memory float32 (mixed)"`` where the two heavy parts differ."""
        enc, mem = (str(d).removeprefix("torch.") for d in (self.dtype, self.net.memory_dtype))
        name = enc if enc == mem else f"encoder {enc}, memory {mem}"
        return name if self.dtype == self.net.memory_dtype == self.net.dtype else f"{name} (mixed)"

    def __repr__(self) -> str:
        return f"Segmenter(variant={self.variant!r}, device={str(self.device)!r}, precision={self.precision!r})"

    @torch.inference_mode()
    def embed_rgb(self, rgb01: np.ndarray) -> ImageEmbedding:
        """Encode one (H, W, 3) float RGB image in [0, 1] (no caching)."""
        x = image_to_tensor(rgb01, self.net.cfg.image_size, self.device, self.dtype)
        return self.net.encode_image(x)

    def embed_image(self, image: np.ndarray, contrast_limits: tuple[float, float] | None = None) -> ImageEmbedding:
        """The (cached) embedding of an image; see :meth:`predict_image` for formats."""
        image = np.asarray(image)
        key = _fingerprint(image, None if contrast_limits is None else tuple(map(float, contrast_limits)))
        emb = self._image_cache.get(key)
        if emb is None:
            emb = self.embed_rgb(to_rgb01(image, contrast_limits))
            self._image_cache.put(key, emb)
        return emb

    def predict_image(
        self,
        image: np.ndarray,
        points: npt.ArrayLike | None = None,
        labels: npt.ArrayLike | None = None,
        box: npt.ArrayLike | None = None,
        mask: npt.ArrayLike | None = None,
        multimask: bool = False,
        contrast_limits: tuple[float, float] | None = None,
    ) -> ImagePrediction:
        """Segment one object in one image.

        Args:
            image: (H, W) gray or (H, W, C) with 1-4 channels, any dtype
                (see :mod:`napari_sam2.engine.preprocess.intensity` for the conversion).
            points: (N, 2) (row, col) pixel positions.
            labels: (N,) 1 = positive, 0 = negative (default: all positive).
            box: (row0, col0, row1, col1).
            mask: (H, W) mask prompt: bool/0-1 mask, or float logits.
            multimask: return SAM's three candidate masks instead of one.
            contrast_limits: (low, high) intensity window for non-uint8 data.

        Returns:
            :class:`ImagePrediction` with ``masks`` (K, H, W) bool, ``scores``
            (K,), ``logits`` (K, H, W) float32; K = 3 with ``multimask``.

        The embedding is cached: new prompts on the same image only run the
        decoder.
        """
        image = np.asarray(image)
        split_channels(image)  # a bad shape is the error that explains, before any prompt check
        hw = image.shape[:2]
        prompts = make_prompts(hw, points, labels, box, mask)  # validate before the slow part
        emb = self.embed_image(image, contrast_limits)
        return predict_from_embedding(self.net, emb, hw, prompts, multimask)

    def find_objects(
        self,
        image: np.ndarray,
        options: FindOptions | None = None,
        *,
        contrast_limits: tuple[float, float] | None = None,
        region: tuple[int, int, int, int] | None = None,
        progress: Callable[[int, int], bool | None] | None = None,
        **changes: Any,
    ) -> list[FoundObject]:
        """Every object on one image, as Meta's ``SAM2AutomaticMaskGenerator`` finds them.

        Args:
            image: (H, W) gray or (H, W, C) with 1-4 channels, any dtype (as :meth:`predict_image`).
            options: :class:`~napari_sam2.engine.automatic.FindOptions` (default: Meta's defaults).
            contrast_limits: (low, high) intensity window for non-uint8 data.
            region: (row0, col0, row1, col1): search only there (results in the image's coordinates).
            progress: ``progress(done, total)`` after each batch of clicks; return False to stop
                (raises :class:`~napari_sam2.engine.automatic.FindCancelled`).
            **changes: single options instead of (or on top of) ``options``, e.g. ``points_per_side=16``.

        Returns:
            :class:`~napari_sam2.engine.automatic.FoundObject` list: ``mask`` (H, W) bool, ``score``
            (predicted IoU), ``stability``, ``bbox`` (row0, col0, row1, col1), ``area``, ``point``, ``crop``.
        """
        opts = resolve_options(options, changes)
        image = np.asarray(image)
        rgb01 = to_rgb01(image, contrast_limits)
        hw = (int(rgb01.shape[0]), int(rgb01.shape[1]))

        def embed(crop: tuple[int, int, int, int]) -> ImageEmbedding:
            if crop == (0, 0, *hw):
                return self.embed_image(image, contrast_limits)
            return self.embed_rgb(rgb01[crop[0]:crop[2], crop[1]:crop[3]])

        return find_objects(self.net, hw, embed, opts, region, progress)

    def open_stack(
        self,
        stack: Any,
        axis: int = 0,
        channel_axis: int | None = None,
        fixed: dict[int, int] | None = None,
        contrast_limits: tuple[float, float] | None = None,
        cache_bytes: int = DEFAULT_EMBEDDING_CACHE_BYTES,
        workdir: str | Path | None = None,
        embedding_store: str | Path | None = None,
        geometry: StackGeometry | None = None,
        roi: tuple[int, int, int, int] | None = None,
    ) -> TrackingSession:
        """Start tracking objects through ``stack`` along ``axis``.

        Args:
            stack: numpy, dask, zarr, h5py or memory-mapped array; frames are
                read lazily, one at a time.
            axis: the frame axis (t or z).
            channel_axis: axis with 1-4 channels, if any (a trailing axis of
                length <= 4 of a 4-D array is taken as channels by default).
            fixed: ``{axis: index}`` to hold extra axes still, e.g. ``{1: 12}``
                tracks along t within z-slice 12 of (T, Z, Y, X) data.
            contrast_limits: (low, high) intensity window for non-uint8 data;
                by default robust percentiles sampled once for the whole stack.
            cache_bytes: budget of the in-memory frame-embedding cache.
            workdir: folder for the session's temporary files (default: system temp).
            embedding_store: optional zarr folder that keeps every frame embedding
                on disk, so a later session on the same stack skips the encoder.
            geometry: a resolved :class:`~napari_sam2.engine.coords.geometry.StackGeometry` instead of
                ``axis``, ``channel_axis`` and ``fixed`` (the widget passes the one it shows).
            roi: (row0, col0, row1, col1): track in this region only, at the model's full resolution
                (small objects in large frames); prompts and results stay in full-frame coordinates.

        Returns:
            A :class:`~napari_sam2.engine.tracking.session.TrackingSession`.
        """
        source = FrameSource(stack, axis=axis, channel_axis=channel_axis, fixed=fixed,
                             contrast_limits=contrast_limits, geometry=geometry, roi=roi)
        return TrackingSession(self, source, cache_bytes=cache_bytes, workdir=workdir,
                               embedding_store=embedding_store)

