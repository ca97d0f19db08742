"""The stack tracking session on a small random-weight model: API, state, memory bounds, errors."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from napari_sam2 import ImageDataError, PromptError

T, H, W = 12, 40, 48

#: Relative bound for float32 results of one computation done by two different kernel paths (batched vs one
#: object, oneDNN vs native, another CPU's GEMM blocking, torch.compile's fused kernels). Why 2**-11: float32
#: rounds each operation by at most u = 2**-24; a kernel that sums a K-term product in another order moves
#: the result by ~sqrt(K) u (K <= 256 here: 16 u); a logit passes through ~40 such products per frame
#: (memory attention, decoder, memory encoder) and carries the differences of the earlier frames through
#: memory (12 frames): 16 * 40 * 12 u ~ 7700 u ~ 2**-11. Measured: 1200 u (7.3e-5 of |logit| + 1, here and on
#: the AMD EPYC of issue 15 item 10). A real error (another object's memory, a wrong frame) is O(1).
KERNEL_RTOL = 2.0**-11


def assert_close_across_kernels(actual: np.ndarray, desired: np.ndarray) -> None:
    """``actual`` equals ``desired`` up to float32 rounding of different kernels (see KERNEL_RTOL): relative
    to each value, plus relative to the frame's logit scale (a logit near 0 is the difference of terms of
    that size, and carries their rounding). Absent-object logits (-1024) are exact either way."""
    scale = max(1.0, float(np.abs(desired[desired > -1000]).max(initial=0.0)))
    np.testing.assert_allclose(actual, desired, rtol=KERNEL_RTOL, atol=KERNEL_RTOL * scale)


@pytest.fixture
def stack():
    rng = np.random.default_rng(0)
    return (rng.random((T, H, W, 3)) * 255).astype(np.uint8)


@pytest.fixture
def session(tiny_model, stack):
    s = tiny_model.open_stack(stack)
    yield s
    s.close()


def test_prompt_returns_mask_and_propagation_covers_stack(session):
    m = session.set_prompts(4, 1, points=[[10, 12]], labels=[1])
    assert m.shape == (H, W) and m.dtype == bool
    seen = [f for f, masks in session.propagate(direction="both")]
    assert seen == list(range(4, T)) + list(range(4, -1, -1))
    for f in range(T):
        assert session.logits(f, 1).shape == (H, W)


def test_start_and_max_frames(session):
    session.set_prompts(2, 1, box=(5, 5, 20, 30))
    assert [f for f, _ in session.propagate(start=5, max_frames=3)] == [5, 6, 7, 8]
    assert [f for f, _ in session.propagate(start=5, direction="backward", max_frames=2)] == [5, 4, 3]
    assert [f for f, _ in session.propagate(start=0, direction="backward")] == []


def test_conditioning_frame_keeps_prompt_result(session):
    shown = session.set_prompts(3, 1, points=[[10, 12], [30, 40]], labels=[1, 0])
    logits_at_prompt = session.logits(3, 1)
    for f, masks in session.propagate():
        if f == 3:
            np.testing.assert_array_equal(masks[1], shown)
    np.testing.assert_array_equal(session.logits(3, 1), logits_at_prompt)


def test_correction_persists_across_repropagation(session):
    session.set_prompts(0, 1, points=[[10, 12]])
    list(session.propagate())
    before = session.logits(6, 1)
    corrected = session.set_prompts(6, 1, points=[[30, 30]], labels=[0])
    corrected_logits = session.logits(6, 1)
    assert not np.array_equal(before, corrected_logits)
    list(session.propagate())
    list(session.propagate(direction="backward", start=T - 1))
    np.testing.assert_array_equal(session.logits(6, 1), corrected_logits)
    np.testing.assert_array_equal(session.logits(6, 1) > 0, corrected)


def test_objects_added_after_propagation_and_removed(session):
    session.set_prompts(0, 1, points=[[10, 12]])
    list(session.propagate())
    session.set_prompts(5, 7, box=(2, 2, 30, 30))
    frames = {f: set(m) for f, m in session.propagate()}
    assert frames[0] == {1, 7} and frames[T - 1] == {1, 7}
    session.remove_object(1)
    assert session.object_ids == [7]
    with pytest.raises(PromptError, match="unknown object id 1"):
        session.logits(0, 1)
    session.reset()
    assert session.object_ids == []


def test_has_embedding_and_frames_with_output(session):
    assert not session.has_embedding(3) and session.frames_with_output() == []
    session.set_prompts(3, 1, points=[[10, 12]])
    assert session.has_embedding(3) and not session.has_embedding(4)
    assert session.frames_with_output() == [3] == session.frames_with_output(1)
    list(session.propagate(max_frames=2))
    session.set_prompts(0, 2, box=(2, 2, 30, 30))
    assert session.frames_with_output(1) == [3, 4, 5] and session.frames_with_output(2) == [0]
    assert session.frames_with_output() == [0, 3, 4, 5]
    with pytest.raises(PromptError, match="outside the stack"):
        session.has_embedding(T)
    with pytest.raises(PromptError, match="unknown object id 9"):
        session.frames_with_output(9)


def test_closing_generator_early_keeps_what_was_done(session):
    session.set_prompts(0, 1, points=[[10, 12]])
    gen = session.propagate()
    for f, _ in gen:
        if f == 4:
            break
    gen.close()
    assert session.logits(4, 1) is not None and session.logits(5, 1) is None
    assert [f for f, _ in session.propagate(start=5)] == list(range(5, T))


def test_clear_prompts_turns_conditioning_frame_into_tracked_frame(session, tiny_model, stack):
    session.set_prompts(0, 1, points=[[10, 12]])
    session.set_prompts(8, 1, points=[[20, 20]])
    list(session.propagate())
    prompted = session.logits(8, 1)
    session.clear_prompts(8, 1)
    np.testing.assert_array_equal(session.logits(8, 1), prompted)  # result kept until recomputed
    assert list(session.prompts()[1]) == [0]
    list(session.propagate())
    never = tiny_model.open_stack(stack)  # frame 8 never prompted: the results of a cleared prompt
    never.set_prompts(0, 1, points=[[10, 12]])
    list(never.propagate())
    assert not np.array_equal(never.logits(8, 1), prompted)
    for f in range(T):
        np.testing.assert_array_equal(session.logits(f, 1), never.logits(f, 1))
    never.close()
    with pytest.raises(PromptError, match="no object has a prompt"):
        session.clear_prompts(0)
        list(session.propagate())


def test_labels_resolve_overlaps_by_higher_logit(session):
    session.set_prompts(0, 1, points=[[10, 12]])
    session.set_prompts(0, 2, box=(0, 0, 39, 47))
    list(session.propagate(max_frames=3))
    labels = session.labels()
    assert labels.shape == (T, H, W)
    for f in range(4):
        l1, l2 = session.logits(f, 1), session.logits(f, 2)
        expect = np.where((l2 > 0) & (l2 > l1), 2, np.where(l1 > 0, 1, 0))
        np.testing.assert_array_equal(labels[f], expect)
    assert not labels[5:].any()


def test_memory_stays_bounded_during_long_propagation(tiny_model):
    rng = np.random.default_rng(1)
    stack = (rng.random((40, 24, 24)) * 255).astype(np.uint8)
    s = tiny_model.open_stack(stack)
    s.set_prompts(0, 1, points=[[10, 10]])
    s.set_prompts(20, 1, points=[[12, 12]])
    held = []
    for _ in s.propagate(direction="both"):
        track = s._objects[1]
        held.append(sum(o.memory is not None or o.lowres is not None for o in track.noncond.values()))
    assert max(held) <= tiny_model.net.cfg.num_maskmem  # the 6-frame window (+ the frame being done)
    # parked results are still exact and available
    assert all(s.logits(f, 1) is not None for f in range(40))
    s.close()


def test_reprop_after_correction_reuses_cached_embeddings(tiny_model, stack):
    s = tiny_model.open_stack(stack)
    s.set_prompts(0, 1, points=[[10, 12]])
    list(s.propagate())
    encoded = s.frames_encoded
    assert encoded == T
    s.set_prompts(6, 1, points=[[15, 15]], labels=[0])
    list(s.propagate())
    assert s.frames_encoded == encoded
    s.close()


def test_embeddings_over_the_ram_budget_spill_to_disk_exactly(tiny_model, stack):
    """With room for one embedding in RAM, the rest go to the session's temporary folder:
    re-propagating encodes nothing again, and the results equal a session with room for all."""
    roomy = tiny_model.open_stack(stack)
    tight = tiny_model.open_stack(stack, cache_bytes=1)
    for s in (roomy, tight):
        s.set_prompts(0, 1, points=[[10, 12]])
        list(s.propagate())
        s.set_prompts(6, 1, points=[[15, 15]], labels=[0])
        list(s.propagate())
    assert tight.frames_encoded == roomy.frames_encoded == T
    spill = tight.embeddings.spill
    assert len(tight.embeddings.ram) == 1 and spill.reads > 0 and spill.writes == T  # each once
    assert all(tight.has_embedding(f) for f in range(T))
    for f in range(T):
        np.testing.assert_array_equal(tight.logits(f, 1), roomy.logits(f, 1))
    folder = tight.embeddings.spill.folder
    assert any(folder.iterdir())
    roomy.close()
    tight.close()
    assert not folder.exists()


def test_objects_tracked_together_equal_objects_tracked_alone(tiny_checkpoint, stack):
    """Objects go through memory attention, the heads and the memory encoder as one batch;
    each result equals tracking that object in a session of its own (float32)."""
    import napari_sam2

    model = napari_sam2.load_model(tiny_checkpoint, device="cpu", dtype="float32")
    prompts = {1: dict(frame=0, points=[[10, 12]]), 2: dict(frame=0, box=(20, 20, 35, 40)),
               3: dict(frame=3, points=[[30, 8]])}  # object 3: another memory layout, its own batch
    together = model.open_stack(stack)
    together.batch_objects = True  # (off by default on CPUs)
    calls = []
    attention = model.net.memory_attention.forward
    def counting(curr, *a, **k):
        calls.append(curr.shape[1])  # the batch: objects attended together
        return attention(curr, *a, **k)

    model.net.memory_attention.forward = counting
    for oid, p in prompts.items():
        together.set_prompts(p["frame"], oid, points=p.get("points"), box=p.get("box"))
    list(together.propagate(start=0))
    del model.net.memory_attention.forward
    assert max(calls) >= 2  # objects with the same memory layout went through memory attention together
    for oid, p in prompts.items():
        alone = model.open_stack(stack)
        alone.set_prompts(p["frame"], oid, points=p.get("points"), box=p.get("box"))
        list(alone.propagate(start=0))
        np.testing.assert_array_equal(together.logits(p["frame"], oid), alone.logits(p["frame"], oid))  # prompted
        for f in range(T):
            assert_close_across_kernels(together.logits(f, oid), alone.logits(f, oid))
        alone.close()
    together.close()


def test_labels_kept_by_the_caller_do_not_change(session, monkeypatch):
    """A disk-backed label image from labels() stays as it was when labels() is called again."""
    from napari_sam2.engine.storage import labels

    monkeypatch.setattr(labels, "LABELS_IN_MEMORY_BYTES", 1024)
    session.set_prompts(2, 1, points=[[10, 12]])
    list(session.propagate(max_frames=2))
    first = session.labels()
    kept = np.array(first)
    session.set_prompts(8, 2, points=[[30, 30]])
    list(session.propagate(start=8, max_frames=2))
    second = session.labels()
    np.testing.assert_array_equal(np.asarray(first), kept)
    assert (second[8:11] == 2).any() and not (kept == 2).any()


def test_lazy_dask_stack_larger_than_memory(tiny_model):
    """100,000 frames of 512 x 512 uint16 (52 GB, twice this machine's RAM): only needed frames are read."""
    reads = []

    def make_block(block, block_info=None):
        i = block_info[0]["chunk-location"][0]
        reads.append(i)
        rr, cc = np.mgrid[:512, :512]
        disc = (rr - 256 - i % 7) ** 2 + (cc - 256) ** 2 < 60**2
        return (300 + 2000 * disc).astype(np.uint16)[None]

    n = 100_000
    stack = da.zeros((n, 512, 512), dtype=np.uint16, chunks=(1, 512, 512)).map_blocks(make_block, dtype=np.uint16)
    s = tiny_model.open_stack(stack, contrast_limits=(0, 2500))
    assert reads == []
    mid = n // 2
    s.set_prompts(mid, 1, points=[[256, 256]])
    frames = [f for f, _ in s.propagate(max_frames=2, direction="both")]
    assert frames == [mid, mid + 1, mid + 2, mid, mid - 1, mid - 2]
    assert sorted(set(reads)) == [mid - 2, mid - 1, mid, mid + 1, mid + 2]
    s.close()


def test_percentile_window_is_computed_once_per_stack(tiny_model):
    rng = np.random.default_rng(0)
    stack = (rng.random((30, 16, 16)) * 4000).astype(np.uint16)
    stack[7] += 20000  # one bright frame must not change the window of the others
    s = tiny_model.open_stack(stack)
    w1 = s.source.window
    s.set_prompts(3, 1, points=[[5, 5]])
    assert s.source.window is w1 and len(w1.low) == 1
    s.close()


def test_4d_and_channel_axes(tiny_model):
    tzyx = np.zeros((4, 3, 20, 24), np.uint8)
    s = tiny_model.open_stack(tzyx, axis=0, fixed={1: 2})
    assert s.num_frames == 4 and s.frame_shape == (20, 24)
    s.close()
    rgb_video = np.zeros((5, 20, 24, 3), np.uint8)
    s = tiny_model.open_stack(rgb_video)
    assert s.num_frames == 5 and s.geometry.channel_axis == 3
    s.close()
    single = tiny_model.open_stack(np.zeros((20, 24), np.uint16))
    assert single.num_frames == 1
    single.set_prompts(0, 1, points=[[3, 3]])
    assert [f for f, _ in single.propagate(direction="both")] == [0]
    single.close()


@pytest.mark.parametrize(
    "data, kwargs, match",
    [
        (np.zeros((0, 10, 10), np.uint8), {}, "empty"),
        (np.zeros((2, 3, 4, 10, 10), np.uint8), {}, "free axes"),
        (np.zeros((3, 10, 10), np.uint8), {"axis": 5}, "does not exist"),
        (np.zeros((3, 10, 10), np.complex64), {}, "Unsupported pixel type"),
        ([np.zeros((10, 10)), np.zeros((12, 10))], {}, "different sizes"),
    ],
)
def test_bad_stacks(tiny_model, data, kwargs, match):
    with pytest.raises(ImageDataError, match=match):
        tiny_model.open_stack(data, **kwargs)


def test_bad_prompts_leave_session_usable(session, stack):
    session.set_prompts(0, 1, points=[[10, 12]])
    list(session.propagate(max_frames=2))
    before = session.logits(1, 1)
    for call, match in [
        (lambda: session.set_prompts(T, 1, points=[[1, 1]]), "outside the stack"),
        (lambda: session.set_prompts(-1, 1, points=[[1, 1]]), "outside the stack"),
        (lambda: session.set_prompts(0, 0, points=[[1, 1]]), "positive integer"),
        (lambda: session.set_prompts(0, 2.5, points=[[1, 1]]), "positive integer"),
        (lambda: session.set_prompts(0, 1, points=[[100, 1]]), "outside"),
        (lambda: session.clear_prompts(0, 9), "unknown object id 9"),
        (lambda: session.remove_object(9), "unknown object id 9"),
        (lambda: list(session.propagate(direction="sideways")), "direction"),
        (lambda: list(session.propagate(start=T)), "outside the stack"),
    ]:
        with pytest.raises(PromptError, match=match):
            call()
    np.testing.assert_array_equal(session.logits(1, 1), before)
    assert [f for f, _ in session.propagate(max_frames=1)] == [0, 1]


def test_nan_frame_is_an_error_not_a_crash(tiny_model):
    data = np.ones((3, 16, 16), np.float32)
    data[1, 3, 3] = np.nan
    s = tiny_model.open_stack(data, contrast_limits=(0, 2))
    s.set_prompts(0, 1, points=[[5, 5]])
    with pytest.raises(ImageDataError, match="NaN"):
        s.set_prompts(1, 1, points=[[5, 5]])
    with pytest.raises(ImageDataError, match="NaN"):
        list(s.propagate())
    assert s.logits(0, 1) is not None  # what was computed is kept
    s.close()


def test_propagate_without_prompts(session):
    with pytest.raises(PromptError, match="no object has a prompt yet"):
        list(session.propagate())


def test_disk_embedding_store_is_reused_and_guarded(tiny_model, stack, tmp_path):
    store = tmp_path / "emb.zarr"
    s1 = tiny_model.open_stack(stack, embedding_store=store)
    s1.set_prompts(0, 1, points=[[10, 12]])
    list(s1.propagate(max_frames=3))
    first = [s1.logits(f, 1) for f in range(4)]
    assert s1.frames_encoded == 4 and s1.embeddings.persistent.writes == 4
    s1.close()
    s2 = tiny_model.open_stack(stack, embedding_store=store)
    s2.set_prompts(0, 1, points=[[10, 12]])
    list(s2.propagate(max_frames=3))
    assert s2.frames_encoded == 0 and s2.embeddings.persistent.reads == 4
    for f in range(4):
        np.testing.assert_array_equal(s2.logits(f, 1), first[f])
    s2.close()
    with pytest.raises(ImageDataError, match="different stack or model"):
        tiny_model.open_stack(stack[:, ::2], embedding_store=store)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_sessions_run(tiny_checkpoint, stack, dtype):
    import napari_sam2

    model = napari_sam2.load_model(tiny_checkpoint, device="cpu", dtype=dtype)
    s = model.open_stack(stack)
    s.set_prompts(1, 1, points=[[5, 5]])
    s.set_prompts(2, 2, mask=np.pad(np.ones((10, 10), bool), ((5, H - 15), (5, W - 15))))
    assert [f for f, _ in s.propagate(direction="both", max_frames=2)] == [1, 2, 3, 1, 0]
    assert s.logits(3, 2).dtype == np.float32
    s.close()


def test_large_label_images_are_on_disk_and_outlive_the_session(session, monkeypatch, tmp_path):
    import zarr

    from napari_sam2.engine.storage import labels

    session.set_prompts(2, 1, points=[[10, 12]])
    list(session.propagate(max_frames=3))
    in_ram = session.labels()
    assert isinstance(in_ram, np.ndarray)
    monkeypatch.setattr(labels, "LABELS_IN_MEMORY_BYTES", 1024)
    on_disk = session.labels()
    assert isinstance(on_disk, zarr.Array)
    named = session.labels(path=tmp_path / "out.zarr")
    session.close()  # the session's temporary folder goes; the label images stay readable
    np.testing.assert_array_equal(on_disk[:], in_ram)
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "out.zarr", mode="r")[:], in_ram)
    assert in_ram[2:6].any() and not in_ram[:2].any() and named.shape == in_ram.shape


@pytest.mark.slow
def test_compiled_model_tracks_like_the_eager_one(tiny_checkpoint, stack):
    """load_model(compile=True): torch.compile'd image encoder and memory attention, same results."""
    import napari_sam2

    results = []
    for compiled in (False, True):
        model = napari_sam2.load_model(tiny_checkpoint, device="cpu", dtype="float32", compile=compiled)
        s = model.open_stack(stack[:4])
        s.set_prompts(0, 1, points=[[10, 12]])
        list(s.propagate())
        results.append([s.logits(f, 1) for f in range(4)])
        s.close()
    for eager, compiled in zip(*results):
        for e, c in zip(eager, compiled):
            assert_close_across_kernels(c, e)  # inductor's fused kernels round differently


def test_closed_session_refuses_every_call(tiny_model, stack):
    from napari_sam2.errors import SessionClosedError

    s = tiny_model.open_stack(stack)
    s.set_prompts(0, 1, points=[[10, 12]])
    s.close()
    calls = [lambda: s.set_prompts(0, 1, points=[[5, 5]]), lambda: s.propagate(), lambda: s.labels(),
             lambda: s.frame_labels(0), lambda: s.logits(0, 1), lambda: s.embedding(0), lambda: s.reset(),
             lambda: s.clear_prompts(0), lambda: s.remove_object(1), lambda: s.prompts(),
             lambda: s.frames_with_output(), lambda: s.has_embedding(0)]
    for call in calls:
        with pytest.raises(SessionClosedError, match="closed"):
            call()


def test_object_ids_beyond_uint16_grow_the_label_dtype(session):
    session.set_prompts(2, 70000, points=[[10, 12]])
    labels = session.labels()
    assert labels.dtype == np.uint32 and (labels[2] == 70000).any()
    with pytest.raises(PromptError, match="cannot hold object id 70000"):
        session.labels(dtype=np.uint16)
    with pytest.raises(PromptError, match="too large"):
        session.set_prompts(2, 2**32, points=[[10, 12]])


def test_an_object_without_prompts_does_not_block_the_others(session):
    session.set_prompts(2, 1, points=[[10, 12]])
    session.set_prompts(3, 2, points=[[30, 30]])
    session.clear_prompts(3, 2)  # e.g. its last point deleted in the widget
    with pytest.warns(UserWarning, match=r"\[2\] have no prompt"):
        frames = [f for f, masks in session.propagate(max_frames=3)]
    assert frames == [2, 3, 4, 5]
    assert session.frames_with_output(1) == [2, 3, 4, 5]


def test_nan_pixels_block_only_their_frame(tiny_model):
    data = np.random.default_rng(0).random((6, 40, 48)).astype(np.float32)
    data[4, 3, 3] = np.nan
    s = tiny_model.open_stack(data)
    s.set_prompts(1, 1, points=[[10, 12]])  # the window ignores the NaN; frame 1 is fine
    with pytest.raises(ImageDataError, match="Frame 4 contains NaN"):
        list(s.propagate())
    assert s.frames_with_output(1) == [1, 2, 3]  # frames before the bad one are kept
    s.close()


def test_embedding_store_of_another_movie_is_refused(tiny_model, stack, tmp_path):
    store = tmp_path / "emb.zarr"
    s1 = tiny_model.open_stack(stack, embedding_store=store)
    s1.embedding(0)
    s1.close()
    other = stack[::-1].copy()  # same shape, dtype and intensity window: only the pixels differ
    with pytest.raises(ImageDataError, match="differs in: pixels"):
        tiny_model.open_stack(other, embedding_store=store)


def test_repropagation_recomputes_only_what_a_correction_changed(tiny_model, stack):
    """Objects are tracked independently: after a correction of object 1, objects 2 and 3 (whose
    memories did not change) are not computed again; nothing changed, nothing is computed. The
    results equal a session that recomputes everything."""
    sessions = [tiny_model.open_stack(stack) for _ in range(2)]
    computed: list[list[int]] = []
    for s in sessions:
        track_frame = s._track_frame

        def counting(todo, frame, reverse, track_frame=track_frame):
            computed[-1].extend(oid for oid, _, _ in todo)
            return track_frame(todo, frame, reverse)

        s._track_frame = counting
        s.set_prompts(0, 1, points=[[10, 12]])
        s.set_prompts(0, 2, box=(20, 20, 35, 40))
        s.set_prompts(0, 3, points=[[30, 8]])
        computed.append([])
        list(s.propagate())
    assert sorted(set(computed[0])) == [1, 2, 3] and len(computed[0]) == 3 * (T - 1)
    for s in sessions:
        s.set_prompts(6, 1, points=[[15, 15]], labels=[0])
    for out in (o for t in sessions[1]._objects.values() for o in t.noncond.values()):
        out.inputs = None  # the second session forgets what its results were computed from
    computed.append([])
    list(sessions[0].propagate())
    assert set(computed[-1]) == {1} and len(computed[-1]) == T - 2  # object 1 only, its cond frames 0 and 6 aside
    computed.append([])
    list(sessions[1].propagate())
    assert len(computed[-1]) == 3 * (T - 1) - 1
    for oid in (1, 2, 3):
        for f in range(T):
            np.testing.assert_array_equal(sessions[0].logits(f, oid), sessions[1].logits(f, oid))
    computed.append([])
    list(sessions[0].propagate())
    assert computed[-1] == []  # nothing changed: nothing to compute
    for s in sessions:
        s.close()


def test_track_table_matches_the_results(session, tmp_path):
    """Every row's numbers are those of the session's own results (presence, masks) on that frame."""
    import csv

    from napari_sam2.engine.tracking.track_table import write_track_table

    session.set_prompts(2, 1, points=[[10, 12]])
    session.set_prompts(2, 2, box=(20, 20, 35, 40))
    list(session.propagate(max_frames=3))
    rows = session.track_table()
    assert [(r["obj_id"], r["frame"]) for r in rows] == [(1, f) for f in range(2, 6)] + [(2, f) for f in range(2, 6)]
    for r in rows:
        logits = session.logits(r["frame"], r["obj_id"])
        mask = logits > 0
        assert r["area"] == int(mask.sum())
        if r["area"]:
            rr, cc = np.nonzero(mask)
            assert abs(r["centroid_row"] - rr.mean()) < 1e-6 and abs(r["centroid_col"] - cc.mean()) < 1e-6
        assert r["present_logit"] == pytest.approx(session.presence(r["frame"], r["obj_id"]))
        assert 0 <= r["present_score"] <= 1 and r["iou"] is not None
        assert r["prompted"] == (r["frame"] == 2)
    assert session.track_table(obj_id=2) == rows[4:]
    path = write_track_table(tmp_path / "tracks.csv", rows)
    back = list(csv.DictReader(path.open()))
    assert len(back) == 8 and back[0]["obj_id"] == "1" and set(back[0]) >= {"frame", "area", "present_score", "iou"}


def test_doubtful_frames_finds_vanishing_jumps_and_low_confidence():
    from napari_sam2.engine.tracking.track_table import doubtful_frames

    def row(frame, area, score=0.99, iou=0.9, prompted=False, obj=1):
        return {"frame": frame, "obj_id": obj, "present_score": score, "iou": iou, "area": area,
                "prompted": prompted}

    rows = [row(0, 100, prompted=True), row(1, 104), row(2, 250), row(3, 240), row(4, 0, score=0.02),
            row(5, 0, score=0.01), row(6, 230, score=0.6, iou=0.5), row(0, 50, obj=2), row(1, 52, obj=2)]
    found = [(d.frame, d.obj_id, d.reason) for d in doubtful_frames(rows)]
    assert found == [(2, 1, "area jump"), (4, 1, "vanished"), (6, 1, "low confidence")]
    # a prompted frame is the user's word: never doubtful
    rows[2]["prompted"] = True
    assert (2, 1, "area jump") not in [(d.frame, d.obj_id, d.reason) for d in doubtful_frames(rows)]


def test_divisions_end_the_parent_and_start_the_daughters(session, tmp_path):
    from napari_sam2.engine.io.prompt_file import load_annotation

    session.set_prompts(0, 1, points=[[20, 20]])
    list(session.propagate())
    assert session.frames_with_output(1) == list(range(T))
    session.set_prompts(5, 2, points=[[15, 15]])
    session.set_prompts(5, 3, points=[[30, 30]])
    session.set_parent(2, 1)
    session.set_parent(3, 1)
    assert session.lineage == {2: 1, 3: 1}
    assert session.frames_with_output(1) == list(range(5))  # the parent's results after the division are gone
    list(session.propagate(start=0, direction="both"))
    list(session.propagate(start=5, direction="both"))
    assert session.frames_with_output(1) == list(range(5))
    assert session.frames_with_output(2) == session.frames_with_output(3) == list(range(5, T))
    labels = session.labels()
    assert not np.isin(labels[5:], [1]).any() and not np.isin(labels[:5], [2, 3]).any()
    with pytest.raises(PromptError, match="its own parent"):
        session.set_parent(2, 2)
    with pytest.raises(PromptError, match="already an ancestor"):
        session.set_parent(1, 2)
    session.set_prompts(7, 1, points=[[20, 20]])
    with pytest.raises(PromptError, match="prompts on frame\\(s\\) \\[7\\], but its daughter 4"):
        session.set_prompts(6, 4, points=[[5, 5]])
        session.set_parent(4, 1)
    session.clear_prompts(7, 1)
    # the lineage is part of the history: a replay gives the same labels
    path = session.save_prompts(tmp_path / "lineage.json")
    again = session.segmenter.open_stack(session.source.stack)
    load_annotation(path).replay(again)
    assert again.lineage == {2: 1, 3: 1}
    np.testing.assert_array_equal(again.labels(), session.labels())
    again.close()


def test_objects_absent_for_n_frames_stop_being_tracked(session):
    empty = np.zeros((H, W), bool)
    session.set_prompts(0, 1, points=[[20, 20]])
    session.set_prompts(0, 2, mask=empty)  # object 2 is absent on frame 0
    list(session.propagate())
    assert session.frames_with_output(2) == list(range(T))
    list(session.propagate(stop_absent_after=1))
    assert session.frames_with_output(2) == [0]  # not tracked after one absent frame; stale results dropped
    assert session.frames_with_output(1) == list(range(T))
    session.set_prompts(6, 2, points=[[30, 30]])  # a later prompt says it is back
    list(session.propagate(stop_absent_after=1))
    frames = session.frames_with_output(2)
    assert frames[:2] == [0, 6] and not set(frames) & set(range(1, 6))
    with pytest.raises(PromptError, match="stop_absent_after"):
        session.propagate(stop_absent_after=0)


def test_objects_from_a_label_image(session, tmp_path):
    """Every label becomes an object with its id, its mask exact on the seed frame, batched; replayable."""
    from napari_sam2.engine.io.prompt_file import load_annotation

    seeds = np.zeros((H, W), np.uint16)
    seeds[5:15, 5:15] = 5
    seeds[20:30, 10:25] = 9
    seeds[2:8, 30:44] = 300
    seeds[33:38, 40:46] = 70000 % 65536  # 4464
    ids = session.add_objects_from_labels(3, seeds, batch=3)  # two batches
    assert ids == {5: 5, 9: 9, 300: 300, 4464: 4464} and session.object_ids == list(ids.values())
    np.testing.assert_array_equal(session.frame_labels(3), seeds)  # frame-exact
    rows = {r["obj_id"]: r for r in session.track_table() if r["frame"] == 3}
    assert rows[9]["area"] == 150 and rows[9]["centroid_row"] == pytest.approx(24.5)
    list(session.propagate(direction="both", max_frames=2))
    assert session.frames_with_output(5) == [1, 2, 3, 4, 5]
    path = session.save_prompts(tmp_path / "seeds.json")
    again = session.segmenter.open_stack(session.source.stack)
    load_annotation(path).replay(again)
    np.testing.assert_array_equal(again.labels(), session.labels())
    again.close()
    with pytest.raises(PromptError, match="no labels"):
        session.add_objects_from_labels(0, np.zeros((H, W), np.uint8))
    with pytest.raises(PromptError, match="shape"):
        session.add_objects_from_labels(0, np.ones((H, W + 1), np.uint8))
    with pytest.raises(PromptError, match="integer labels"):
        session.add_objects_from_labels(0, np.ones((H, W), np.float32))


def test_ctc_export_of_a_division_loads_in_traccuracy(session, tmp_path):
    """A division marked with set_parent reaches traccuracy's graph as one node with two successors.
    Exact mask prompts on every frame make the result independent of the (random) weights."""
    import traccuracy.loaders as traccuracy

    def disc(r, c, rad=5):
        yy, xx = np.ogrid[:H, :W]
        return (yy - r) ** 2 + (xx - c) ** 2 <= rad**2

    for f in range(5):
        session.set_mask_prompts(f, {1: disc(20, 10 + 2 * f)})
    for f in range(5, T):
        session.set_mask_prompts(f, {2: disc(12, 20), 3: disc(30, 30)})
    session.set_parent(2, 1)
    session.set_parent(3, 1)
    summary = session.export_ctc(tmp_path / "RES")
    assert summary.tracks == [(1, 0, 4, 0), (2, 5, T - 1, 1), (3, 5, T - 1, 1)]
    graph = traccuracy.load_ctc_data(str(tmp_path / "RES"), str(tmp_path / "RES" / "res_track.txt")).graph
    assert graph.number_of_nodes() == 5 + 2 * (T - 5)
    assert sorted(graph.successors("1_4")) == ["2_5", "3_5"]
    assert [n for n in graph.nodes if graph.out_degree(n) == 2] == ["1_4"]


def test_a_region_tracks_like_the_cropped_stack(tiny_model, stack):
    """open_stack(roi=...) sees only the region, at the model's resolution: its results are those of a
    session on the cropped stack, placed back into the full frame (prompts in full-frame coordinates)."""
    r0, c0, r1, c1 = 8, 10, 36, 42
    region = tiny_model.open_stack(stack, roi=(r0, c0, r1, c1))
    cropped = tiny_model.open_stack(np.ascontiguousarray(stack[:, r0:r1, c0:c1]))
    assert region.frame_shape == (H, W) and region.roi == (r0, c0, r1, c1)
    region.set_prompts(2, 1, points=[[20, 25]], labels=[1])
    cropped.set_prompts(2, 1, points=[[20 - r0, 25 - c0]], labels=[1])
    region.set_prompts(2, 2, box=(12, 14, 30, 40))
    cropped.set_prompts(2, 2, box=(12 - r0, 14 - c0, 30 - r0, 40 - c0))
    list(region.propagate(direction="both"))
    list(cropped.propagate(direction="both"))
    for f in range(T):
        full = region.frame_labels(f)
        np.testing.assert_array_equal(full[r0:r1, c0:c1], cropped.frame_labels(f))
        assert not full[:r0].any() and not full[r1:].any() and not full[:, :c0].any() and not full[:, c1:].any()
        np.testing.assert_allclose(region.logits(f, 1)[r0:r1, c0:c1], cropped.logits(f, 1), atol=1e-5)
    with pytest.raises(PromptError, match="region"):
        region.set_prompts(3, 1, points=[[2, 2]])  # outside the region
    with pytest.raises(ImageDataError, match="at least 8 x 8"):
        tiny_model.open_stack(stack, roi=(0, 0, 4, 4))
    region.close()
    cropped.close()


def test_a_small_region_of_a_large_lazy_stack_reads_only_the_region(tiny_model):
    """A 2048 x 2048 lazy stack with a 12-pixel cell: a 128 x 128 region around it is what the model sees
    (at the 128-pixel model frame of the test model: 1 pixel = 1 pixel, where the whole frame would shrink
    the cell 16-fold); only the region's pixels are ever read."""
    import dask.array as da
    read = []

    def frame(block_info=None):
        t = block_info[None]["chunk-location"][0]
        rows, cols = block_info[None]["array-location"][1], block_info[None]["array-location"][2]
        read.append((rows[1] - rows[0]) * (cols[1] - cols[0]))
        img = np.full((1, rows[1] - rows[0], cols[1] - cols[0]), 1000, np.uint16)
        yy, xx = np.ogrid[rows[0]:rows[1], cols[0]:cols[1]]
        img[0][(yy - 1000 - t) ** 2 + (xx - 1500) ** 2 < 36] = 3000
        return img

    big = da.map_blocks(frame, dtype=np.uint16, chunks=((1,) * 4, (256,) * 8, (256,) * 8))
    s = tiny_model.open_stack(big, roi=(940, 1440, 1068, 1568))
    assert s.frame_shape == (2048, 2048) and s.source.frame_hw == (128, 128)
    s.set_prompts(0, 1, points=[[1000, 1500]])
    list(s.propagate())
    labels = s.frame_labels(0)  # the prompted frame: the cell is there
    assert labels.shape == (2048, 2048) and labels[940:1068, 1440:1568].any()
    assert not (labels[:940].any() or labels[1068:].any() or labels[:, :1440].any() or labels[:, 1568:].any())
    assert s.frames_with_output(1) == [0, 1, 2, 3]
    # the 4 chunks around the region per frame read (for the intensity window, then for the model); the
    # whole frames would be 64 chunks each
    assert sum(read) <= 2 * 4 * (4 * 256 * 256)
    s.close()


def test_correction_on_a_one_frame_stack_after_propagating(tiny_model, stack):
    """Issue 15 item 9: on a 1-frame stack a SAM 2.1 correction after propagating attends to one object
    pointer at distance 0; its temporal position must be 0, not 0 / 0 (NaN: an empty mask). Its result
    equals the same correction on a 2-frame stack starting with the same frame, where the reference's
    normalisation (distance / (2 - 1)) is finite and selects the same memories and pointers."""
    results = []
    for frames in (stack[:1], stack[:2]):
        s = tiny_model.open_stack(np.ascontiguousarray(frames))
        s.set_prompts(0, 1, points=[[10, 12]], labels=[1])
        list(s.propagate(max_frames=0))
        mask = s.set_prompts(0, 1, points=[[10, 12], [30, 30]], labels=[1, 0])
        results.append((mask, s.logits(0, 1), s.presence(0, 1)))
        s.close()
    (mask1, logits1, present1), (mask2, logits2, present2) = results
    assert np.isfinite(logits1).all() and np.isfinite(present1)
    assert mask1.any()  # the object is found, not written over with the "absent" logit
    np.testing.assert_array_equal(logits1, logits2)
    np.testing.assert_array_equal(mask1, mask2)
    assert present1 == present2


def test_embedding_store_encodes_a_frame_edited_in_place_again(tiny_model, tmp_path):
    """Issue 15 item 9: the store's signature samples 16 frames; a frame edited in place that is not among
    them must be encoded again (its stored embedding is stale), the unchanged frames are read back."""
    import torch

    from napari_sam2.engine.storage.persistent import stack_signature

    rng = np.random.default_rng(3)
    frames = (rng.random((20, 16, 16)) * 255).astype(np.uint8)
    store = tmp_path / "emb.zarr"
    sampled = set(np.linspace(0, 19, 16).astype(int).tolist())
    edited = next(f for f in range(20) if f not in sampled)  # a frame the signature does not see
    used = [0, edited, 19]
    s1 = tiny_model.open_stack(frames, embedding_store=store)
    signature = stack_signature(s1.source, tiny_model.net)
    for f in used:
        s1.embedding(f)
    s1.close()
    frames[edited, 5, 7] ^= 0xFF  # one pixel, in place
    s2 = tiny_model.open_stack(frames, embedding_store=store)
    assert stack_signature(s2.source, tiny_model.net) == signature  # the edit is invisible to the signature
    got = {f: s2.embedding(f) for f in used}
    stored = s2.embeddings.persistent
    assert s2.frames_encoded == 1 and stored.reads == 2 and stored.stale == 1  # only the edited frame
    s2.close()
    fresh = tiny_model.open_stack(frames)  # no store: the embedding of the edited pixels
    torch.testing.assert_close(got[edited].embed, fresh.embedding(edited).embed, rtol=0, atol=0)
    fresh.close()
    s3 = tiny_model.open_stack(frames, embedding_store=store)  # the new embedding was stored
    for f in used:
        s3.embedding(f)
    assert s3.frames_encoded == 0 and s3.embeddings.persistent.reads == 3
    s3.close()


def test_kernel_rounding_bound_holds_for_other_kernels_and_catches_real_errors(tiny_checkpoint, stack):
    """Issue 15 item 10: the bound between kernel paths holds for the difference reported on an AMD EPYC
    (2.04e-4 at a logit of 2.85, frame scale ~7.8; the former atol 2e-4 failed there) and for another kernel
    library on this CPU (oneDNN off: native kernels), and still fails for real errors."""
    import torch

    import napari_sam2

    desired = np.full((4, 4), 2.85, np.float32)
    desired[0, 0] = -7.8
    assert_close_across_kernels(desired + np.float32(2.04e-4), desired)  # the AMD EPYC case
    with pytest.raises(AssertionError):
        assert_close_across_kernels(desired + np.float32(0.05), desired)  # a real error
    flipped = desired.copy()
    flipped[1, 1] = -0.01  # a mask pixel flipped by more than rounding
    with pytest.raises(AssertionError):
        assert_close_across_kernels(flipped, desired)
    model = napari_sam2.load_model(tiny_checkpoint, device="cpu", dtype="float32")
    results = []
    for onednn in (True, False):
        with torch.backends.mkldnn.flags(enabled=onednn):
            s = model.open_stack(stack[:6])
            s.set_prompts(0, 1, points=[[10, 12]])
            list(s.propagate())
            results.append([s.logits(f, 1) for f in range(6)])
            s.close()
    for a, b in zip(*results):
        assert_close_across_kernels(a, b)
