"""Cell Tracking Challenge and GEFF export (engine/io/ctc.py, geff.py, label_scan.py), on real files.

The CTC folders are checked with traccuracy's CTC loader (and its format checks) and CTC metrics; the GEFF
graphs with geff's own validator and reader, and against geff's converter of our CTC export.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from array_helpers import FrameOnly
from napari_sam2.engine.io.ctc import TRACK_FILE, CtcSummary, ctc_mask_name, write_ctc
from napari_sam2.engine.io.geff import write_geff
from napari_sam2.errors import OutputError

SHAPE = (6, 40, 50)  # (t, row, col)

#: object id -> (top-left row, col) of its 6 x 6 square, and the frames it is present in
OBJECTS = {
    1: ((2, 2), range(0, 4)),  # parent: frames 0-3 ...
    2: ((2, 12), range(4, 6)),  # ... divides into 2 and 3 at frame 4
    3: ((12, 2), range(4, 6)),
    5: ((12, 12), [0, 1, 2, 4, 5]),  # gap at frame 3 -> tracks 5 (0-2) and 41 (4-5)
    8: ((22, 22), [0, 2]),  # gaps -> tracks 8 (0) and 42 (2) ...
    9: ((22, 32), range(4, 6)),  # ... and its child 9 links to 42, 8's last segment
    40: ((30, 40), range(0, 6)),  # the largest id: new labels start at 41
}
PARENTS = {2: 1, 3: 1, 9: 8}
EXPECTED_TRACKS = [
    (1, 0, 3, 0),
    (2, 4, 5, 1),
    (3, 4, 5, 1),
    (5, 0, 2, 0),
    (8, 0, 0, 0),
    (9, 4, 5, 42),
    (40, 0, 5, 0),
    (41, 4, 5, 5),
    (42, 2, 2, 8),
]
RELABELLED = {1: [1], 2: [2], 3: [3], 5: [5, 41], 8: [8, 42], 9: [9], 40: [40]}


def make_labels(dtype=np.uint16) -> np.ndarray:
    """The (6, 40, 50) stack of :data:`OBJECTS`: non-overlapping 6 x 6 squares."""
    labels = np.zeros(SHAPE, dtype=dtype)
    for obj, ((row, col), frames) in OBJECTS.items():
        for t in frames:
            labels[t, row : row + 6, col : col + 6] = obj
    return labels


def expected_masks() -> np.ndarray:
    """:func:`make_labels` after relabelling: later segments of 5 and 8 carry 41 and 42."""
    masks = make_labels()
    masks[4:][masks[4:] == 5] = 41
    masks[2][masks[2] == 8] = 42
    return masks


def read_masks(folder: Path, n_frames: int = SHAPE[0]) -> np.ndarray:
    """The mask TIFFs of a CTC result folder as one (T, row, col) array."""
    return np.stack([tifffile.imread(folder / ctc_mask_name(t, n_frames)) for t in range(n_frames)])


def leftovers(parent: Path, keep: set[str]) -> list[str]:
    """Names in ``parent`` other than ``keep`` (temporary or backup folders that were not cleaned up)."""
    return sorted(set(os.listdir(parent)) - keep)


@pytest.fixture
def export(tmp_path) -> CtcSummary:
    return write_ctc(tmp_path / "01_RES", make_labels(), PARENTS)


# --- the files ------------------------------------------------------------------------------------------


def test_layout_track_file_and_summary(export, tmp_path):
    folder = tmp_path / "01_RES"
    assert export.folder == folder
    assert sorted(os.listdir(folder)) == [f"mask{t:03d}.tif" for t in range(6)] + [TRACK_FILE]
    assert leftovers(tmp_path, {"01_RES"}) == []
    lines = (folder / TRACK_FILE).read_text().splitlines()
    assert [tuple(int(v) for v in line.split(" ")) for line in lines] == EXPECTED_TRACKS
    assert export.tracks == EXPECTED_TRACKS
    assert export.relabelled == RELABELLED


def test_masks_are_uint16_and_equal_the_relabelled_input(export):
    masks = read_masks(export.folder)
    assert masks.dtype == np.uint16
    np.testing.assert_array_equal(masks, expected_masks())
    with tifffile.TiffFile(export.folder / "mask000.tif") as tif:
        assert tif.pages[0].compression == tifffile.COMPRESSION.ADOBE_DEFLATE


def test_uncompressed_masks_and_other_input_dtypes(tmp_path):
    summary = write_ctc(tmp_path / "res", make_labels(np.int64), PARENTS, compression=None)
    with tifffile.TiffFile(summary.folder / "mask003.tif") as tif:
        assert tif.pages[0].compression == tifffile.COMPRESSION.NONE
    np.testing.assert_array_equal(read_masks(summary.folder), expected_masks())
    assert summary.tracks == EXPECTED_TRACKS


def test_mask_names_have_four_digits_above_1000_frames():
    assert ctc_mask_name(7, 6) == "mask007.tif"
    assert ctc_mask_name(999, 1000) == "mask999.tif"
    assert ctc_mask_name(7, 1001) == "mask0007.tif"
    assert ctc_mask_name(1000, 1001) == "mask1000.tif"


def test_progress_counts_both_passes(tmp_path):
    calls = []
    write_ctc(tmp_path / "res", make_labels(), PARENTS, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(i, 12) for i in range(1, 13)]


def test_gap_labels_start_above_every_id_in_use(tmp_path):
    labels = np.zeros((3, 4, 4), np.uint8)
    labels[0, 0, 0] = labels[2, 0, 0] = 3  # 3 has a gap
    labels[:, 3, 3] = 200
    summary = write_ctc(tmp_path / "res", labels)
    assert summary.tracks == [(3, 0, 0, 0), (200, 0, 2, 0), (201, 2, 2, 3)]
    assert read_masks(summary.folder, 3)[2, 0, 0] == 201


# --- traccuracy -----------------------------------------------------------------------------------------


@pytest.fixture
def loaded(export):
    from traccuracy import loaders

    return loaders.load_ctc_data(str(export.folder), track_path=str(export.folder / TRACK_FILE), run_checks=True)


def test_traccuracy_graph_has_one_node_per_object_and_frame(loaded):
    labels = expected_masks()
    expected = {f"{label}_{t}" for t in range(SHAPE[0]) for label in np.unique(labels[t]) if label}
    assert set(loaded.graph.nodes) == expected
    assert sum(len(frames) for _, frames in OBJECTS.values()) == loaded.graph.number_of_nodes()
    for node, data in loaded.graph.nodes(data=True):
        label, t = (int(v) for v in node.split("_"))
        assert (data["segmentation_id"], data["t"]) == (label, t)


def test_traccuracy_sees_the_division(loaded):
    graph = loaded.graph
    assert set(graph.successors("1_3")) == {"2_4", "3_4"}
    assert set(graph.predecessors("2_4")) == set(graph.predecessors("3_4")) == {"1_3"}
    assert loaded.get_divisions() == ["1_3"]


def test_traccuracy_sees_gaps_as_linked_tracks(loaded):
    graph = loaded.graph
    assert list(graph.successors("5_2")) == ["41_4"]  # 5 absent at frame 3: track 5 -> track 41
    assert list(graph.successors("8_0")) == ["42_2"]
    assert list(graph.successors("42_2")) == ["9_4"]  # 8's child hangs off 8's last segment
    assert "5_3" not in graph and "41_3" not in graph


def test_traccuracy_track_begin_and_end_frames(loaded):
    frames: dict[int, list[int]] = {}
    for _, data in loaded.graph.nodes(data=True):
        frames.setdefault(data["segmentation_id"], []).append(data["t"])
    for label, first, last, _ in EXPECTED_TRACKS:
        assert sorted(frames[label]) == list(range(first, last + 1)), label


def test_ctc_metrics_score_the_export_and_see_a_missing_division(export, loaded, tmp_path):
    """traccuracy's CTC metrics read the export as a prediction: perfect against itself, and lower once the
    division link of one daughter is dropped from res_track.txt (so the files carry the lineage)."""
    import shutil

    import traccuracy
    from traccuracy.loaders import load_ctc_data
    from traccuracy.matchers import CTCMatcher
    from traccuracy.metrics import CTCMetrics

    def scores(folder):
        pred = load_ctc_data(str(folder), track_path=str(folder / TRACK_FILE))
        results, _ = traccuracy.run_metrics(gt_data=loaded, pred_data=pred, matcher=CTCMatcher(),
                                            metrics=[CTCMetrics()])
        return results[0]["results"]

    same = scores(export.folder)
    assert same["TRA"] == 1.0 and same["DET"] == 1.0 and same["AOGM"] == 0
    broken = shutil.copytree(export.folder, tmp_path / "broken")
    lines = (broken / TRACK_FILE).read_text().splitlines()
    assert lines[1] == "2 4 5 1"
    (broken / TRACK_FILE).write_text("\n".join([lines[0], "2 4 5 0", *lines[2:]]) + "\n")
    worse = scores(broken)
    assert worse["TRA"] < 1.0 and worse["DET"] == 1.0 and worse["AOGM"] > 0


# --- refusals -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parents", "words"),
    [
        ({2: 1, 3: 1, 9: 77}, ["9", "77", "never appears"]),  # parent never appears
        ({2: 1, 3: 1, 1: 40}, ["1", "40", "frame 0", "frame 5"]),  # parent present until after the child starts
        ({5: 2}, ["5", "2", "frame 0", "frame 5"]),  # parent appears after the child
    ],
)
def test_bad_lineage_raises_and_writes_nothing(tmp_path, parents, words):
    with pytest.raises(ValueError, match="lineage") as info:
        write_ctc(tmp_path / "res", make_labels(), parents)
    for word in words:
        assert word in str(info.value)
    assert os.listdir(tmp_path) == []


def test_lineage_of_absent_children_is_ignored(tmp_path):
    summary = write_ctc(tmp_path / "res", make_labels(), {**PARENTS, 100: 1, 101: 0})
    assert summary.tracks == EXPECTED_TRACKS


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        (np.zeros((2, 3), np.uint16), "shape"),
        (np.zeros((0, 3, 3), np.uint16), "no frames"),
        (np.zeros((2, 3, 3), np.float32), "integer dtype"),
        (np.full((2, 3, 3), -1, np.int32), "negative"),
        (np.full((2, 3, 3), 70_000, np.uint32), "70000"),
    ],
)
def test_unusable_labels_raise_and_write_nothing(tmp_path, labels, match):
    with pytest.raises(ValueError, match=match):
        write_ctc(tmp_path / "res", labels)
    assert os.listdir(tmp_path) == []


def test_gap_labels_beyond_uint16_raise(tmp_path):
    labels = np.zeros((3, 4, 4), np.uint16)
    labels[0, 0, 0] = labels[2, 0, 0] = 65535  # the gap would need label 65536
    with pytest.raises(ValueError, match="65536"):
        write_ctc(tmp_path / "res", labels)
    assert os.listdir(tmp_path) == []


def test_existing_folder_is_refused_then_replaced_with_overwrite(tmp_path):
    folder = tmp_path / "res"
    folder.mkdir()
    (folder / "old.txt").write_text("keep me")
    with pytest.raises(OutputError, match="overwrite"):
        write_ctc(folder, make_labels(), PARENTS)
    assert os.listdir(folder) == ["old.txt"]
    summary = write_ctc(folder, make_labels(), PARENTS, overwrite=True)
    assert "old.txt" not in os.listdir(folder) and (folder / TRACK_FILE).is_file()
    assert summary.tracks == EXPECTED_TRACKS
    assert leftovers(tmp_path, {"res"}) == []


def test_existing_empty_folder_is_used(tmp_path):
    folder = tmp_path / "res"
    folder.mkdir()
    write_ctc(folder, make_labels(), PARENTS)
    np.testing.assert_array_equal(read_masks(folder), expected_masks())


def test_missing_parent_folder_is_refused(tmp_path):
    with pytest.raises(OutputError, match="does not exist"):
        write_ctc(tmp_path / "nowhere" / "res", make_labels())


def test_failure_while_writing_leaves_nothing(tmp_path):
    class Failing(FrameOnly):
        def __getitem__(self, index):
            if len(self.requests) == SHAPE[0] + 2:  # third frame of the writing pass
                raise RuntimeError("disk gone")
            return super().__getitem__(index)

    with pytest.raises(RuntimeError, match="disk gone"):
        write_ctc(tmp_path / "res", Failing(make_labels()), PARENTS)
    assert os.listdir(tmp_path) == []


# --- lazy input -----------------------------------------------------------------------------------------


def test_zarr_input_is_read_frame_by_frame(tmp_path):
    data = make_labels(np.uint32)
    store = zarr.open(str(tmp_path / "labels.zarr"), mode="w", shape=data.shape, chunks=(1, 40, 50), dtype=data.dtype)
    store[:] = data
    lazy = FrameOnly(zarr.open(str(tmp_path / "labels.zarr"), mode="r"))
    summary = write_ctc(tmp_path / "res", lazy, PARENTS)
    assert lazy.requests == list(range(6)) * 2  # one pass to find the tracks, one to write
    assert summary.tracks == EXPECTED_TRACKS
    np.testing.assert_array_equal(read_masks(summary.folder), expected_masks())


def test_3d_frames(tmp_path):
    labels = np.zeros((3, 2, 5, 5), np.uint16)
    labels[0, 0, 1:3, 1:3] = labels[2, 1, 1:3, 1:3] = 4  # gap at frame 1
    summary = write_ctc(tmp_path / "res", labels)
    assert summary.tracks == [(4, 0, 0, 0), (5, 2, 2, 4)]
    masks = read_masks(summary.folder, 3)
    assert masks.shape == (3, 2, 5, 5) and masks[2, 1, 1, 1] == 5


# --- GEFF -----------------------------------------------------------------------------------------------


@pytest.fixture
def geff_graph(tmp_path):
    """(networkx graph, metadata) of the GEFF of :func:`make_labels`, read back with all of geff's checks."""
    import geff
    from geff.validate.data import ValidationConfig

    path = write_geff(tmp_path / "tracks.geff", make_labels(), PARENTS)
    assert path == tmp_path / "tracks.geff"
    geff.validate_structure(str(path))
    return geff.read(str(path), data_validation=ValidationConfig(graph=True, lineage=True))


def node_index(graph) -> dict[tuple[int, int], int]:
    """(object id, frame) -> node id."""
    return {(data["label"], data["t"]): node for node, data in graph.nodes(data=True)}


def test_geff_nodes_are_objects_per_frame_with_centroid_area_and_label(geff_graph):
    graph, meta = geff_graph
    assert meta.directed and [(a.name, a.type) for a in meta.axes] == [("t", "time"), ("y", "space"), ("x", "space")]
    assert meta.track_node_props == {"lineage": "lineage_id"}
    expected = {(obj, t): corner for obj, (corner, frames) in OBJECTS.items() for t in frames}
    assert set(node_index(graph)) == set(expected)
    assert sorted(graph.nodes) == list(range(len(expected)))
    for _, data in graph.nodes(data=True):
        row, col = expected[data["label"], data["t"]]
        assert (data["y"], data["x"], data["area"]) == (row + 2.5, col + 2.5, 36)


def test_geff_edges_follow_objects_across_gaps_and_divisions(geff_graph):
    graph, _ = geff_graph
    node = node_index(graph)
    edges = {
        (graph.nodes[a]["label"], graph.nodes[a]["t"], graph.nodes[b]["label"], graph.nodes[b]["t"])
        for a, b in graph.edges
    }
    within = {(obj, a, obj, b) for obj, (_, frames) in OBJECTS.items() for a, b in zip(list(frames), list(frames)[1:])}
    divisions = {(1, 3, 2, 4), (1, 3, 3, 4), (8, 2, 9, 4)}
    assert edges == within | divisions
    assert (5, 2, 5, 4) in edges  # the gap is bridged by one edge, no relabelling
    assert set(graph.successors(node[1, 3])) == {node[2, 4], node[3, 4]}
    lineage = {data["label"]: data["lineage_id"] for _, data in graph.nodes(data=True)}
    assert lineage == {1: 1, 2: 1, 3: 1, 5: 5, 8: 8, 9: 8, 40: 40}


def test_geff_matches_geffs_own_conversion_of_our_ctc_export(tmp_path, geff_graph):
    import geff
    from geff.convert import from_ctc_to_geff

    summary = write_ctc(tmp_path / "res", make_labels(), PARENTS)
    from_ctc_to_geff(summary.folder, tmp_path / "converted.geff")
    converted, _ = geff.read(str(tmp_path / "converted.geff"))
    object_of = {label: obj for obj, labels in summary.relabelled.items() for label in labels}

    def keyed(graph, label_key):
        key = {n: (object_of.get(d[label_key], d[label_key]), d["t"]) for n, d in graph.nodes(data=True)}
        return set(key.values()), {(key[a], key[b]) for a, b in graph.edges}

    ours, _ = geff_graph
    assert keyed(converted, "tracklet_id") == keyed(ours, "label")


def test_geff_3d_frames_and_empty_stack(tmp_path):
    import geff
    labels = np.zeros((2, 3, 4, 5), np.uint32)
    labels[:, 1, 2:4, 0:2] = 7
    graph, meta = geff.read(str(write_geff(tmp_path / "3d.geff", labels)))
    assert [a.name for a in meta.axes] == ["t", "z", "y", "x"]
    assert [(d["z"], d["y"], d["x"], d["area"]) for _, d in graph.nodes(data=True)] == [(1.0, 2.5, 0.5, 4)] * 2
    assert list(graph.edges) == [(0, 1)]
    empty = write_geff(tmp_path / "empty.geff", np.zeros((2, 3, 3), np.uint8))
    geff.validate_structure(str(empty))
    assert geff.read(str(empty))[0].number_of_nodes() == 0


def test_geff_large_ids_are_kept(tmp_path):
    import geff
    labels = np.zeros((2, 3, 3), np.uint64)
    labels[:, 0, 0] = 2**40 + 1
    graph, _ = geff.read(str(write_geff(tmp_path / "big.geff", labels)))
    assert [d["label"] for _, d in graph.nodes(data=True)] == [2**40 + 1] * 2


def test_geff_reads_frame_by_frame_and_refuses_like_ctc(tmp_path):
    import geff  # noqa: F401 (the test needs it installed)
    lazy = FrameOnly(make_labels())
    write_geff(tmp_path / "a.geff", lazy, PARENTS)
    assert lazy.requests == list(range(6))
    with pytest.raises(OutputError, match="overwrite"):
        write_geff(tmp_path / "a.geff", make_labels(), PARENTS)
    write_geff(tmp_path / "a.geff", make_labels(), {}, overwrite=True)
    with pytest.raises(ValueError, match="never appears"):
        write_geff(tmp_path / "b.geff", make_labels(), {9: 77})
    assert leftovers(tmp_path, {"a.geff"}) == []
