"""Find every object on one image: clicks on a grid, each decoded alone, then filtered and deduplicated.

The numbers follow Meta's ``SAM2AutomaticMaskGenerator`` (sam2 1.1.0): per crop, the grid's clicks are
decoded in batches; masks are kept by predicted IoU and stability, thresholded, dropped where they touch
the crop's border inside the image, and deduplicated by box NMS; masks of different crops are then
deduplicated again, preferring smaller crops. Boxes here are inclusive pixel bounds (row_min, col_min,
row_max, col_max) as in Meta's code, which the NMS needs to keep the same masks.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass

import numpy as np
import torch

from ...model.mask_decoder import select_masks
from ...model.sam2 import ImageEmbedding, Sam2Model
from ..coords.region import check_roi
from ..coords.transforms import upscale_logits
from .grid import Crop, crop_layout, grid_pixels, layer_grids
from .nms import box_nms
from .options import FindOptions, FoundObject
from .regions import fill_small_regions

#: Returns the embedding of a crop (row0, col0, row1, col1) of the searched image.
EmbedCrop = Callable[[Crop], ImageEmbedding]
#: What the search yields after each batch of clicks: (clicks done, clicks in all).
Progress = tuple[int, int]
#: Distance in pixels under which a mask's box "touches" a crop's border.
EDGE_TOLERANCE = 20.0
#: Masks scaled up to the crop at a time (bounds memory: this many crop-sized float32 arrays).
UPSCALE_CHUNK = 16
#: Low-resolution logits are clipped to this before they prompt the refinement (use_m2m), as Meta's are.
LOWRES_CLAMP = 32.0


class FindCancelled(Exception):
    """The progress callback of :func:`find_objects` asked to stop."""


@dataclass
class _Candidates:
    """The masks of one crop that passed the filters: (N, h, w) bool at the crop's size, and their data."""

    masks: np.ndarray
    iou: np.ndarray  # (N,) float32
    stability: np.ndarray  # (N,) float32
    boxes: np.ndarray  # (N, 4) inclusive bounds in the crop
    points: np.ndarray  # (N, 2) float32 (row, col) in the crop

    @staticmethod
    def empty(hw: tuple[int, int]) -> _Candidates:
        return _Candidates(np.zeros((0, *hw), bool), np.zeros(0, np.float32), np.zeros(0, np.float32),
                           np.zeros((0, 4), np.int64), np.zeros((0, 2), np.float32))

    def take(self, keep: np.ndarray) -> _Candidates:
        return _Candidates(self.masks[keep], self.iou[keep], self.stability[keep], self.boxes[keep], self.points[keep])

    @staticmethod
    def join(parts: list[_Candidates], hw: tuple[int, int]) -> _Candidates:
        if not parts:
            return _Candidates.empty(hw)
        return _Candidates(*(np.concatenate([getattr(p, k) for p in parts]) for k in
                             ("masks", "iou", "stability", "boxes", "points")))


def mask_boxes(masks: torch.Tensor) -> torch.Tensor:
    """(N, h, w) bool -> (N, 4) int64 inclusive bounds (row_min, col_min, row_max, col_max); zeros if empty."""
    n, h, w = masks.shape
    if n == 0:
        return torch.zeros(0, 4, dtype=torch.int64)
    rows, cols = masks.any(dim=2), masks.any(dim=1)
    r = torch.arange(h, device=masks.device)
    c = torch.arange(w, device=masks.device)
    boxes = torch.stack([
        torch.where(rows, r, h).min(dim=1).values, torch.where(cols, c, w).min(dim=1).values,
        torch.where(rows, r, -1).max(dim=1).values, torch.where(cols, c, -1).max(dim=1).values,
    ], dim=1)
    return torch.where(rows.any(dim=1, keepdim=True), boxes, 0).cpu()


def stability_scores(logits: torch.Tensor, threshold: float, offset: float) -> torch.Tensor:
    """(N, H, W) logits -> (N,) float32: pixels above threshold + offset over pixels above threshold - offset."""
    inner = (logits > threshold + offset).flatten(1).sum(1)
    outer = (logits > threshold - offset).flatten(1).sum(1)
    return inner.to(torch.float32) / outer.to(torch.float32)


def _decode(net: Sam2Model, emb: ImageEmbedding, xy: torch.Tensor, mask_in: torch.Tensor | None,
            multimask: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """One positive click per row of ``xy`` (B, 2) (x, y model frame) -> (B, K, 4G, 4G), (B, K) float32."""
    b = xy.shape[0]
    embed = net.image_embed_without_memory(emb).expand(b, -1, -1, -1)
    high = (emb.high_res[0].expand(b, -1, -1, -1), emb.high_res[1].expand(b, -1, -1, -1))
    labels = torch.ones(b, 1, dtype=torch.int32, device=xy.device)
    out = net.decode(embed, high, (xy[:, None], labels), mask_in)
    lowres, iou = select_masks(out, multimask, net.cfg.stability_delta, net.cfg.stability_thresh)
    return lowres.float(), iou.float()


def _model_xy(points_rc: np.ndarray, hw: tuple[int, int], size: int, device: torch.device) -> torch.Tensor:
    """(N, 2) float32 (row, col) pixels of an (h, w) crop -> (N, 2) (x, y) in the model frame."""
    pts = torch.from_numpy(np.ascontiguousarray(points_rc[:, ::-1])).to(device)
    return torch.stack([pts[:, 0] / hw[1], pts[:, 1] / hw[0]], dim=1) * size


def _click_batch(net: Sam2Model, emb: ImageEmbedding, points: np.ndarray, crop: Crop,
                 image_box: Crop, opt: FindOptions) -> _Candidates:
    """The masks of one batch of clicks (crop pixels) that pass the filters."""
    hw = (crop[2] - crop[0], crop[3] - crop[1])
    xy = _model_xy(points, hw, net.cfg.image_size, net.device)
    lowres, iou = _decode(net, emb, xy, None, opt.multimask_output)
    k = lowres.shape[1]
    lowres, iou = lowres.flatten(0, 1), iou.flatten(0, 1)
    pts = np.repeat(points, k, axis=0)
    if opt.use_m2m:  # once more, each mask prompting itself
        xy_all = xy.repeat_interleave(k, dim=0)
        parts = [_decode(net, emb, xy_all[i:i + opt.points_per_batch],
                         lowres[i:i + opt.points_per_batch, None].clamp(-LOWRES_CLAMP, LOWRES_CLAMP), False)
                 for i in range(0, len(pts), opt.points_per_batch)]
        lowres = torch.cat([p[0][:, 0] for p in parts])
        iou = torch.cat([p[1][:, 0] for p in parts])
    keep = (iou > opt.pred_iou_thresh) if opt.pred_iou_thresh > 0 else torch.ones_like(iou, dtype=torch.bool)
    lowres, iou, pts = lowres[keep], iou[keep], pts[keep.cpu().numpy()]
    masks, stability = [], []
    for i in range(0, len(iou), UPSCALE_CHUNK):
        chunk = fill_small_regions(lowres[i:i + UPSCALE_CHUNK, None], opt.min_mask_region_area)
        logits = upscale_logits(chunk, hw)[:, 0]
        stability.append(stability_scores(logits, opt.mask_threshold, opt.stability_score_offset))
        masks.append(logits > opt.mask_threshold)
    if not masks:
        return _Candidates.empty(hw)
    mask_t, stab = torch.cat(masks), torch.cat(stability)
    iou_np = iou.cpu().numpy()
    if opt.stability_score_thresh > 0:
        ok = stab >= opt.stability_score_thresh
        mask_t, stab, iou_np, pts = mask_t[ok], stab[ok], iou_np[ok.cpu().numpy()], pts[ok.cpu().numpy()]
    boxes = mask_boxes(mask_t).numpy()
    # drop masks cut by the crop's border (but not by the image's)
    placed = (boxes + np.array(crop[:2] * 2)).astype(np.float32)
    near_crop = np.abs(placed - np.array(crop, np.float32)) <= EDGE_TOLERANCE
    near_image = np.abs(placed - np.array(image_box, np.float32)) <= EDGE_TOLERANCE
    inner = ~np.any(near_crop & ~near_image, axis=1)
    return _Candidates(mask_t.cpu().numpy()[inner], iou_np[inner], stab.cpu().numpy()[inner], boxes[inner],
                       pts[inner])


def iter_find(net: Sam2Model, hw: tuple[int, int], embed: EmbedCrop, options: FindOptions,
              region: Crop | None = None) -> Generator[Progress, None, list[FoundObject]]:
    """Search an (H, W) image for objects; a generator for jobs that report progress and can stop.

    Args:
        net: the model.
        hw: (rows, cols) of the image.
        embed: the embedding of a crop (row0, col0, row1, col1) of the image (the searched part first).
        options: the search settings.
        region: (row0, col0, row1, col1): search only this part of the image, as if it were the whole
            image (its crops, its grid of clicks, at the model's full resolution); results stay in the
            image's coordinates.

    Yields:
        (clicks done, clicks in all) after each batch of clicks.

    Returns:
        The objects found (``yield from`` gives them), masks (H, W) bool; ordered as Meta's generator
        orders them (by predicted IoU, or with crops: smaller crops first).
    """
    if region is not None:
        r0, c0, r1, c1 = check_roi(region, hw)
        if (r0, c0, r1, c1) != (0, 0, hw[0], hw[1]):
            def embed_in(crop: Crop) -> ImageEmbedding:
                return embed((crop[0] + r0, crop[1] + c0, crop[2] + r0, crop[3] + c0))

            inside = yield from iter_find(net, (r1 - r0, c1 - c0), embed_in, options)
            return [_shifted(obj, hw, (r0, c0)) for obj in inside]
    layout = crop_layout(hw, options.crop_n_layers, options.crop_overlap_ratio)
    grids = layer_grids(options)
    total = sum(len(grids[layer]) for _, layer in layout)
    done = 0
    image_box: Crop = (0, 0, hw[0], hw[1])
    per_crop: list[tuple[Crop, _Candidates]] = []
    for crop, layer in layout:
        crop_hw = (crop[2] - crop[0], crop[3] - crop[1])
        with torch.inference_mode():
            emb = embed(crop)
            points = grid_pixels(grids[layer], crop)
            parts = []
            for i in range(0, len(points), options.points_per_batch):
                batch = points[i:i + options.points_per_batch]
                parts.append(_click_batch(net, emb, batch, crop, image_box, options))
                done += len(batch)
                yield done, total
        found = _Candidates.join(parts, crop_hw)
        found = found.take(box_nms(found.boxes, found.iou, options.box_nms_thresh))
        per_crop.append((crop, found))
    return _merge_crops(per_crop, hw, options)


def _merge_crops(per_crop: list[tuple[Crop, _Candidates]], hw: tuple[int, int],
                 options: FindOptions) -> list[FoundObject]:
    """The masks of all crops in image coordinates; duplicates across crops dropped (smaller crop wins)."""
    entries = [(crop, c, i) for crop, c in per_crop for i in range(len(c.iou))]
    if len(per_crop) > 1 and entries:
        boxes = np.array([c.boxes[i] + np.array(crop[:2] * 2) for crop, c, i in entries])
        areas = torch.tensor([(crop[2] - crop[0]) * (crop[3] - crop[1]) for crop, _, _ in entries])
        keep = box_nms(boxes, areas.reciprocal().numpy(), options.crop_nms_thresh)
        entries = [entries[k] for k in keep]
    out = []
    for crop, c, i in entries:
        mask = np.zeros(hw, bool)
        mask[crop[0]:crop[2], crop[1]:crop[3]] = c.masks[i]
        r0, c0, r1, c1 = (int(v) for v in c.boxes[i])
        out.append(FoundObject(
            mask=mask, score=float(c.iou[i]), stability=float(c.stability[i]),
            bbox=(r0 + crop[0], c0 + crop[1], r1 + crop[0] + 1, c1 + crop[1] + 1), area=int(c.masks[i].sum()),
            point=(float(c.points[i, 0] + np.float32(crop[0])), float(c.points[i, 1] + np.float32(crop[1]))),
            crop=crop,
        ))
    return out


def _shifted(obj: FoundObject, hw: tuple[int, int], offset: tuple[int, int]) -> FoundObject:
    """``obj`` of a region whose top-left pixel is ``offset``, in the (H, W) image."""
    dr, dc = offset
    mask = np.zeros(hw, bool)
    mask[dr:dr + obj.mask.shape[0], dc:dc + obj.mask.shape[1]] = obj.mask
    r0, c0, r1, c1 = obj.bbox
    q0, p0, q1, p1 = obj.crop
    return FoundObject(mask, obj.score, obj.stability, (r0 + dr, c0 + dc, r1 + dr, c1 + dc), obj.area,
                       (obj.point[0] + dr, obj.point[1] + dc), (q0 + dr, p0 + dc, q1 + dr, p1 + dc))


def find_objects(net: Sam2Model, hw: tuple[int, int], embed: EmbedCrop, options: FindOptions,
                 region: Crop | None = None,
                 progress: Callable[[int, int], bool | None] | None = None) -> list[FoundObject]:
    """:func:`iter_find` run to the end; ``progress(done, total)`` after each batch of clicks may return
    False to stop (then :class:`FindCancelled` is raised)."""
    steps = iter_find(net, hw, embed, options, region)
    while True:
        try:
            done, total = next(steps)
        except StopIteration as end:
            return list(end.value)
        if progress is not None and progress(done, total) is False:
            steps.close()
            raise FindCancelled(f"stopped after {done} of {total} clicks")
