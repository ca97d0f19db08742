"""predict_image on a small random-weight model: formats, conventions, caching, errors."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sam2 import ImageDataError, PromptError
from napari_sam2.engine.preprocess.intensity import apply_window, compute_window, to_rgb01


@pytest.fixture
def image():
    rng = np.random.default_rng(3)
    return (rng.random((40, 56, 3)) * 255).astype(np.uint8)


def test_shapes_and_types(tiny_model, image):
    r = tiny_model.predict_image(image, points=[[10, 20]], labels=[1])
    assert r.masks.shape == (1, 40, 56) and r.masks.dtype == bool
    assert r.logits.shape == (1, 40, 56) and r.logits.dtype == np.float32
    assert r.scores.shape == (1,)
    np.testing.assert_array_equal(r.masks, r.logits > 0)
    m = tiny_model.predict_image(image, points=[[10, 20]], labels=[1], multimask=True)
    assert m.masks.shape == (3, 40, 56) and m.scores.shape == (3,)


def test_embedding_is_cached(tiny_model, image):
    cache = tiny_model._image_cache
    tiny_model.predict_image(image, points=[[5, 5]])
    misses = cache.misses
    tiny_model.predict_image(image, points=[[30, 40]], labels=[0])
    tiny_model.predict_image(image, box=(2, 3, 30, 40))
    assert cache.misses == misses
    tiny_model.predict_image(image[::-1].copy(), points=[[5, 5]])
    assert cache.misses == misses + 1


def test_row_col_convention(tiny_model, image):
    """A point at (row, col) of an (H, W) image reaches the prompt encoder at model (x, y) =
    (col * S / W, row * S / H) (S the model frame, Meta's convention); on the transposed image the point
    (col, row) lands at the swapped model position. (The model is not transpose-equivariant, so the
    logits themselves cannot be compared across a transpose.)"""
    net = tiny_model.net
    seen = []
    hook = net.sam_prompt_encoder.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    try:
        a = tiny_model.predict_image(image, points=[[12.0, 33.0]])
        tiny_model.predict_image(np.ascontiguousarray(image.transpose(1, 0, 2)), points=[[33.0, 12.0]])
        c = tiny_model.predict_image(image, points=[[33.0, 12.0]])
    finally:
        hook.remove()
    (xy_a, lab_a), (xy_b, _), _ = seen
    s, (h, w) = net.cfg.image_size, image.shape[:2]
    np.testing.assert_allclose(xy_a[0].cpu().numpy(), [[33.0 * s / w, 12.0 * s / h]], rtol=1e-6)
    np.testing.assert_allclose(xy_b[0].cpu().numpy(), xy_a[0].cpu().numpy()[:, ::-1], rtol=1e-6)
    assert lab_a.tolist() == [[1]]
    assert not np.allclose(a.logits, c.logits)  # and the position matters to the result


def test_box_corner_order_does_not_matter(tiny_model, image):
    a = tiny_model.predict_image(image, box=(5, 6, 30, 50))
    b = tiny_model.predict_image(image, box=(30, 50, 5, 6))
    np.testing.assert_allclose(a.logits, b.logits, atol=1e-5)


def test_gray_equals_replicated_rgb(tiny_model):
    rng = np.random.default_rng(1)
    gray = (rng.random((32, 48)) * 255).astype(np.uint8)
    a = tiny_model.predict_image(gray, points=[[10, 10]])
    b = tiny_model.predict_image(np.repeat(gray[..., None], 3, -1), points=[[10, 10]])
    np.testing.assert_allclose(a.logits, b.logits, atol=1e-5)


def test_uint16_uses_robust_window_not_full_range():
    rng = np.random.default_rng(0)
    img = (100 + rng.random((64, 64)) * 3000).astype(np.uint16)  # 12-bit-like data
    rgb = to_rgb01(img)
    assert rgb.shape == (64, 64, 3) and rgb.dtype == np.float32
    assert rgb.max() == pytest.approx(1.0) and rgb.min() == pytest.approx(0.0)
    assert 0.3 < rgb.mean() < 0.7  # full-range scaling would give about 0.02
    win = compute_window(img[..., None], contrast_limits=(100, 3100))
    np.testing.assert_allclose(apply_window(img[..., None], win)[..., 0], np.clip((img - 100) / 3000, 0, 1), atol=1e-6)


def test_two_and_four_channels():
    rng = np.random.default_rng(0)
    two = rng.random((8, 9, 2)).astype(np.float32)
    rgb = to_rgb01(two)
    assert rgb.shape == (8, 9, 3) and np.all(rgb[..., 2] == 0)
    rgba = (rng.random((8, 9, 4)) * 255).astype(np.uint8)
    np.testing.assert_allclose(to_rgb01(rgba), rgba[..., :3] / 255.0, atol=1e-7)


def test_mask_prompt_and_all_negative_allowed(tiny_model, image):
    """A mask alone and negative clicks alone are prompts: each reaches the model (another mask, or the same
    clicks as positive, give other logits) and the masks are the logits' sign."""
    mask = np.zeros(image.shape[:2], bool)
    mask[10:30, 10:40] = True
    r = tiny_model.predict_image(image, mask=mask)
    assert r.masks.shape == (1, 40, 56)
    np.testing.assert_array_equal(r.masks, r.logits > 0)
    other = tiny_model.predict_image(image, mask=~mask)
    assert not np.allclose(r.logits, other.logits)
    neg = tiny_model.predict_image(image, points=[[5, 5], [20, 20]], labels=[0, 0])
    pos = tiny_model.predict_image(image, points=[[5, 5], [20, 20]], labels=[1, 1])
    assert neg.masks.shape == (1, 40, 56)
    np.testing.assert_array_equal(neg.masks, neg.logits > 0)
    assert not np.allclose(neg.logits, pos.logits)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(points=[[-3, 5]]), "outside"),
        (dict(points=[[5, 56.7]]), "outside"),
        (dict(points=[[5, 5], [6, 6]], labels=[1]), "2 points but 1 labels"),
        (dict(points=[[5, np.nan]]), "NaN"),
        (dict(points=[[5, 5]], labels=[2]), "labels must be 1"),
        (dict(points=[1, 2, 3]), r"\(N, 2\)"),
        (dict(box=(5, 5, 5, 20)), "zero area"),
        (dict(box=(100, 100, 120, 130)), "outside"),
        (dict(box=(1, 2, 3)), "row0, col0, row1, col1"),
        (dict(mask=np.zeros((10, 10), bool)), "shape"),
        (dict(), "No prompt"),
    ],
)
def test_bad_prompts_get_clear_errors(tiny_model, image, kwargs, match):
    with pytest.raises(PromptError, match=match):
        tiny_model.predict_image(image, **kwargs)


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((4, 5, 6, 7), np.uint8), "1-4 channels"),
        (np.zeros((10, 10, 7), np.uint8), "1-4 channels"),
        (np.full((10, 10), np.nan, np.float32), "NaN"),
    ],
)
def test_bad_images_get_clear_errors(tiny_model, bad, match):
    with pytest.raises(ImageDataError, match=match):
        tiny_model.predict_image(bad, points=[[1, 1]])


def test_bfloat16_runs_close_to_float32(tiny_checkpoint, image):
    import napari_sam2

    fp32 = napari_sam2.load_model(tiny_checkpoint, device="cpu")
    bf16 = napari_sam2.load_model(tiny_checkpoint, device="cpu", dtype="bfloat16")
    a = fp32.predict_image(image, points=[[10, 20]])
    b = bf16.predict_image(image, points=[[10, 20]])
    assert b.logits.dtype == np.float32
    assert np.mean(a.masks == b.masks) > 0.9


def test_channels_first_image_gets_its_own_error(tiny_model, image):
    gray = image[..., 0]
    with pytest.raises(ImageDataError, match=r"channels first .*image\[0\]"):
        tiny_model.predict_image(gray[None], points=[[10, 20]])
    with pytest.raises(ImageDataError, match="moveaxis"):
        tiny_model.predict_image(np.moveaxis(image, -1, 0), points=[[10, 20]])
