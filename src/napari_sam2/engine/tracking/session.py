"""Tracking objects through a stack with SAM 2's memory (the video model).

The numbers follow Meta's ``SAM2VideoPredictor`` with
``add_all_frames_to_correct_as_cond=True`` (a correction becomes a
conditioning frame and survives every later propagation) and no hole
filling. Objects are tracked independently; only frame embeddings are
shared. See docs/engine.md.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Generator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import torch
from torch.nn import functional as F

from ...errors import LabelDtypeError, PromptError, SessionClosedError
from ...model import tracker
from ...model.sam2 import ImageEmbedding
from ...model.tracker import MASK_LOGIT
from ..automatic import FindCancelled, FindOptions, resolve_options
from ..automatic.on_session import search_frame
from ..coords.geometry import StackGeometry
from ..coords.region import check_roi, place_in_frame, prompts_in_region
from ..coords.transforms import upscale_logits
from ..preprocess.frames import FrameSource
from ..prompts import MAX_OBJ_ID, Prompts, label_prompts, make_prompts, seed_ids
from ..storage.embeddings import EmbeddingStore
from ..storage.labels import LabelOutput, label_dtype_for
from ..storage.logits import LogitStore
from ..storage.persistent import PersistentEmbeddingStore, stack_signature
from .divisions import (
    DEFAULT_MIN_AREA,
    Division,
    DivisionPlan,
    DivisionRule,
    DivisionWatch,
    MadeDivision,
    split_masks,
)
from .heap import release_free_memory
from .history import (
    DIRECTIONS,
    ClearPrompts,
    Divide,
    PropagationRun,
    Record,
    RemoveObject,
    SetMasks,
    SetParent,
    SetPrompts,
    UndoDivision,
    descendants,
)
from .lineage import Lineage
from .object_state import FrameOutput, ObjectTrack
from .track_table import mask_stats

if TYPE_CHECKING:
    from ..io.ctc import CtcSummary
    from ..segmenter import Segmenter


#: What :meth:`TrackingSession.propagate` yields: ``(frame, {obj_id: (H, W) bool mask})``.
FrameResults = Generator[tuple[int, dict[int, np.ndarray]], None, None]


def _rows(t: torch.Tensor | None, rows: slice) -> torch.Tensor | None:
    """A copy of ``rows`` of ``t`` (None stays None)."""
    return None if t is None else t[rows].clone()


#: In-RAM budget of a session's frame embeddings; older ones go to disk (engine/storage/spill.py).
#: 256 MiB holds 32 frames at 1024² in bfloat16 (8 MiB each), 16 in float32.
DEFAULT_EMBEDDING_CACHE_BYTES = 256 * 2**20


class TrackingSession:
    """Prompts, propagation and results for one stack (see ``Segmenter.open_stack``)."""

    def __init__(self, segmenter: Segmenter, source: FrameSource, cache_bytes: int = DEFAULT_EMBEDDING_CACHE_BYTES,
                 workdir: str | Path | None = None, embedding_store: str | Path | None = None) -> None:
        self.segmenter = segmenter
        self.net = segmenter.net
        self.source = source
        cfg = self.net.cfg
        self._side = 4 * cfg.feat_size
        self._store = LogitStore(len(source), self._side, workdir)
        persistent = None if embedding_store is None else PersistentEmbeddingStore(
            embedding_store, stack_signature(source, self.net), source)
        #: Frame embeddings: RAM within ``cache_bytes``, then spilled to the session's folder, then ``embedding_store``.
        self.embeddings = EmbeddingStore(cache_bytes, self._store.folder / "embeddings", persistent)
        self._objects: dict[int, ObjectTrack] = {}
        self._lineage = Lineage()  # divisions
        self._divided: dict[int, MadeDivision] = {}  # parent id -> a division made by divide()
        self._rejected: dict[int, set[int]] = {}  # object id -> split frames of undone divisions
        #: Every call that changed the results, in order (see :mod:`.history`): replaying it on a new
        #: session of the same stack and model gives the same results, bit for bit.
        self.history: list[Record] = []
        self._memory_pos: torch.Tensor | None = None
        self.frames_encoded = 0
        self._closed = False
        #: Track objects with equal memory layouts as one batch. On by default on GPUs; off on
        #: CPUs, where the batched attention kernels measured ~10% slower than one object at a time.
        self.batch_objects = self.net.device.type != "cpu"

    # ----------------------------------------------------------------- basics
    @property
    def num_frames(self) -> int:
        return len(self.source)

    @property
    def geometry(self) -> StackGeometry:
        """Where the frames of the stack are (axis, fixed planes, channel axis)."""
        return self.source.geometry

    @property
    def frame_shape(self) -> tuple[int, int]:
        """(rows, cols) of a frame: prompts and results are in these coordinates (also with a ``roi``)."""
        return self.geometry.frame_hw

    @property
    def roi(self) -> tuple[int, int, int, int] | None:
        """The region (row0, col0, row1, col1) the model sees, or None for the whole frame."""
        return self.source.roi

    def _in_roi(self, prompts: Prompts) -> Prompts:
        """``prompts`` (full-frame coordinates) as the model sees them (in the region, if any)."""
        return prompts if self.roi is None else prompts_in_region(prompts, self.roi)

    @property
    def object_ids(self) -> list[int]:
        return list(self._objects)

    def _check_open(self) -> None:
        if self._closed:
            raise SessionClosedError("This tracking session is closed (its temporary files are gone); open a new "
                                     "one on the stack to go on.")

    def _check_frame(self, frame: object) -> int:
        self._check_open()
        if isinstance(frame, (bool, np.bool_)) or not isinstance(frame, (int, np.integer)):
            raise PromptError(f"frame must be an integer index; got {frame!r}.")
        if not 0 <= frame < self.num_frames:
            raise PromptError(f"frame {frame} is outside the stack (0 ... {self.num_frames - 1}).")
        return int(frame)

    def _check_new_id(self, obj_id: object) -> int:
        if isinstance(obj_id, (bool, np.bool_)) or not isinstance(obj_id, (int, np.integer)) or obj_id < 1:
            raise PromptError(f"obj_id must be a positive integer (it becomes the label value); got {obj_id!r}.")
        if obj_id > MAX_OBJ_ID:
            raise PromptError(f"obj_id {obj_id} is too large for a label image; use ids up to {MAX_OBJ_ID}.")
        return int(obj_id)

    def _track(self, obj_id: int) -> ObjectTrack:
        self._check_open()
        track = self._objects.get(obj_id)
        if track is None:
            raise PromptError(f"unknown object id {obj_id!r}; this session has objects {self.object_ids}.")
        return track

    def embedding(self, frame: int) -> ImageEmbedding:
        """The image embedding of ``frame``: from :attr:`embeddings` (RAM, spilled, stored), or computed."""
        self._check_open()
        net = self.net
        emb = self.embeddings.get(frame, net.device, net.compute_dtype, self._grid_position())
        if emb is None:
            with torch.inference_mode():
                emb = net.encode_image(self.source.model_input(frame, net.cfg.image_size, net.device,
                                                               net.compute_dtype))
            self.frames_encoded += 1
            self.embeddings.add(frame, emb)
        return emb

    def has_embedding(self, frame: int) -> bool:
        """Whether ``frame``'s embedding is at hand, in RAM or spilled to disk (so a prompt on it is quick)."""
        frame = self._check_frame(frame)
        return frame in self.embeddings

    def _grid_position(self) -> torch.Tensor:
        g = self.net.cfg.feat_size
        pe = self.net.image_encoder.neck.position_encoding.grid(g, g, self.net.device)
        return self.net.shared_position(pe[None].to(self.net.compute_dtype))  # the grid encoded frames use

    def _memory_position(self, emb: ImageEmbedding) -> torch.Tensor:
        if self._memory_pos is None:
            self._memory_pos = tracker.memory_position(self.net, emb)
        return self._memory_pos

    # ---------------------------------------------------------------- storage
    def _lowres(self, obj_id: int, out: FrameOutput, frame: int) -> torch.Tensor:
        if out.lowres is not None:
            return out.lowres
        arr = self._store.get(obj_id, frame)
        return torch.from_numpy(arr)[None, None].to(self.net.device)

    def _park(self, obj_id: int, frame: int, out: FrameOutput) -> None:
        """Drop what the next frames cannot need: the memory, and the logits (to disk)."""
        out.memory = None
        if out.lowres is not None:
            self._store.put(obj_id, frame, out.lowres[0, 0].cpu().numpy())
            out.lowres = None

    def _memory(self, obj_id: int, frame: int, out: FrameOutput) -> torch.Tensor:
        """The memory of an output, re-encoded from its exact logits if it was dropped."""
        if out.memory is None:
            with torch.inference_mode():
                out.memory = tracker.encode_memory(
                    self.net, self.embedding(frame), self._lowres(obj_id, out, frame), out.object_score,
                    binarize=out.from_prompt,
                )
        return out.memory

    # ---------------------------------------------------------------- prompts
    def set_prompts(self, frame: int, obj_id: int, points: npt.ArrayLike | None = None,
                    labels: npt.ArrayLike | None = None, box: npt.ArrayLike | None = None,
                    mask: npt.ArrayLike | None = None, *,
                    prompts: Prompts | None = None) -> np.ndarray:
        """Make ``points``/``box``/``mask`` the prompts of ``obj_id`` on ``frame``.

        Replaces earlier prompts of that object on that frame. Conventions
        as in ``predict_image``: points (N, 2) (row, col), labels 1/0, box
        (row0, col0, row1, col1), mask (H, W). Or pass already checked
        ``prompts`` (:class:`~napari_sam2.engine.prompts.Prompts`, e.g. from
        a prompt file or the widget). A frame that was already tracked is
        corrected: the prompt sees the object's memory and the frame's
        previous mask, and the frame becomes a conditioning frame.

        Returns the frame's (H, W) bool mask of the object.
        """
        frame = self._check_frame(frame)
        obj_id = self._check_new_id(obj_id)
        if prompts is None:
            prompts = make_prompts(self.frame_shape, points, labels, box, mask)
        elif any(v is not None for v in (points, labels, box, mask)):
            raise PromptError("Pass either prompts=... or points/labels/box/mask, not both.")
        elif not isinstance(prompts, Prompts):
            raise PromptError(f"prompts must be a Prompts object (napari_sam2.engine.prompts.make_prompts); "
                              f"got {type(prompts).__name__}.")
        elif prompts.hw != self.frame_shape:
            raise PromptError(f"These prompts were made for {prompts.hw} frames; this stack's frames are "
                              f"{self.frame_shape}.")
        self._in_roi(prompts)  # outside the region: refused before anything changes
        emb = self.embedding(frame)  # may raise on bad pixel data: nothing changed yet
        track = self._objects.get(obj_id) or ObjectTrack()
        with torch.inference_mode():
            out = self._run_prompt(obj_id, track, frame, emb, prompts)
        self._objects.setdefault(obj_id, track)
        track.prompts[frame] = prompts
        track.pending[frame] = out
        self.history.append(SetPrompts(frame, obj_id, prompts))
        return self._mask(out, obj_id, frame)

    def _model_masks(self, masks: list) -> torch.Tensor:
        """(B, 1, S, S) binary masks in the model frame from B (H, W) masks (resized, then thresholded)."""
        cfg = self.net.cfg
        hr = torch.stack([torch.from_numpy(np.asarray(m, dtype=np.float32)) for m in masks])[:, None]
        hr = hr.to(self.net.device)
        if hr.shape[-2:] != (cfg.image_size, cfg.image_size):
            hr = F.interpolate(hr, size=(cfg.image_size,) * 2, mode="bilinear", align_corners=False, antialias=True)
            hr = (hr >= 0.5).float()
        return hr

    def _run_prompt(self, obj_id: int, track: ObjectTrack, frame: int, emb: ImageEmbedding,
                    prompts: Prompts) -> FrameOutput:
        net = self.net
        is_init = frame not in track.tracked
        reverse = track.tracked.get(frame, False)
        prompts = self._in_roi(prompts)
        if prompts.mask is not None and prompts.n_clicks == 0:
            heads = tracker.mask_as_output(net, emb, self._model_masks([prompts.mask]))
        else:
            feats = (net.image_embed_without_memory(emb) if is_init
                     else self._conditioned(obj_id, track, frame, emb, reverse))
            if prompts.mask is not None:
                mask_in = prompts.mask_logits(self._side, net.device)
            else:
                prev = track.latest(frame)
                mask_in = None if prev is None else self._lowres(obj_id, prev, frame).clamp(-32.0, 32.0)
            pts = prompts.model_points(self.source.frame_hw, net.cfg.image_size, net.device)
            multimask = prompts.n_clicks <= 1
            heads = tracker.sam_heads(net, feats, emb.high_res, pts, mask_in, multimask)
        return FrameOutput(heads.lowres, heads.obj_ptr, heads.object_score, None, from_prompt=True, iou=heads.iou)

    def set_mask_prompts(self, frame: int, masks: Mapping[int, np.ndarray | Prompts],
                         batch: int = 16, *, masks_out: bool = True) -> dict[int, np.ndarray]:
        """Make a mask the prompt of each object in ``masks`` (``{obj_id: (H, W) bool mask or mask-only
        Prompts}``) on ``frame``, as :meth:`set_prompts` with ``mask=`` does, but ``batch`` objects at a
        time through the heads. On ``frame`` each object's result is its mask exactly (not the model's
        low-resolution version of it); the memory and later frames are as with ``set_prompts``.
        Returns ``{obj_id: (H, W) bool mask}`` of the results (empty with ``masks_out=False``: hundreds of
        full-frame masks are then never held at once)."""
        frame = self._check_frame(frame)
        checked: dict[int, Prompts] = {}
        for oid, m in masks.items():
            oid = self._check_new_id(oid)
            p = m if isinstance(m, Prompts) else make_prompts(self.frame_shape, mask=m)
            if p.mask is None or p.n_clicks or p.hw != self.frame_shape:
                raise PromptError(f"object {oid}: set_mask_prompts takes one (H, W) mask per object "
                                  f"({self.frame_shape}); use set_prompts for points and boxes.")
            checked[oid] = p
        emb = self.embedding(frame)
        ids = list(checked)
        outs: dict[int, FrameOutput] = {}
        with torch.inference_mode():
            for i in range(0, len(ids), max(1, int(batch))):
                chunk = ids[i:i + batch]
                heads = tracker.mask_as_output(self.net, emb, self._model_masks(
                    [self._in_roi(checked[o]).mask for o in chunk]))
                for j, oid in enumerate(chunk):
                    row = slice(j, j + 1)
                    outs[oid] = FrameOutput(heads.lowres[row].clone(), heads.obj_ptr[row].clone(),
                                            heads.object_score[row].clone(), None, from_prompt=True,
                                            iou=_rows(heads.iou, row), exact=checked[oid].mask)
        result = {}
        for oid, out in outs.items():
            track = self._objects.setdefault(oid, ObjectTrack())
            track.prompts[frame] = checked[oid]
            track.pending[frame] = out
            mask = self._mask(out, oid, frame)  # also records its area and centroid
            if masks_out:
                result[oid] = mask
        self.history.append(SetMasks(frame, checked))
        return result

    def add_objects_from_labels(self, frame: int, labels: np.ndarray, batch: int = 16, *,
                                ids: str = "labels") -> dict[int, int]:
        """Make every non-zero label of an (H, W) label image (e.g. Cellpose or StarDist output for this
        frame) an object prompted with its mask on ``frame``; on ``frame`` the result is the label image
        exactly (with the object ids). Returns ``{label: obj_id}``, labels ascending.

        ``ids`` (see :func:`~.prompts.seed_ids`): ``"labels"`` (default): the label values are the object
        ids; a label that is already an object, or above ``MAX_OBJ_ID``, raises :class:`PromptError` before
        anything changes. ``"fresh"``: such labels get new ids after the largest in use (the others keep
        their value). ``"merge"``: a label that is already an object becomes a correction of it."""
        frame = self._check_frame(frame)
        prompts = label_prompts(labels, self.frame_shape)
        mapping = seed_ids(prompts, self._objects, ids)
        self.set_mask_prompts(frame, {mapping[v]: p for v, p in prompts.items()}, batch=batch, masks_out=False)
        return mapping

    def find_objects(self, frame: int, options: FindOptions | None = None,
                     region: tuple[int, int, int, int] | None = None, min_area: int = 0, *,
                     progress: Callable[[int, int], bool | None] | None = None, **changes: Any) -> dict[int, int]:
        """Find every object on ``frame`` with SAM 2's automatic mask generator (see
        :class:`~napari_sam2.engine.automatic.FindOptions`; ``**changes`` set single options) and make each
        a NEW object seeded with its mask on ``frame``, as :meth:`add_objects_from_labels` seeds (frame-exact
        masks, one history record, exact replay). Existing objects are never changed or merged into, nor
        found again: an object with at least half of its pixels in existing objects' masks on ``frame`` is
        left out (searching a frame twice adds only what is new).

        Overlaps: the better object (higher predicted IoU, then stability) keeps the shared pixels; an object
        left with fewer than ``min_area`` pixels is dropped. ``region`` (row0, col0, row1, col1) in frame
        coordinates: search only there (a session with a ``roi``: within it). ``progress(done, total)``
        after each batch of clicks may return False to stop before anything changes (raises
        :class:`~napari_sam2.engine.automatic.FindCancelled`).

        Returns ``{label: obj_id}``: label k (1, 2, ...) is the k-th object kept, best first; the ids
        count up from the largest id in use. Empty if nothing was found.
        """
        steps = self.iter_find_labels(frame, options, region, min_area, **changes)
        while True:
            try:
                done, total = next(steps)
            except StopIteration as end:
                labels: np.ndarray = end.value
                break
            if progress is not None and progress(done, total) is False:
                steps.close()
                raise FindCancelled(f"stopped after {done} of {total} clicks")
        n = int(labels.max())
        if n == 0:
            return {}
        first = max(self._objects, default=0)
        mapping = self.add_objects_from_labels(frame, np.where(labels > 0, labels + first, 0), ids="labels")
        return {k: mapping[k + first] for k in range(1, n + 1)}

    def iter_find_labels(self, frame: int, options: FindOptions | None = None,
                         region: tuple[int, int, int, int] | None = None, min_area: int = 0,
                         **changes: Any) -> Generator[tuple[int, int], None, np.ndarray]:
        """The search of :meth:`find_objects` without making objects: a generator that yields
        ``(clicks done, clicks in all)`` after each batch of clicks and returns (``yield from``) the frame's
        (H, W) int64 label image of the objects found, label k (1, 2, ...) the k-th kept (best first), 0
        elsewhere (all 0: none). The session does not change (but for the frame's cached embedding); seed
        the labels with :meth:`add_objects_from_labels` (e.g. ``ids="fresh"``). Arguments are checked here,
        when it is called, not at the first ``next()``."""
        frame = self._check_frame(frame)
        opts = resolve_options(options, changes)
        if isinstance(min_area, bool) or not isinstance(min_area, (int, np.integer)) or min_area < 0:
            raise PromptError(f"min_area must be a whole number of pixels >= 0; got {min_area!r}.")
        hw = self.source.frame_hw  # what the model sees: the roi, if any
        dr, dc = (0, 0) if self.roi is None else self.roi[:2]
        local = None
        if region is not None:
            r0, c0, r1, c1 = check_roi(region, self.frame_shape)
            local = (max(r0 - dr, 0), max(c0 - dc, 0), min(r1 - dr, hw[0]), min(c1 - dc, hw[1]))
            if local[2] - local[0] < 8 or local[3] - local[1] < 8:
                raise PromptError(f"The region {tuple(region)} lies (almost) outside the session's region "
                                  f"{self.roi}; draw it inside.")
        return search_frame(self, frame, opts, local, int(min_area))

    def clear_prompts(self, frame: int, obj_id: int | None = None) -> None:
        """Remove the prompts on ``frame`` of one object (or of all objects).

        A conditioning frame becomes an ordinary tracked frame again: its
        current result stays until the next propagation recomputes it.
        """
        frame = self._check_frame(frame)
        if obj_id is not None:
            self._track(obj_id)  # raises for an unknown id
        ids = self.object_ids if obj_id is None else [obj_id]
        self.history.append(ClearPrompts(frame, obj_id))
        for oid in ids:
            track = self._objects[oid]
            track.prompts.pop(frame, None)
            track.pending.pop(frame, None)
            out = track.cond.pop(frame, None)
            if out is not None:
                track.noncond[frame] = out
                track.tracked.pop(frame, None)

    def remove_object(self, obj_id: int) -> None:
        """Forget an object: its prompts, results and stored logits."""
        self._track(obj_id)
        del self._objects[obj_id]
        self._lineage.drop(obj_id)
        self._divided.pop(obj_id, None)
        self._rejected.pop(obj_id, None)
        self._store.drop(obj_id)
        self.history.append(RemoveObject(obj_id))

    def reset(self) -> None:
        """Remove every object (frame embeddings stay cached)."""
        self._check_open()
        self._objects.clear()
        self._lineage = Lineage()
        self._divided.clear()
        self._rejected.clear()
        self._store.clear()
        self.history.clear()  # nothing done before a reset has any effect after it

    # ------------------------------------------------------------ propagation
    def _selection(self, track: ObjectTrack, frame: int, reverse: bool) -> tuple[list, list]:
        """Which outputs ``frame`` attends to, in the reference's order:
        ``[(t_pos, t, FrameOutput)]`` for memories and ``[(distance, FrameOutput)]`` for pointers."""
        cfg = self.net.cfg
        step = 1 if reverse else -1  # towards the frames already seen
        memories = [(0, t, out) for t, out in track.cond.items()]
        for t_pos in range(1, cfg.num_maskmem):
            t = frame + step * (cfg.num_maskmem - t_pos)
            out = track.noncond.get(t)
            if out is not None:
                memories.append((t_pos, t, out))
        signed = cfg.is_v21
        sign = -1 if reverse else 1
        pointers = [
            ((frame - t) * sign if signed else abs(frame - t), out)
            for t, out in track.cond.items()
            if (t >= frame if reverse else t <= frame)
        ]
        n_ptr = tracker.max_pointers(self.net, self.num_frames)
        for dist in range(1, n_ptr):
            t = frame + step * dist
            if not 0 <= t < self.num_frames:
                break
            out = track.noncond.get(t)
            if out is not None:
                pointers.append((dist, out))
        return memories, pointers

    @staticmethod
    def _inputs(selection: tuple[list, list]) -> tuple:
        """The identity of a selection: equal identities give bit-identical results."""
        memories, pointers = selection
        return tuple((t_pos, out.serial) for t_pos, _, out in memories), tuple((d, o.serial) for d, o in pointers)

    def _memory_bank(self, obj_id: int, track: ObjectTrack, frame: int, reverse: bool,
                     selection: tuple[list, list] | None = None) -> tracker.MemoryBank:
        """The memories and object pointers ``frame`` attends to (re-encoding parked memories)."""
        memories, pointers = selection or self._selection(track, frame, reverse)
        return tracker.MemoryBank([(t_pos, self._memory(obj_id, t, out)) for t_pos, t, out in memories],
                                  [(d, out.obj_ptr) for d, out in pointers])

    def _conditioned(self, obj_id: int, track: ObjectTrack, frame: int, emb: ImageEmbedding,
                     reverse: bool) -> torch.Tensor:
        """(1, C, G, G) features of ``frame`` after attending to one object's memory."""
        bank = self._memory_bank(obj_id, track, frame, reverse)
        n_ptr = tracker.max_pointers(self.net, self.num_frames)
        return tracker.condition_on_memory(self.net, emb, [bank], self._memory_position(emb), n_ptr)

    def _commit_pending(self) -> None:
        """Encode the memory of every prompted frame and make it a conditioning frame."""
        for obj_id, track in self._objects.items():
            for frame, out in list(track.pending.items()):
                self._memory(obj_id, frame, out)
                track.cond[frame] = out
                del track.pending[frame]
            for frame in track.cond:
                track.noncond.pop(frame, None)

    def _plan(self, start: int | None, direction: str,
              max_frames: int | None) -> tuple[list[tuple[int, bool]], list[int], int]:
        """(frames to visit with their direction, ids of the objects to track, the resolved start)."""
        self._check_open()
        if direction not in DIRECTIONS:
            raise PromptError(f"direction must be one of {DIRECTIONS}; got {direction!r}.")
        active = [oid for oid, t in self._objects.items() if t.cond or t.pending]
        if not active:
            raise PromptError("Nothing to propagate: no object has a prompt yet. Add a point, box or mask to an "
                              "object on some frame first.")
        unprompted = [oid for oid in self._objects if oid not in active]
        if unprompted:
            warnings.warn(f"Object(s) {unprompted} have no prompt on any frame any more and are not tracked; "
                          f"prompt them again, or remove them.", stacklevel=3)
        if start is None:
            start = min(f for oid in active for f in (*self._objects[oid].cond, *self._objects[oid].pending))
        start = self._check_frame(start)
        n = self.num_frames if max_frames is None else int(max_frames)
        if n < 0:
            raise PromptError(f"max_frames must be >= 0; got {max_frames}.")
        fwd = [(f, False) for f in range(start, min(start + n, self.num_frames - 1) + 1)]
        bwd = [(f, True) for f in range(start, max(start - n, 0) - 1, -1)] if start > 0 else []
        return {"forward": fwd, "backward": bwd, "both": fwd + bwd}[direction], active, start

    def propagate(self, start: int | None = None, direction: str = "forward", max_frames: int | None = None,
                  stop_absent_after: int | None = None, *,
                  detect_divisions: DivisionRule | None = None) -> FrameResults:
        """Track every object frame by frame; yields ``(frame, {obj_id: (H, W) bool mask})``.

        ``start=None`` is the earliest prompted frame. ``"both"`` runs forward
        then backward from ``start`` (so ``start`` is yielded twice).
        Conditioning frames keep their prompted result. Closing the
        generator early leaves the session consistent: frames done stay done.
        An object left without any prompt is not tracked (a warning names it).
        ``stop_absent_after=N``: an object absent on N consecutive frames of a pass is not tracked on the
        rest of that pass (saving its compute; it has no result there) until a frame where it is
        prompted. Daughters and parents are tracked only on their frames (see :meth:`set_parent`).
        The yielded masks hold the objects tracked on that frame.

        ``detect_divisions=DivisionRule(...)``: an object whose mask splits into two parts that stay apart
        (see :mod:`.divisions`) on a forward pass is divided there (:meth:`divide`, ``automatic=True``) and
        its daughters are tracked on: the pass goes on from the split frame, so those frames are yielded
        again, with the daughters. Not for objects that already have daughters, nor for ones prompted with
        points or boxes (or masks that are not two parts) on or after the split. See :meth:`divisions`.

        Every check (closed session, arguments, prompts) happens here, when ``propagate`` is called, not at
        the first ``next()``: a thread worker that iterates the generator only ever gets a valid run.
        """
        self._check_open()
        if stop_absent_after is not None and (isinstance(stop_absent_after, bool) or int(stop_absent_after) < 1):
            raise PromptError(f"stop_absent_after must be a number of frames >= 1 (or None); got "
                              f"{stop_absent_after!r}.")
        if detect_divisions is not None and not isinstance(detect_divisions, DivisionRule):
            raise PromptError(f"detect_divisions must be a DivisionRule (napari_sam2.engine.tracking.divisions) or "
                              f"None; got {type(detect_divisions).__name__}.")
        plan, active, start = self._plan(start, direction, max_frames)  # validate before any work
        stop = None if stop_absent_after is None else int(stop_absent_after)
        record = PropagationRun(start, direction, max_frames, stop_absent_after=stop)
        if detect_divisions is not None:
            return self._propagate_dividing(plan, active, record, detect_divisions)
        return self._propagate(plan, active, record)

    def _propagate_dividing(self, plan: list[tuple[int, bool]], active: list[int], record: PropagationRun,
                            rule: DivisionRule) -> FrameResults:
        """:meth:`_propagate` that divides objects as they split: a pass ends on the frame that confirms a
        division, the division is made, and the pass goes on from the split frame (the history holds the
        runs and the :class:`Divide` records, so a replay needs no detection)."""
        todo: list[tuple[int, str, int | None]] = []
        while True:
            watches: dict[int, DivisionWatch] = {}
            found: list[tuple[int, DivisionPlan]] = []
            run = self._propagate(plan, active, record)
            try:
                for i, (frame, masks) in enumerate(run):
                    yield frame, masks
                    if plan[i][1]:
                        continue  # a backward pass: a split backwards in time is two cells merging
                    parents = set(self._lineage.parents.values())
                    for oid, mask in masks.items():
                        if oid in parents:
                            continue
                        if oid not in watches:
                            watches[oid] = DivisionWatch(rule, self._rejected.get(oid, ()))
                        split = watches[oid].update(frame, mask)
                        if split is not None:
                            try:
                                found.append((oid, self._division_plan(oid, split.frame, split.masks, None,
                                                                       rule.min_area, found)))
                            except PromptError:
                                pass  # prompted after the split, or no earlier prompt: the user's word
                    if found:
                        break
            finally:
                run.close()
            if found:
                for _, division in found:
                    self._divide(division, automatic=True)
                split_frame = found[0][1].frame
                rest = None if record.max_frames is None else record.max_frames - (split_frame - record.start)
                back = [(record.start, "backward", record.max_frames)] if record.direction == "both" else []
                todo[:0] = [(split_frame, "forward", rest), *back]
            if not todo:
                return
            start, direction, max_frames = todo.pop(0)
            plan, active, start = self._plan(start, direction, max_frames)
            record = PropagationRun(start, direction, max_frames, stop_absent_after=record.stop_absent_after)

    def _propagate(self, plan: list[tuple[int, bool]], active: list[int],
                   record: PropagationRun) -> FrameResults:
        self.history.append(record)
        try:
            for item in self._propagate_frames(plan, active, record.stop_absent_after):
                record.frames += 1
                yield item
        except Exception:
            record.failed = True
            raise

    def _propagate_frames(self, plan: list[tuple[int, bool]], active: list[int],
                          stop_absent_after: int | None = None) -> FrameResults:
        self._commit_pending()
        objects = {oid: self._objects[oid] for oid in active}
        spans = {oid: self._span(oid) for oid in objects}
        reach = self.net.cfg.num_maskmem - 1  # recent frames a step can read
        previous = None
        absent: dict[int, int] = {}  # consecutive absent frames of each object in this pass
        for frame, reverse in plan:
            behind = 1 if reverse else -1
            if previous is None or previous[1] != reverse:  # a pass starts: keep only its window
                absent = dict.fromkeys(objects, 0)
                for obj_id, track in objects.items():
                    near = {frame + behind * d for d in range(1, reach + 1)}
                    for t, o in track.noncond.items():
                        if t not in near:
                            self._park(obj_id, t, o)
            here = {}
            for oid, track in objects.items():
                lo, hi = spans[oid]
                if frame in track.cond:
                    absent[oid] = 0  # a prompt says where it is: tracked again from here
                elif not lo <= frame <= hi or (stop_absent_after and absent[oid] >= stop_absent_after):
                    self._forget_result(oid, track, frame)  # not tracked here: no stale result either
                    continue
                here[oid] = track
            todo = []
            for oid, track in here.items():
                if frame in track.cond:
                    continue
                selection = self._selection(track, frame, reverse)
                old = track.noncond.get(frame)
                if old is not None and old.inputs == self._inputs(selection):
                    continue  # computed before from the very same memories: the result would not change
                todo.append((oid, track, selection))
            tracked = self._track_frame(todo, frame, reverse) if todo else {}
            masks = {}
            for obj_id, track in here.items():
                out = track.cond.get(frame)
                if out is None:
                    out = tracked.get(obj_id) or track.noncond[frame]
                    track.noncond[frame] = out
                track.tracked[frame] = reverse
                masks[obj_id] = self._mask(out, obj_id, frame)
                assert out.stats is not None  # _mask computed them
                present = float(out.object_score.reshape(-1)[0]) > 0 and out.stats[0] > 0
                absent[obj_id] = 0 if present else absent[obj_id] + 1
                leaving = track.noncond.get(frame + behind * reach)
                if leaving is not None:  # the next frame cannot read it any more
                    self._park(obj_id, frame + behind * reach, leaving)
            previous = (frame, reverse)
            if self.net.device.type == "cpu" or frame % 16 == 0:
                release_free_memory()  # or fragmentation grows resident memory with every frame
            yield frame, masks

    def _forget_result(self, obj_id: int, track: ObjectTrack, frame: int) -> None:
        """Drop the tracked (not prompted) result of an object on a frame it is not tracked on."""
        if track.noncond.pop(frame, None) is not None:
            track.tracked.pop(frame, None)

    def _span(self, obj_id: int) -> tuple[int, int]:
        """(first, last) frame an object may have results on (see :meth:`set_parent`)."""
        return self._lineage.span(obj_id, self._first_prompted, self.num_frames)

    def _first_prompted(self, obj_id: int) -> int | None:
        track = self._objects.get(obj_id)
        return min(track.prompts) if track is not None and track.prompts else None

    # ---------------------------------------------------------------- lineage
    def set_parent(self, child_id: int, parent_id: int | None) -> None:
        """Record that ``child_id`` is a daughter of ``parent_id`` (a division), or remove its parent (None).

        The daughter starts on its first prompted frame; the parent ends on the frame before its first
        daughter starts: propagation no longer tracks it there, in either direction, and drops its
        earlier results on those frames. Prompt each daughter on the frame where it appears first.
        """
        self._track(child_id)
        child = int(child_id)
        if parent_id is None:
            self._lineage.link(child, None)
            self.history.append(SetParent(child, None))
            return
        self._track(parent_id)
        parent = int(parent_id)
        self._lineage.check(child, parent, self._first_prompted, self._objects[parent].prompts)
        self._lineage.link(child, parent)
        self.history.append(SetParent(child, parent))
        for oid in (child, parent):
            lo, hi = self._span(oid)
            track = self._objects[oid]
            for frame in [f for f in track.noncond if not lo <= f <= hi]:
                self._forget_result(oid, track, frame)

    @property
    def lineage(self) -> dict[int, int]:
        """``{daughter id: parent id}`` (a copy)."""
        return dict(self._lineage.parents)

    def divide(self, parent_id: int, frame: int, masks: Sequence[npt.ArrayLike | Prompts], *,
               daughter_ids: tuple[int, int] | None = None, automatic: bool = False,
               min_area: int = DEFAULT_MIN_AREA) -> tuple[int, int]:
        """Divide ``parent_id`` on ``frame`` into two daughters prompted with ``masks`` (two (H, W) bool masks)
        there, linked as with :meth:`set_parent` (the parent ends on the frame before). The parent's mask
        prompts from ``frame`` on go to the daughters, each split into its two parts of at least
        ``min_area`` pixels (e.g. a label stack seeded on every frame). ``daughter_ids``: default, new ids
        after the largest in use. ``automatic``: marks a division found by ``propagate(detect_divisions=...)``
        for review. Returns the daughters' ids; :meth:`undo_division` takes it back.

        Raises :class:`PromptError` before anything changes if the parent has daughters already, no prompt
        before ``frame``, or prompts from ``frame`` on that are not masks of two parts."""
        division = self._division_plan(parent_id, frame, masks, daughter_ids, min_area)
        self._divide(division, automatic)
        return division.daughters

    def _division_plan(self, parent_id: int, frame: int, masks: Sequence[npt.ArrayLike | Prompts],
                       daughter_ids: tuple[int, int] | None, min_area: int,
                       planned: Sequence[tuple[int, DivisionPlan]] = ()) -> DivisionPlan:
        """Check a division (see :meth:`divide`) and say what it will do; changes nothing."""
        track = self._track(parent_id)
        parent, frame = int(parent_id), self._check_frame(frame)
        if len(masks) != 2:
            raise PromptError(f"a division needs two daughter masks; got {len(masks)}.")
        prompts = tuple(m if isinstance(m, Prompts) else make_prompts(self.frame_shape, mask=m) for m in masks)
        if any(p.mask is None or p.n_clicks or p.hw != self.frame_shape for p in prompts):
            raise PromptError(f"a division takes two (H, W) masks of {self.frame_shape} pixels.")
        children = sorted(c for c, p in self._lineage.parents.items() if p == parent)
        if children:
            raise PromptError(f"object {parent} has daughters already ({children}); undo that division first.")
        if not any(f < frame for f in track.prompts):
            raise PromptError(f"object {parent} has no prompt before frame {frame}: a parent must start before "
                              f"its daughters.")
        later = {f: p for f, p in track.prompts.items() if f >= frame}
        halves = split_masks({f: p.mask for f, p in later.items() if p.mask is not None and not p.n_clicks},
                             [np.asarray(p.mask) for p in prompts], int(min_area))
        if halves is None or len(halves) != len(later):
            raise PromptError(f"object {parent} has prompts on frame(s) {sorted(later)} from the division on that are "
                              f"not masks of two parts: clear them, or divide it later.")
        if daughter_ids is None:
            top = max([*self._objects, *(d for _, plan in planned for d in plan.daughters)])
            daughter_ids = (top + 1, top + 2)
        ids = tuple(self._check_new_id(d) for d in daughter_ids)
        if len(ids) != 2 or ids[0] == ids[1] or any(d in self._objects for d in ids):
            raise PromptError(f"daughter ids must be two new object ids; got {tuple(daughter_ids)}.")
        return DivisionPlan(parent, frame, (ids[0], ids[1]), (prompts[0], prompts[1]), halves, int(min_area))

    def _divide(self, division: DivisionPlan, automatic: bool) -> None:
        """Make a checked division; recorded as one :class:`Divide`."""
        mark = len(self.history)
        parent, frame, daughters = division.parent, division.frame, division.daughters
        track = self._objects[parent]
        moved = {f: (track.prompts.pop(f), track.cond.pop(f, None), track.pending.pop(f, None),
                     track.tracked.pop(f, None)) for f in sorted(division.later)}
        self.set_mask_prompts(frame, dict(zip(daughters, division.prompts)), masks_out=False)
        for f, halves in sorted(division.later.items()):
            if f != frame:
                self.set_mask_prompts(f, dict(zip(daughters, halves)), masks_out=False)
        for child in daughters:
            self.set_parent(child, parent)
        del self.history[mark:]  # the calls above are this one division
        self.history.append(Divide(parent, frame, daughters, division.prompts, bool(automatic), division.min_area))
        self._divided[parent] = MadeDivision(frame, daughters, bool(automatic), moved)

    def undo_division(self, parent_id: int) -> None:
        """Take back a division made by :meth:`divide` (e.g. an automatic one): its daughters (and their
        daughters) are removed, the parent gets its prompts back and is tracked past the split again on the
        next propagation, which does not divide it automatically on that split frame again."""
        self._track(parent_id)
        parent = int(parent_id)
        done = self._divided.get(parent)
        children = sorted(c for c, p in self._lineage.parents.items() if p == parent)
        if done is None or children != sorted(done.daughters):
            raise PromptError(f"object {parent} has no division made by divide() or detect_divisions to undo"
                              + (f"; unlink its daughters {children} with set_parent(daughter, None)." if children
                                 else "."))
        mark = len(self.history)
        for oid in reversed(descendants(self._lineage.parents, parent)):
            self.remove_object(oid)
        track = self._objects[parent]
        for f, (prompts, cond, pending, tracked) in done.moved.items():
            track.prompts[f] = prompts
            track.noncond.pop(f, None)
            if cond is not None:
                track.cond[f] = cond
            if pending is not None:
                track.pending[f] = pending
            if tracked is not None:
                track.tracked[f] = tracked
        del self._divided[parent]
        self._rejected.setdefault(parent, set()).add(done.frame)
        del self.history[mark:]
        self.history.append(UndoDivision(parent))

    def divisions(self, automatic_only: bool = False) -> list[Division]:
        """Every division (parent, split frame, daughters, automatic), by frame then parent; with
        ``automatic_only`` those found by ``propagate(detect_divisions=...)`` (to review, or
        :meth:`undo_division`)."""
        self._check_open()
        out = []
        for parent in sorted(set(self._lineage.parents.values())):
            children = tuple(sorted(c for c, p in self._lineage.parents.items() if p == parent))
            done = self._divided.get(parent)
            automatic = done is not None and done.automatic and tuple(sorted(done.daughters)) == children
            starts = [f for c in children for f in [self._first_prompted(c)] if f is not None]
            if automatic or not automatic_only:
                out.append(Division(parent, min(starts, default=self.num_frames), children, automatic))
        return sorted(out, key=lambda d: (d.frame, d.parent))

    def _track_frame(self, todo: list[tuple[int, ObjectTrack, tuple[list, list]]], frame: int,
                     reverse: bool) -> dict[int, FrameOutput]:
        """Segment ``frame`` for each object from its memory alone, and encode the new memories.

        With :attr:`batch_objects`, objects whose memory banks have the same
        layout (the usual case) run as one batch through memory attention, the
        SAM heads and the memory encoder.
        """
        n_ptr = tracker.max_pointers(self.net, self.num_frames)
        results: dict[int, FrameOutput] = {}
        with torch.inference_mode():
            emb = self.embedding(frame)
            groups: dict[object, list[tuple[int, tracker.MemoryBank, tuple]]] = {}
            for obj_id, track, selection in todo:
                bank = self._memory_bank(obj_id, track, frame, reverse, selection)
                groups.setdefault(bank.layout if self.batch_objects else obj_id, []).append(
                    (obj_id, bank, self._inputs(selection)))
            for members in groups.values():
                banks = [bank for _, bank, _ in members]
                feats = tracker.condition_on_memory(self.net, emb, banks, self._memory_position(emb), n_ptr)
                heads = tracker.sam_heads(self.net, feats, emb.high_res, None, None, multimask=True)
                memory = tracker.encode_memory(self.net, emb, heads.lowres, heads.object_score, binarize=False)
                for i, (obj_id, _, inputs) in enumerate(members):
                    row = slice(i, i + 1)
                    results[obj_id] = FrameOutput(heads.lowres[row].clone(), heads.obj_ptr[row].clone(),
                                                  heads.object_score[row].clone(), memory[row].clone(),
                                                  inputs=inputs, iou=_rows(heads.iou, row))
        return results

    # ---------------------------------------------------------------- results
    def _to_frame(self, lowres: torch.Tensor) -> np.ndarray:
        """(H, W) float32 logits of the frame from (1, 1, s, s) low-resolution logits (outside a region:
        -1024, far from any mask)."""
        logits = upscale_logits(lowres, self.source.frame_hw)[0, 0].cpu().numpy()
        return logits if self.roi is None else place_in_frame(logits, self.roi, self.frame_shape)

    def _frame_logits(self, obj_id: int, out: FrameOutput, frame: int) -> np.ndarray:
        """(H, W) float32 logits of an output at the frame's resolution."""
        if out.exact is not None:
            return np.where(np.asarray(out.exact), np.float32(MASK_LOGIT), np.float32(-MASK_LOGIT))
        return self._to_frame(self._lowres(obj_id, out, frame))

    def _mask(self, out: FrameOutput, obj_id: int, frame: int) -> np.ndarray:
        """(H, W) bool mask of an output; records its area and centroid in ``out.stats``."""
        mask = np.asarray(out.exact) if out.exact is not None else self._frame_logits(obj_id, out, frame) > 0
        if out.stats is None:
            out.stats = mask_stats(mask)
        return mask

    def logits(self, frame: int, obj_id: int) -> np.ndarray | None:
        """(H, W) float32 logits of ``obj_id`` on ``frame`` (mask = logits > 0), or None."""
        frame = self._check_frame(frame)
        track = self._track(obj_id)
        out = track.latest(frame)
        return None if out is None else self._frame_logits(obj_id, out, frame)

    def presence(self, frame: int, obj_id: int) -> float | None:
        """The object-presence logit of ``obj_id`` on ``frame`` (> 0: present), or None without a result."""
        frame = self._check_frame(frame)
        out = self._track(obj_id).latest(frame)
        return None if out is None else float(out.object_score.reshape(-1)[0])

    def label_dtype(self, dtype: npt.DTypeLike | None = None) -> np.dtype:
        """The label image's dtype: ``dtype`` if given (checked), else uint16, or uint32 for ids above 65535."""
        self._check_open()
        top = max(self._objects, default=0)
        if dtype is None:
            return label_dtype_for(top)
        dtype = np.dtype(dtype)
        if dtype.kind not in "iu" or top > np.iinfo(dtype).max:
            raise LabelDtypeError(f"A {dtype} label image cannot hold object id {top}; use dtype=None "
                                  f"(uint16, or uint32 above 65535).")
        return dtype

    def frame_labels(self, frame: int, dtype: npt.DTypeLike | None = None) -> np.ndarray:
        """(H, W) labels of one frame: ``obj_id`` where its logit is the highest and > 0, else 0.

        ``dtype`` None: uint16, or uint32 when an object id exceeds 65535.
        """
        frame = self._check_frame(frame)
        dtype = self.label_dtype(dtype)
        best = np.zeros(self.frame_shape, np.float32)
        ids = np.zeros(self.frame_shape, dtype)
        for obj_id, track in self._objects.items():
            out = track.latest(frame)
            if out is None:
                continue
            lg = self._frame_logits(obj_id, out, frame)
            win = (lg > 0) & ((ids == 0) | (lg > best))
            ids[win] = obj_id
            best = np.where(win, lg, best)
        return ids

    def labels(self, dtype: npt.DTypeLike | None = None, path: str | Path | None = None) -> Any:
        """(T, H, W) label image of every frame (see :meth:`frame_labels`); T = 1 for a single image.

        A numpy array when it fits :data:`~napari_sam2.engine.storage.labels.LABELS_IN_MEMORY_BYTES`, else
        (or when ``path`` names a folder) a zarr array on disk, written frame by frame with
        bounded memory. The array is the caller's: later calls never change it.
        """
        self._check_open()  # before anything is made on disk
        output = LabelOutput(self.geometry, self.label_dtype(dtype), path=path)
        self.write_labels(output)
        return output.array

    def write_labels(self, output: LabelOutput) -> LabelOutput:
        """Write the labels of every frame that has a result into ``output`` (frames in order)."""
        self._check_open()
        if output.dtype.itemsize < self.label_dtype().itemsize:
            raise LabelDtypeError(f"A {output.dtype} label image cannot hold object id {max(self._objects)}.")
        for frame in self.frames_with_output():
            output.write(frame, self.frame_labels(frame, output.dtype))
        return output

    def track_table(self, obj_id: int | None = None) -> list[dict]:
        """One row per (object, frame) with a result, in (object, frame) order: ``frame``, ``obj_id``,
        ``present_score`` (object-presence probability, sigmoid of the logit), ``present_logit``,
        ``iou`` (the decoder's predicted IoU of the mask), ``area`` (pixels), ``centroid_row``,
        ``centroid_col`` (NaN when empty), ``prompted`` (the frame has prompts of the object),
        ``divided_from`` (on a daughter's first frame of an automatic division: the parent's id, else None;
        :func:`~napari_sam2.engine.tracking.track_table.doubtful_frames` lists those frames for review).
        Write it with :func:`~napari_sam2.engine.tracking.track_table.write_track_table`."""
        self._check_open()
        born = {d: (div.parent, div.frame) for div in self.divisions(automatic_only=True) for d in div.daughters}
        rows = []
        for oid in ([obj_id] if obj_id is not None else sorted(self._objects)):
            track = self._track(oid)
            for frame in sorted(track.frames_with_output()):
                out = track.latest(frame)
                assert out is not None  # frames_with_output
                if out.stats is None:
                    self._mask(out, oid, frame)
                assert out.stats is not None  # _mask computed them
                logit = float(out.object_score.reshape(-1)[0])
                area, row, col = out.stats
                rows.append({
                    "frame": frame, "obj_id": oid, "present_score": float(1 / (1 + np.exp(-logit))),
                    "present_logit": logit, "iou": None if out.iou is None else float(out.iou.reshape(-1)[0]),
                    "area": area, "centroid_row": row, "centroid_col": col, "prompted": frame in track.prompts,
                    "divided_from": born[oid][0] if born.get(oid, (0, -1))[1] == frame else None,
                })
        return rows

    def export_ctc(self, folder: str | Path, overwrite: bool = False, labels: Any = None) -> CtcSummary:
        """Write the results in the Cell Tracking Challenge format: ``mask000.tif`` ... (frames from 0)
        and ``res_track.txt`` with the lineage of :meth:`set_parent` (see :func:`~.ctc.write_ctc`; an
        object that vanishes and comes back becomes two linked tracks, as CTC requires). ``labels``: the
        (T, H, W) result of :meth:`labels` if the caller has it already (else it is computed)."""
        from ..io.ctc import write_ctc

        self._check_open()
        return write_ctc(folder, self.labels() if labels is None else labels, self.lineage, overwrite=overwrite)

    def export_geff(self, path: str | Path, overwrite: bool = False, labels: Any = None) -> Path:
        """Write the tracks as a GEFF graph (zarr): one node per object and frame (t, y, x centroid, area,
        label), edges between an object's frames and from parents to daughters (see :func:`~.geff.write_geff`).
        ``labels`` as for :meth:`export_ctc`."""
        from ..io.geff import write_geff

        self._check_open()
        return write_geff(path, self.labels() if labels is None else labels, self.lineage, overwrite=overwrite)

    def export_trackmate(self, path: str | Path, overwrite: bool = False, labels: Any = None) -> Path:
        """Write the tracks as a TrackMate XML file that Fiji's TrackMate opens: one spot per object and frame
        (centroid, radius, area in pixels), edges between an object's frames and from parents to daughters,
        one track per lineage tree (see :func:`~.trackmate.write_trackmate`, which also takes a pixel size and
        frame interval). ``labels`` as for :meth:`export_ctc`."""
        from ..io.trackmate import write_trackmate

        self._check_open()
        return write_trackmate(path, self.labels() if labels is None else labels, self.lineage,
                               overwrite=overwrite)

    def frames_with_output(self, obj_id: int | None = None) -> list[int]:
        """Sorted frames that have a result for ``obj_id`` (or for any object)."""
        self._check_open()
        tracks = self._objects.values() if obj_id is None else [self._track(obj_id)]
        return sorted(set().union(*(t.frames_with_output() for t in tracks)))

    def prompts(self) -> dict[int, dict[int, Prompts]]:
        """Every prompt of the session: ``{obj_id: {frame: Prompts}}`` (a copy)."""
        self._check_open()
        return {oid: dict(t.prompts) for oid, t in self._objects.items()}

    def save_prompts(self, path: str | Path, names: dict[int, str] | None = None) -> Path:
        """Write this session's history (prompts, corrections, propagation runs, in order) as a prompt
        file; ``names`` gives objects display names. Replaying it (``napari-sam2 segment``, the widget's
        *Load prompts…* or :func:`~napari_sam2.engine.io.prompt_file.load_annotation` + ``replay``) with the
        same model and precision gives these labels bit for bit."""
        from ..io.prompt_file import session_annotation, write_annotation

        self._check_open()
        return write_annotation(path, session_annotation(self, names))

    def close(self) -> None:
        """Delete the session's temporary files; every later call raises :class:`SessionClosedError`."""
        self._closed = True
        self.embeddings.clear()
        self._store.close()
