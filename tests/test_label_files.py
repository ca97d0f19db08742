"""Label writers (engine/label_files.py) and lazy stack readers (engine/stack_files.py), on real files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from napari_sam2.engine.io.label_files import LABEL_FORMATS, OutputError, label_format, write_labels
from napari_sam2.engine.io.stack_files import StackFile, read_stack
from napari_sam2.errors import ImageDataError

SHAPE = (5, 64, 48)  # (T, Y, X)
FORMATS = [".ome.tif", ".ome.tiff", ".tif", ".tiff", ".ome.zarr", ".zarr", ".npy"]
AXES_KEPT = {".npy": False}  # every other format stores the axes


def make_labels(shape=SHAPE, dtype=np.uint16) -> np.ndarray:
    """Distinct values per plane and pixel, including values above 65535 for uint32."""
    values = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape)
    if np.dtype(dtype).itemsize >= 4:
        values = values * 70_001
    return (values % min(np.iinfo(dtype).max + 1, 2**32)).astype(dtype)


def load(stack: StackFile) -> np.ndarray:
    """All pixels of a stack, closing the file handle a zarr view of a TIFF holds."""
    try:
        return np.asarray(stack.data[...])
    finally:
        stack.close()


def leftovers(folder: Path, keep: set[str]) -> list[str]:
    """Names in ``folder`` other than ``keep`` (temporary or backup outputs that were not cleaned up)."""
    return sorted(set(os.listdir(folder)) - keep)


class PlaneOnly:
    """Array-like that hands out single planes only: a whole-array read fails the test."""

    def __init__(self, data: np.ndarray, fail_at: int | None = None) -> None:
        self.data, self.fail_at, self.requests = data, fail_at, []
        self.shape, self.dtype, self.ndim = data.shape, data.dtype, data.ndim

    def __getitem__(self, index):
        assert isinstance(index, tuple) and len(index) == self.ndim - 2, f"not a plane: {index!r}"
        assert all(isinstance(i, int) for i in index), f"not a plane: {index!r}"
        if index[0] == self.fail_at:
            raise RuntimeError("reading plane failed")
        self.requests.append(index)
        return self.data[index]

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole label array was loaded")


# --- formats and round trips -------------------------------------------------------------------------


def test_label_format_takes_the_longest_suffix_in_any_case():
    assert label_format("a/b/out.OME.TIF") == ".ome.tif"
    assert label_format("out.ome.tiff") == ".ome.tiff"
    assert label_format("out.tif") == ".tif"
    assert label_format(Path("x.Ome.Zarr")) == ".ome.zarr"
    assert label_format("x.zarr") == ".zarr"
    assert label_format("x.npy") == ".npy"
    with pytest.raises(OutputError, match=r"\.ome\.tif.*\.npy"):
        label_format("labels.png")
    assert issubclass(OutputError, ValueError)
    assert set(LABEL_FORMATS) == set(FORMATS)


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32])
@pytest.mark.parametrize("ext", FORMATS)
def test_round_trip_through_read_stack(tmp_path, ext, dtype):
    labels = make_labels(dtype=dtype)
    out = write_labels(tmp_path / f"labels{ext}", labels, axes="TYX")
    assert out == tmp_path / f"labels{ext}"
    stack = read_stack(out)
    assert stack.path == out
    assert stack.data.shape == SHAPE and stack.data.dtype == dtype
    assert stack.axes == ("TYX" if AXES_KEPT.get(ext, True) else None)
    np.testing.assert_array_equal(load(stack), labels)
    assert leftovers(tmp_path, {out.name}) == []


@pytest.mark.parametrize("ext", [".ome.tif", ".tif", ".ome.zarr", ".zarr", ".npy"])
def test_four_and_two_dimensional_labels(tmp_path, ext):
    labels = make_labels((2, 3, 16, 12), np.uint8)
    stack = read_stack(write_labels(tmp_path / f"tz{ext}", labels, axes="tzyx"))
    np.testing.assert_array_equal(load(stack), labels)
    assert stack.axes == ("TZYX" if AXES_KEPT.get(ext, True) else None)
    image = make_labels((16, 12), np.uint16)
    calls = []
    stack = read_stack(write_labels(tmp_path / f"yx{ext}", image, axes="YX", progress=lambda *a: calls.append(a)))
    np.testing.assert_array_equal(load(stack), image)
    assert calls == [(1, 1)]


def test_ome_zarr_stores_leading_axes_in_ngff_order(tmp_path):
    labels = make_labels((3, 2, 16, 12), np.uint16)  # Z, T, Y, X
    stack = read_stack(write_labels(tmp_path / "zt.ome.zarr", labels, axes="ZTYX"))
    assert stack.axes == "TZYX"
    np.testing.assert_array_equal(load(stack), labels.transpose(1, 0, 2, 3))


def test_tiff_flavours(tmp_path):
    """uint8/uint16 in ImageJ order -> ImageJ hyperstack; uint32 -> shaped TIFF; both compressed with axes."""
    small = write_labels(tmp_path / "small.tif", make_labels(dtype=np.uint16), axes="ZYX")
    large = write_labels(tmp_path / "large.tif", make_labels(dtype=np.uint32), axes="ZYX")
    wide = write_labels(tmp_path / "wide.tif", make_labels(dtype=np.int64), axes="ZYX")
    with tifffile.TiffFile(small) as tif:
        assert tif.is_imagej and tif.series[0].axes == "ZYX" and len(tif.pages) == SHAPE[0]
        assert tif.pages[0].compression == tifffile.COMPRESSION.ADOBE_DEFLATE
    with tifffile.TiffFile(large) as tif:
        assert not tif.is_imagej and tif.is_shaped and tif.series[0].axes == "ZYX"
        assert tif.pages[0].compression == tifffile.COMPRESSION.ADOBE_DEFLATE
    with tifffile.TiffFile(wide) as tif:  # 64-bit labels are narrowed to uint32 when they fit
        assert tif.series[0].dtype == np.uint32
        np.testing.assert_array_equal(tif.asarray(), make_labels(dtype=np.int64))


def test_ome_tiff_metadata_parses_with_ome_types(tmp_path):
    import ome_types
    labels = make_labels((4, 3, 32, 24), np.uint32)
    out = write_labels(tmp_path / "labels.ome.tiff", labels, axes="TZYX", name="cells")
    ome = ome_types.from_tiff(out)
    with tifffile.TiffFile(out) as tif:
        assert ome_types.from_xml(tif.ome_metadata) == ome
        assert tif.is_ome and not tif.is_bigtiff and len(tif.pages) == 12
    assert len(ome.images) == 1 and ome.images[0].name == "cells"
    pixels = ome.images[0].pixels
    sizes = (pixels.size_t, pixels.size_z, pixels.size_c, pixels.size_y, pixels.size_x)
    assert sizes == (4, 3, 1, 32, 24)
    assert pixels.dimension_order.value == "XYCZT"  # fastest first: X, Y, then (C), Z, T
    assert pixels.type.value == "uint32"


def test_ome_zarr_is_an_ngff_label_image_for_the_ome_zarr_reader(tmp_path):
    from ome_zarr.format import FormatV04
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Multiscales, Reader

    labels = make_labels(dtype=np.uint32)
    out = write_labels(tmp_path / "labels.ome.zarr", labels, axes="TYX", name="cells")
    assert (out / ".zgroup").is_file() and (out / "0" / ".zarray").is_file()  # zarr format 2
    nodes = list(Reader(parse_url(out, fmt=FormatV04()))())
    node = nodes[0]  # what napari-ome-zarr turns into the first layer
    assert node.load(Label) is not None and node.load(Multiscales) is not None  # a labels layer
    assert len(node.data) == 1 and node.data[0].chunksize == (1, 64, 48)
    np.testing.assert_array_equal(node.data[0].compute(), labels)
    assert [a["name"] for a in node.metadata["axes"]] == ["t", "y", "x"]
    assert [a["type"] for a in node.metadata["axes"]] == ["time", "space", "space"]
    assert node.metadata["name"] == "cells"  # the multiscale name (layer name in napari)


def test_plain_zarr_is_format_2_chunked_per_plane(tmp_path):
    out = write_labels(tmp_path / "labels.zarr", make_labels((2, 1500, 40), np.uint16), axes="ZYX")
    array = zarr.open(str(out), mode="r")
    assert isinstance(array, zarr.Array) and (out / ".zarray").is_file()
    assert array.chunks == (1, 1024, 40)
    assert dict(array.attrs)["_ARRAY_DIMENSIONS"] == ["z", "y", "x"]


# --- safety: bounded memory, atomic output, overwrite, progress ----------------------------------------


@pytest.mark.parametrize("ext", FORMATS)
def test_labels_are_read_one_plane_at_a_time_with_progress(tmp_path, ext):
    labels = make_labels((3, 2, 16, 12), np.uint16)
    source, calls = PlaneOnly(labels), []
    out = write_labels(
        tmp_path / f"l{ext}", source, axes="TZYX", progress=lambda done, total: calls.append((done, total))
    )
    assert calls == [(i, 6) for i in range(1, 7)]
    assert sorted(source.requests) == [(t, z) for t in range(3) for z in range(2)]
    np.testing.assert_array_equal(load(read_stack(out)), labels)


@pytest.mark.parametrize("ext", FORMATS)
def test_an_interrupted_write_leaves_nothing_behind(tmp_path, ext):
    calls = []
    with pytest.raises(RuntimeError, match="reading plane failed"):
        write_labels(tmp_path / f"l{ext}", PlaneOnly(make_labels(), fail_at=3), progress=lambda *a: calls.append(a))
    assert os.listdir(tmp_path) == []
    assert 2 <= len(calls) <= 3 and calls == [(i, 5) for i in range(1, len(calls) + 1)]  # planes before 3 only


def test_labels_too_large_for_tiff_fail_cleanly(tmp_path):
    labels = make_labels(dtype=np.int64)
    labels[2, 0, 0] = 2**40
    with pytest.raises(ValueError, match=r"Plane \(2,\).*\.ome\.zarr"):
        write_labels(tmp_path / "l.ome.tif", labels)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("ext", FORMATS)
def test_existing_output_is_kept_unless_overwrite(tmp_path, ext):
    out = write_labels(tmp_path / f"l{ext}", make_labels(dtype=np.uint16))
    with pytest.raises(OutputError, match="exists; pass overwrite=True"):
        write_labels(out, make_labels(dtype=np.uint32))
    np.testing.assert_array_equal(load(read_stack(out)), make_labels(dtype=np.uint16))
    new = make_labels(dtype=np.uint32)[:, ::-1]
    write_labels(out, new, overwrite=True)
    stack = read_stack(out)
    assert stack.data.dtype == np.uint32
    np.testing.assert_array_equal(load(stack), new)
    assert os.listdir(tmp_path) == [out.name]


def test_overwrite_replaces_a_folder_with_a_file(tmp_path):
    out = tmp_path / "l.npy"
    (out / "junk").mkdir(parents=True)
    write_labels(out, make_labels(), overwrite=True)
    np.testing.assert_array_equal(np.load(out), make_labels())
    assert os.listdir(tmp_path) == ["l.npy"]


def test_write_labels_argument_errors(tmp_path):
    labels = make_labels()
    with pytest.raises(ValueError, match="names 4 axes but the labels have 3"):
        write_labels(tmp_path / "a.npy", labels, axes="TZYX")
    with pytest.raises(ValueError, match="end with 'YX'"):
        write_labels(tmp_path / "a.npy", labels, axes="YXT")
    with pytest.raises(ValueError, match="at most once"):
        write_labels(tmp_path / "a.npy", labels, axes="QYX")
    with pytest.raises(ValueError, match="integer or bool dtype"):
        write_labels(tmp_path / "a.npy", labels.astype(np.float32))
    with pytest.raises(OutputError, match="does not exist; create it"):
        write_labels(tmp_path / "missing" / "a.npy", labels)
    with pytest.raises(OutputError, match="end the output name with one of"):
        write_labels(tmp_path / "a.png", labels)
    assert os.listdir(tmp_path) == []


# --- reading ----------------------------------------------------------------------------------------------


def test_compressed_tiff_is_read_lazily_through_zarr(tmp_path):
    labels = make_labels()
    tifffile.imwrite(tmp_path / "c.tif", labels, compression="zlib", metadata={"axes": "TYX"})
    stack = read_stack(tmp_path / "c.tif")
    assert isinstance(stack.data, zarr.Array) and not isinstance(stack.data, np.ndarray)
    assert stack.axes == "TYX"
    np.testing.assert_array_equal(stack.data[3], labels[3])
    stack.close()


def test_uncompressed_tiff_and_npy_are_memory_mapped(tmp_path):
    labels = make_labels()
    tifffile.imwrite(tmp_path / "u.tif", labels, imagej=True, metadata={"axes": "ZYX"})
    np.save(tmp_path / "u.npy", labels)
    for name, axes in [("u.tif", "ZYX"), ("u.npy", None)]:
        stack = read_stack(tmp_path / name)
        assert isinstance(stack.data, np.memmap) and stack.axes == axes
        np.testing.assert_array_equal(stack.data, labels)
        with pytest.raises(ValueError):  # read-only
            stack.data[0, 0, 0] = 1


def test_rgb_tiff_samples_become_channels(tmp_path):
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((16, 12, 3), np.uint8), photometric="rgb")
    assert read_stack(tmp_path / "rgb.tif").axes == "YXC"


def new_array(path: Path, shape: tuple[int, ...], dtype) -> zarr.Array:
    """An empty zarr array at ``path`` (zarr 2 and 3 alike)."""
    return zarr.open_array(str(path), mode="w", shape=shape, dtype=dtype)


def test_zarr_group_with_an_array_0_or_without_an_image(tmp_path):
    labels = make_labels()
    zarr.open_group(str(tmp_path / "plain.zarr"), mode="w")
    new_array(tmp_path / "plain.zarr" / "0", SHAPE, labels.dtype)[...] = labels
    stack = read_stack(tmp_path / "plain.zarr")
    assert stack.axes is None
    np.testing.assert_array_equal(stack.data[...], labels)

    zarr.open_group(str(tmp_path / "empty.zarr"), mode="w")
    new_array(tmp_path / "empty.zarr" / "raw", (2, 2), np.uint8)
    with pytest.raises(ImageDataError, match="without an image.*raw"):
        read_stack(tmp_path / "empty.zarr")


@pytest.mark.skipif(int(zarr.__version__.split(".")[0]) < 3, reason="OME-NGFF 0.5 is zarr format 3")
def test_ome_zarr_0_5_level_0(tmp_path):
    labels = make_labels()
    group = zarr.open_group(str(tmp_path / "v05.ome.zarr"), mode="w", zarr_format=3)  # NGFF 0.5: under "ome"
    new_array(tmp_path / "v05.ome.zarr" / "s0", SHAPE, labels.dtype)[...] = labels
    new_array(tmp_path / "v05.ome.zarr" / "s1", (5, 32, 24), labels.dtype)
    axes = [{"name": n, "type": t} for n, t in [("t", "time"), ("y", "space"), ("x", "space")]]
    group.attrs["ome"] = {
        "version": "0.5",
        "multiscales": [{"axes": axes, "datasets": [{"path": "s0"}, {"path": "s1"}]}],
    }
    stack = read_stack(tmp_path / "v05.ome.zarr")
    assert stack.axes == "TYX" and stack.data.shape == SHAPE
    np.testing.assert_array_equal(stack.data[...], labels)


def test_read_stack_errors(tmp_path):
    with pytest.raises(ImageDataError, match="does not exist; check the path"):
        read_stack(tmp_path / "nothing.tif")
    (tmp_path / "movie.avi").write_bytes(b"RIFF")
    with pytest.raises(ImageDataError, match=r"not a supported stack file; use one of .*\.ome\.zarr.*\.tif"):
        read_stack(tmp_path / "movie.avi")
    for name, what in [("bad.tif", "a TIFF file"), ("bad.ome.tiff", "a TIFF file"), ("bad.npy", "a NumPy")]:
        (tmp_path / name).write_bytes(b"this is not an image" * 10)
        with pytest.raises(ImageDataError, match=f"Cannot read .*{name} as {what}.*damaged"):
            read_stack(tmp_path / name)
    truncated = tmp_path / "cut.npy"
    np.save(truncated, make_labels())
    truncated.write_bytes(truncated.read_bytes()[:1000])
    with pytest.raises(ImageDataError, match="Cannot read .*cut.npy"):
        read_stack(truncated)
    (tmp_path / "bad.zarr").mkdir()
    with pytest.raises(ImageDataError, match="Cannot read .*bad.zarr as a zarr array or group"):
        read_stack(tmp_path / "bad.zarr")
