"""load_model: reading official-format files, recognising them, and refusing everything else."""

from __future__ import annotations

import functools
import hashlib
import http.server
import pickle
import threading

import numpy as np
import pytest
import torch

import napari_sam2
from conftest import TINY_CONFIG, tiny_state_dict
from napari_sam2 import CheckpointError, weights
from napari_sam2.loading import parse_dtype, pick_device
from napari_sam2.model.checkpoint import CONFIG_KEY, detect_config


def _save(path, state, config=True):
    obj = {"model": state}
    if config:
        obj[CONFIG_KEY] = TINY_CONFIG.to_dict()
    torch.save(obj, path)
    return path


def test_tiny_checkpoint_loads(tiny_checkpoint):
    seg = napari_sam2.load_model(tiny_checkpoint, device="cpu", dtype="float32")
    assert seg.variant == "test_tiny"
    assert seg.device.type == "cpu" and seg.dtype == torch.float32 and seg.precision == "float32"
    assert all(p.dtype == torch.float32 for p in seg.net.parameters())


def test_default_precision_follows_the_device_rule(tiny_checkpoint):
    """The fast default: heavy parts (image encoder; memory attention + memory encoder) in what
    napari_sam2.precision decides for this CPU; the heads always stay float32."""
    from napari_sam2.precision import auto_precision

    seg = napari_sam2.load_model(tiny_checkpoint, device="cpu")
    chosen = auto_precision("cpu")
    assert seg.dtype == chosen.encoder and seg.precision_reason == chosen.reason
    net = seg.net
    assert {p.dtype for p in net.image_encoder.parameters()} == {chosen.encoder}
    assert {p.dtype for p in net.memory_attention.parameters()} == {chosen.memory}
    assert {p.dtype for p in net.memory_encoder.parameters()} == {chosen.memory}
    for part in (net.sam_mask_decoder, net.sam_prompt_encoder, net.obj_ptr_proj):
        assert {p.dtype for p in part.parameters()} == {torch.float32}
    assert net.no_obj_ptr.dtype == torch.float32


def test_truncated_file(tmp_path, tiny_checkpoint):
    data = tiny_checkpoint.read_bytes()
    bad = tmp_path / "truncated.pt"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        napari_sam2.load_model(bad)


def test_not_a_checkpoint_at_all(tmp_path):
    bad = tmp_path / "notes.pt"
    bad.write_bytes(b"hello, this is not a model" * 100)
    with pytest.raises(CheckpointError, match="notes.pt is not a PyTorch checkpoint") as info:
        napari_sam2.load_model(bad)
    assert "safely" not in str(info.value)


@pytest.mark.parametrize("kind", ["random bytes", "foreign zip"])
def test_random_bytes_or_foreign_zip_is_not_a_checkpoint(tmp_path, kind):
    """Not a torch file at all: said so (what it is, what to do), not 'unsafe Python objects'."""
    import zipfile

    bad = tmp_path / "weights.pt"
    if kind == "random bytes":
        data = bytearray(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
        data[0] = 0x80  # starts like a pickle, as a random file may
        data[1] = 0xAC  # ... but with no valid protocol number
        bad.write_bytes(bytes(data))
    else:
        with zipfile.ZipFile(bad, "w") as archive:
            archive.writestr("readme.txt", "not a model")
    with pytest.raises(CheckpointError) as info:
        napari_sam2.load_model(bad)
    text = str(info.value)
    assert "is not a PyTorch checkpoint" in text and "right file" in text
    assert "safely" not in text


class Unsafe:  # a class torch.load(weights_only=True) will not unpickle
    def __init__(self):
        self.value = 1


def test_torch_file_with_unsafe_objects_is_named_so(tmp_path):
    bad = tmp_path / "unsafe.pt"
    torch.save({"model": {"w": torch.zeros(2)}, "extra": Unsafe()}, bad)
    with pytest.raises(CheckpointError, match="holds Python objects that cannot be loaded safely") as info:
        napari_sam2.load_model(bad)
    assert "not a PyTorch checkpoint" not in str(info.value)


class Payload:  # an arbitrary class: weights_only must refuse to unpickle it
    pass


def test_arbitrary_pickle_is_refused(tmp_path):
    bad = tmp_path / "evil.pt"
    with open(bad, "wb") as fh:
        pickle.dump({"model": Payload()}, fh)
    with pytest.raises(CheckpointError):
        napari_sam2.load_model(bad)


def test_sam1_checkpoint_is_named(tmp_path):
    sam1 = {"image_encoder.blocks.0.attn.qkv.weight": torch.zeros(3, 3),
            "mask_decoder.iou_token.weight": torch.zeros(1, 4)}
    bad = tmp_path / "sam_vit_b.pt"
    torch.save(sam1, bad)  # SAM 1 files are bare state dicts
    with pytest.raises(CheckpointError, match="SAM 1"):
        napari_sam2.load_model(bad)


def test_wrong_container(tmp_path):
    bad = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], bad)
    with pytest.raises(CheckpointError, match="does not contain a SAM 2 state dict"):
        napari_sam2.load_model(bad)


@pytest.mark.parametrize(
    "change, match", [("drop", "1 missing"), ("add", "1 unexpected"), ("reshape", "1 wrong shape")]
)
def test_keys_must_match_exactly(tmp_path, change, match):
    state = tiny_state_dict()
    if change == "drop":
        state.pop("sam_mask_decoder.iou_token.weight")
        state["sam_mask_decoder.iou_token.weight"] = torch.zeros(1, 32)  # keep detectable, drop another
        state.pop("memory_attention.norm.bias")
    elif change == "add":
        state["extra.head.weight"] = torch.zeros(3)
    else:
        state["no_mem_embed"] = torch.zeros(1, 1, 7)
    with pytest.raises(CheckpointError, match=match):
        napari_sam2.load_model(_save(tmp_path / "x.pt", state))


def test_unknown_architecture_without_config(tmp_path):
    with pytest.raises(CheckpointError, match="Unrecognised SAM 2 variant"):
        napari_sam2.load_model(_save(tmp_path / "x.pt", tiny_state_dict(), config=False))


def test_safetensors_and_missing_paths(tmp_path):
    st = tmp_path / "model.safetensors"
    st.write_bytes(b"\0" * 16)
    with pytest.raises(CheckpointError, match="native .pt"):
        napari_sam2.load_model(st)
    with pytest.raises(CheckpointError, match="neither an existing checkpoint file nor a known model name"):
        napari_sam2.load_model(tmp_path / "nope.pt")
    with pytest.raises(CheckpointError, match="sam2.1_hiera_large"):
        napari_sam2.load_model("sam3_hiera_huge")


def test_variant_detection_uses_keys_not_names():
    from reference.seeded_weights import official_shapes

    for name in ("sam2_hiera_tiny", "sam2.1_hiera_small", "sam2.1_hiera_base_plus", "sam2_hiera_large"):
        keep = ("no_obj_embed_spatial", "image_encoder.trunk.patch_embed.proj.weight",
                "sam_mask_decoder.iou_token.weight")
        shapes = {k: torch.empty(s) for k, s in official_shapes(name).items() if "trunk.blocks" in k or k in keep}
        assert detect_config(shapes).name == name


def test_device_and_dtype_choices():
    assert pick_device(None).type in {"cuda", "mps", "cpu"}
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            pick_device("cuda")
    assert parse_dtype("bf16") is torch.bfloat16 and parse_dtype(torch.float16) is torch.float16
    assert parse_dtype(None) is None and parse_dtype("auto") is None
    with pytest.raises(ValueError, match="float32, bfloat16 or float16"):
        parse_dtype("int8")


@pytest.fixture
def file_server(tmp_path):
    """A real HTTP server on 127.0.0.1 serving the files of a folder."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_load_by_name_downloads_once(tmp_path, tiny_checkpoint, file_server, monkeypatch):
    root, url = file_server
    data = tiny_checkpoint.read_bytes()
    (root / "sam2.1_hiera_tiny.pt").write_bytes(data)
    entry = weights.Checkpoint(url=f"{url}/sam2.1_hiera_tiny.pt", size=len(data),
                               sha256=hashlib.sha256(data).hexdigest())
    monkeypatch.setitem(weights.CHECKPOINTS, "sam2.1_hiera_tiny", entry)
    monkeypatch.setenv("NAPARI_SAM2_CACHE", str(tmp_path / "cache"))
    seg = napari_sam2.load_model("sam2.1_hiera_tiny", device="cpu", progress=False)
    assert seg.variant == "test_tiny"
    assert (tmp_path / "cache" / "sam2.1_hiera_tiny.pt").read_bytes() == data
    (root / "sam2.1_hiera_tiny.pt").unlink()  # the second load must come from the cache
    assert napari_sam2.load_model("sam2.1_hiera_tiny", device="cpu", progress=False).variant == "test_tiny"


def test_offline_error_says_where_to_put_the_file(tmp_path, monkeypatch):
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nobody listens there now
    monkeypatch.setenv("NAPARI_SAM2_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("NAPARI_SAM2_BASE_URL", f"http://127.0.0.1:{port}")
    with pytest.raises(CheckpointError) as err:
        napari_sam2.load_model("sam2.1_hiera_small", progress=False)
    msg = str(err.value)
    assert str(tmp_path / "cache" / "sam2.1_hiera_small.pt") in msg and "load_model" in msg


def test_unknown_device_names_get_a_clear_error():
    for name in ("gpu", "tpu", "cuda0"):
        with pytest.raises(ValueError, match=r"Unknown device '(gpu|tpu|cuda0)'; use None .*'cpu', 'cuda'"):
            pick_device(name)
