"""TrackMate XML export (engine/io/trackmate.py), on real files.

Fiji cannot run here, so the file is parsed back with xml.etree and checked twice: against the elements and
attributes TrackMate's reader (``TmXmlReader`` of TrackMate 7/8) looks up -- a missing one makes it fail or
log errors -- and as a graph, which must equal the graph of the CTC export of the same labels (read from
``res_track.txt`` and the mask TIFFs) and the GEFF export (read with the ``geff`` package).
"""

from __future__ import annotations

import json
import math
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import tifffile

from array_helpers import FrameOnly
from napari_sam2.engine.io.ctc import TRACK_FILE, ctc_mask_name, write_ctc
from napari_sam2.engine.io.geff import write_geff
from napari_sam2.engine.io.trackmate import write_trackmate
from napari_sam2.errors import LabelFormatError, OutputError

SHAPE = (7, 40, 50)  # (t, row, col)

#: object id -> (top-left row, col, height, width) of its rectangle, and the frames it is present in
OBJECTS = {
    1: ((2, 2, 5, 7), range(0, 4)),  # parent: frames 0-3 ...
    2: ((2, 12, 4, 4), range(4, 7)),  # ... divides into 2 and 3 at frame 4
    3: ((12, 2, 6, 3), [4, 6]),  # a daughter with a gap
    5: ((12, 12, 3, 3), [0, 1, 2, 4, 5]),  # gap at frame 3
    8: ((22, 22, 2, 5), [0, 2]),  # gaps ...
    9: ((22, 32, 5, 5), range(4, 7)),  # ... and its only child 9 starts after 8's last frame
    12: ((30, 2, 4, 4), [3]),  # seen once, never linked: a lone spot, in no track
    40: ((30, 38, 7, 6), range(0, 7)),  # moves right by a column per frame
}
PARENTS = {2: 1, 3: 1, 9: 8}
#: (object, frame) -> (object, frame) links: within objects (across gaps) and parent -> daughter
EDGES = {
    ((1, 0), (1, 1)), ((1, 1), (1, 2)), ((1, 2), (1, 3)), ((1, 3), (2, 4)), ((1, 3), (3, 4)),
    ((2, 4), (2, 5)), ((2, 5), (2, 6)), ((3, 4), (3, 6)),
    ((5, 0), (5, 1)), ((5, 1), (5, 2)), ((5, 2), (5, 4)), ((5, 4), (5, 5)),
    ((8, 0), (8, 2)), ((8, 2), (9, 4)), ((9, 4), (9, 5)), ((9, 5), (9, 6)),
    *(((40, t), (40, t + 1)) for t in range(6)),
}

#: TrackMate's ``Dimension`` enum: a feature's dimension must be one of these (``Dimension.valueOf``).
DIMENSIONS = {"NONE", "QUALITY", "COST", "INTENSITY", "INTENSITY_SQUARED", "POSITION", "VELOCITY", "LENGTH",
              "AREA", "VOLUME", "TIME", "ANGLE", "RATE", "ANGLE_RATE", "STRING"}
#: A number as Java's ``Double.valueOf`` / ``Integer.parseInt`` read it.
JAVA_DOUBLE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
JAVA_INT = re.compile(r"^[+-]?\d+$")


def make_labels(dtype=np.uint16) -> np.ndarray:
    """The (7, 40, 50) stack of :data:`OBJECTS`: non-overlapping rectangles (object 40 moves right)."""
    labels = np.zeros(SHAPE, dtype=dtype)
    for obj, ((row, col, h, w), frames) in OBJECTS.items():
        for t in frames:
            shift = t if obj == 40 else 0
            labels[t, row : row + h, col + shift : col + shift + w] = obj
    return labels


# --- reading a TrackMate file back ----------------------------------------------------------------------


def check_structure(path: Path) -> ET.Element:
    """Assert that ``path`` holds every element and attribute TrackMate's reader needs; return the root.

    Mirrors what ``TmXmlReader`` reads: the version (>= 2.1.0 for the loader), the model's units and feature
    declarations (feature, name, shortname, dimension of the enum, isint), spots with integer ids and numeric
    declared features, tracks with integer ids whose edges name existing spots, the filtered track ids, the
    settings children it dereferences without a null check, the GUI state and the display settings JSON.
    """
    root = ET.parse(path).getroot()
    assert root.tag == "TrackMate"
    assert tuple(int(v) for v in root.attrib["version"].split(".")) >= (2, 1, 0)
    assert [child.tag for child in root] == ["Model", "Settings", "GUIState", "DisplaySettings"]
    model = root.find("Model")
    assert model.attrib.keys() == {"spatialunits", "timeunits"}
    declared = {}
    for group in ("SpotFeatures", "EdgeFeatures", "TrackFeatures"):
        features = model.findall(f"FeatureDeclarations/{group}/Feature")
        for feature in features:
            assert feature.attrib.keys() == {"feature", "name", "shortname", "dimension", "isint"}
            assert feature.get("dimension") in DIMENSIONS and feature.get("isint") in ("true", "false")
        declared[group] = {f.get("feature"): f.get("isint") == "true" for f in features}
    assert {"POSITION_X", "POSITION_Y", "POSITION_Z", "POSITION_T", "FRAME", "RADIUS", "QUALITY",
            "VISIBILITY"} <= declared["SpotFeatures"].keys()
    assert {"SPOT_SOURCE_ID", "SPOT_TARGET_ID"} <= declared["EdgeFeatures"].keys()
    assert {"TRACK_ID", "TRACK_INDEX"} <= declared["TrackFeatures"].keys()

    def numeric(element: ET.Element, features: dict[str, bool], skip: set[str]) -> None:
        for key, value in element.attrib.items():
            if key in skip:
                continue
            assert key in features, f"{element.tag} attribute {key} is not a declared feature"
            assert (JAVA_INT if features[key] else JAVA_DOUBLE).match(value), f"{key}={value!r}"

    spots = model.findall("AllSpots/SpotsInFrame/Spot")
    assert int(model.find("AllSpots").get("nspots")) == len(spots)
    for in_frame in model.findall("AllSpots/SpotsInFrame"):
        assert JAVA_INT.match(in_frame.get("frame"))
        for spot in in_frame.findall("Spot"):
            assert JAVA_INT.match(spot.get("ID")) and spot.get("name")
            assert {"POSITION_X", "POSITION_Y", "POSITION_Z", "POSITION_T", "FRAME", "RADIUS", "QUALITY",
                    "VISIBILITY"} <= spot.attrib.keys()
            assert spot.get("FRAME") == in_frame.get("frame")
            numeric(spot, declared["SpotFeatures"], {"ID", "name"})
    spot_ids = [int(spot.get("ID")) for spot in spots]
    assert len(set(spot_ids)) == len(spot_ids)
    track_ids = []
    for track in model.findall("AllTracks/Track"):
        assert track.get("name") and JAVA_INT.match(track.get("TRACK_ID"))
        numeric(track, declared["TrackFeatures"], {"name"})
        track_ids.append(int(track.get("TRACK_ID")))
        assert track.findall("Edge"), "TrackMate never writes a track without edges"
        for edge in track.findall("Edge"):
            source, target = int(edge.get("SPOT_SOURCE_ID")), int(edge.get("SPOT_TARGET_ID"))
            assert source in spot_ids and target in spot_ids and source != target
            numeric(edge, declared["EdgeFeatures"], set())
    assert len(set(track_ids)) == len(track_ids)
    assert {int(e.get("TRACK_ID")) for e in model.findall("FilteredTracks/TrackID")} <= set(track_ids)

    settings = root.find("Settings")
    image = settings.find("ImageData")
    assert {"filename", "folder", "width", "height", "nslices", "nframes", "pixelwidth", "pixelheight",
            "voxeldepth", "timeinterval"} <= image.attrib.keys()
    assert {"xstart", "xend", "ystart", "yend", "zstart", "zend", "tstart", "tend"} <= \
        settings.find("BasicSettings").attrib.keys()
    detector = settings.find("DetectorSettings")
    assert detector.get("DETECTOR_NAME") == "MANUAL_DETECTOR" and JAVA_DOUBLE.match(detector.get("RADIUS"))
    assert settings.find("InitialSpotFilter").attrib.keys() == {"feature", "value", "isabove"}
    assert settings.find("TrackerSettings").get("TRACKER_NAME") == "MANUAL_TRACKER"
    for tag in ("SpotFilterCollection", "TrackFilterCollection", "AnalyzerCollection/SpotAnalyzers",
                "AnalyzerCollection/EdgeAnalyzers", "AnalyzerCollection/TrackAnalyzers"):
        assert settings.find(tag) is not None, tag
    assert root.find("GUIState").get("state")
    assert isinstance(json.loads(root.find("DisplaySettings").text), dict)
    return root


def read_trackmate(path: Path) -> dict:
    """The graph of a TrackMate file: spots (id -> attributes as floats), edges, tracks (name -> edges)."""
    root = check_structure(path)
    spots = {int(s.get("ID")): {k: float(v) for k, v in s.attrib.items() if k != "name"}
             for s in root.iter("Spot")}
    tracks = {t.get("name"): {(int(e.get("SPOT_SOURCE_ID")), int(e.get("SPOT_TARGET_ID"))) for e in t.iter("Edge")}
              for t in root.iter("Track")}
    return {"root": root, "spots": spots, "edges": set().union(*tracks.values()), "tracks": tracks}


def centroid_key(t: float, row: float, col: float) -> tuple:
    """A node as (frame, row, col) of its centroid, rounded so that differently summed means compare equal."""
    return int(t), round(float(row), 9), round(float(col), 9)


def trackmate_graph(path: Path) -> tuple[dict, set, set]:
    """(node key -> area, edges, tracks as frozensets of node keys) of a 2-D TrackMate file in pixel units."""
    tm = read_trackmate(path)
    key = {i: centroid_key(s["FRAME"], s["POSITION_Y"], s["POSITION_X"]) for i, s in tm["spots"].items()}
    nodes = {key[i]: s["AREA"] for i, s in tm["spots"].items()}
    edges = {(key[a], key[b]) for a, b in tm["edges"]}
    tracks = {frozenset(key[n] for edge in track for n in edge) for track in tm["tracks"].values()}
    return nodes, edges, tracks


def ctc_graph(folder: Path, n_frames: int) -> tuple[dict, set, set]:
    """The same triple from a CTC result folder: nodes from the masks, links from ``res_track.txt``
    (a track's consecutive frames, and a parent's last frame to a child's first), trees from the parents."""
    masks = [tifffile.imread(folder / ctc_mask_name(t, n_frames)) for t in range(n_frames)]
    nodes, key = {}, {}
    for t, mask in enumerate(masks):
        for label in np.unique(mask[mask > 0]).tolist():
            rows, cols = np.nonzero(mask == label)
            key[label, t] = centroid_key(t, rows.mean(), cols.mean())
            nodes[key[label, t]] = float(rows.size)
    lines = [tuple(int(v) for v in line.split()) for line in (folder / TRACK_FILE).read_text().splitlines()]
    span = {label: (first, last) for label, first, last, _ in lines}
    edges = set()
    for label, first, last, parent in lines:
        edges |= {(key[label, t], key[label, t + 1]) for t in range(first, last)}
        if parent:
            edges.add((key[parent, span[parent][1]], key[label, first]))
    return nodes, edges, _trees(edges)


def _trees(edges: set) -> set:
    """Connected components (with at least one edge) of ``edges``, as frozensets of nodes."""
    component: dict = {}
    for a, b in edges:
        merged = component.get(a, {a}) | component.get(b, {b})
        for node in merged:
            component[node] = merged
    return {frozenset(nodes) for nodes in component.values()}


@pytest.fixture
def export(tmp_path) -> Path:
    path = write_trackmate(tmp_path / "tracks.xml", make_labels(), PARENTS)
    assert path == tmp_path / "tracks.xml"
    return path


# --- structure and content ------------------------------------------------------------------------------


def test_spots_are_objects_per_frame_with_centroid_radius_and_area(export):
    tm = read_trackmate(export)
    assert tm["root"].find("Model").attrib == {"spatialunits": "pixel", "timeunits": "frame"}
    expected = {(obj, t) for obj, (_, frames) in OBJECTS.items() for t in frames}
    got = {(int(s["LABEL"]), int(s["FRAME"])): s for s in tm["spots"].values()}
    assert got.keys() == expected and sorted(tm["spots"]) == list(range(len(expected)))
    for (obj, t), spot in got.items():
        (row, col, h, w), _ = OBJECTS[obj]
        col += t if obj == 40 else 0
        assert (spot["POSITION_Y"], spot["POSITION_X"], spot["POSITION_Z"]) == (row + (h - 1) / 2,
                                                                               col + (w - 1) / 2, 0.0)
        assert spot["AREA"] == h * w and spot["RADIUS"] == pytest.approx(math.sqrt(h * w / math.pi))
        assert spot["POSITION_T"] == t and spot["QUALITY"] == 1 and spot["VISIBILITY"] == 1
    frames = [int(f.get("frame")) for f in tm["root"].iter("SpotsInFrame")]
    assert frames == list(range(SHAPE[0]))


def test_edges_follow_objects_across_gaps_and_divisions(export):
    tm = read_trackmate(export)
    node = {i: (int(s["LABEL"]), int(s["FRAME"])) for i, s in tm["spots"].items()}
    assert {(node[a], node[b]) for a, b in tm["edges"]} == EDGES
    assert all(tm["spots"][a]["FRAME"] < tm["spots"][b]["FRAME"] for a, b in tm["edges"])  # source first


def test_one_track_per_lineage_tree_daughters_included(export):
    tm = read_trackmate(export)
    node = {i: (int(s["LABEL"]), int(s["FRAME"])) for i, s in tm["spots"].items()}
    objects = {name: {node[n][0] for edge in edges for n in edge} for name, edges in tm["tracks"].items()}
    assert objects == {"Track_1": {1, 2, 3}, "Track_5": {5}, "Track_8": {8, 9}, "Track_40": {40}}  # 12: lone
    tracks = {t.get("name"): t.attrib for t in tm["root"].iter("Track")}
    assert [tracks[n]["TRACK_ID"] for n in ("Track_1", "Track_5", "Track_8", "Track_40")] == ["0", "1", "2", "3"]
    assert tracks["Track_1"]["NUMBER_SPLITS"] == "1" and tracks["Track_8"]["NUMBER_SPLITS"] == "0"
    assert (tracks["Track_1"]["NUMBER_SPOTS"], tracks["Track_1"]["TRACK_START"],
            tracks["Track_1"]["TRACK_STOP"]) == ("9", "0.0", "6.0")
    filtered = [e.get("TRACK_ID") for e in tm["root"].iter("TrackID")]
    assert filtered == ["0", "1", "2", "3"]  # every track visible
    assert _trees(tm["edges"]) == {frozenset(e for edge in edges for e in edge) for edges in tm["tracks"].values()}


def test_same_graph_as_the_ctc_export(export, tmp_path):
    """Nodes (centroid and area per frame), links and lineage trees equal those of the CTC export, which
    splits gaps into linked tracks; matched by centroid, not by id."""
    write_ctc(tmp_path / "01_RES", make_labels(), PARENTS)
    nodes, edges, tracks = trackmate_graph(export)
    assert (nodes, edges, tracks) == ctc_graph(tmp_path / "01_RES", SHAPE[0])
    assert len(edges) == len(EDGES)


def test_traccuracy_loads_the_ctc_export_of_the_same_labels(export, tmp_path):
    from traccuracy import loaders

    summary = write_ctc(tmp_path / "01_RES", make_labels(), PARENTS)
    loaded = loaders.load_ctc_data(str(summary.folder), track_path=str(summary.folder / TRACK_FILE),
                                   run_checks=True)
    _, edges, _ = trackmate_graph(export)
    assert loaded.graph.number_of_edges() == len(edges)
    assert loaded.graph.number_of_nodes() == len(read_trackmate(export)["spots"])


def test_agrees_with_the_geff_export(export, tmp_path):
    import geff

    graph, _ = geff.read(str(write_geff(tmp_path / "tracks.geff", make_labels(), PARENTS)))
    key = {n: centroid_key(d["t"], d["y"], d["x"]) for n, d in graph.nodes(data=True)}
    nodes, edges, _ = trackmate_graph(export)
    assert nodes == {key[n]: float(d["area"]) for n, d in graph.nodes(data=True)}
    assert edges == {(key[a], key[b]) for a, b in graph.edges}
    tm = read_trackmate(export)
    lineage = {int(s["LABEL"]): int(s["LABEL"]) for s in tm["spots"].values()}
    for _, d in graph.nodes(data=True):
        lineage[int(d["label"])] = int(d["lineage_id"])
    names = {int(name.split("_")[1]) for name in tm["tracks"]}
    assert names == {root for obj, root in lineage.items() if obj != 12}  # a track per linked lineage root


def test_3d_frames(tmp_path):
    """(T, Z, row, col): POSITION_Z is the plane, VOLUME the voxel count, RADIUS that of the ball; the graph
    agrees with the GEFF and CTC exports of the same stack."""
    import geff

    labels = np.zeros((4, 5, 12, 14), np.uint32)
    labels[0:2, 1:3, 2:5, 2:6] = 7  # 2 x 3 x 4 = 24 voxels
    labels[2:4, 0:2, 2:4, 2:4] = 8
    labels[2:4, 3:5, 7:10, 8:12] = 9
    labels[3, 4, 0, 0] = 11
    path = write_trackmate(tmp_path / "3d.xml", labels, {8: 7, 9: 7})
    tm = read_trackmate(path)
    first = next(s for s in tm["spots"].values() if s["LABEL"] == 7 and s["FRAME"] == 0)
    assert (first["POSITION_Z"], first["POSITION_Y"], first["POSITION_X"]) == (1.5, 3.0, 3.5)
    assert first["VOLUME"] == 24 and first["RADIUS"] == pytest.approx((3 * 24 / (4 * math.pi)) ** (1 / 3))
    assert tm["root"].find("Settings/ImageData").get("nslices") == "5"
    assert set(tm["tracks"]) == {"Track_7"} and len(tm["edges"]) == 5

    def key(t, z, y, x):
        return int(t), round(float(z), 9), round(float(y), 9), round(float(x), 9)

    spot_key = {i: key(s["FRAME"], s["POSITION_Z"], s["POSITION_Y"], s["POSITION_X"]) for i, s in tm["spots"].items()}
    graph, _ = geff.read(str(write_geff(tmp_path / "3d.geff", labels, {8: 7, 9: 7})))
    geff_key = {n: key(d["t"], d["z"], d["y"], d["x"]) for n, d in graph.nodes(data=True)}
    assert {(spot_key[a], spot_key[b]) for a, b in tm["edges"]} == {(geff_key[a], geff_key[b]) for a, b in graph.edges}
    assert set(spot_key.values()) == set(geff_key.values())
    summary = write_ctc(tmp_path / "RES", labels, {8: 7, 9: 7})
    assert len(summary.tracks) == 4 and sum(last - first for _, first, last, _ in summary.tracks) + 2 == 5


def test_pixel_size_frame_interval_units_and_image(tmp_path):
    labels = make_labels()
    image = tmp_path / "movie.tif"
    path = write_trackmate(tmp_path / "um.xml", labels, PARENTS, pixel_size=(0.5, 0.25), frame_interval=2.5,
                           time_unit="min", image=image)
    pixels = read_trackmate(write_trackmate(tmp_path / "px.xml", labels, PARENTS))["spots"]
    tm = read_trackmate(path)
    assert tm["root"].find("Model").attrib == {"spatialunits": "µm", "timeunits": "min"}
    for i, spot in tm["spots"].items():
        px = pixels[i]
        assert (spot["POSITION_Y"], spot["POSITION_X"]) == (px["POSITION_Y"] * 0.5, px["POSITION_X"] * 0.25)
        assert spot["AREA"] == px["AREA"] * 0.125 and spot["RADIUS"] == pytest.approx(math.sqrt(spot["AREA"] / math.pi))
        assert spot["POSITION_T"] == px["FRAME"] * 2.5
    data = tm["root"].find("Settings/ImageData").attrib
    assert (data["filename"], Path(data["folder"])) == ("movie.tif", tmp_path.resolve())
    assert (data["pixelheight"], data["pixelwidth"], data["timeinterval"]) == ("0.5", "0.25", "2.5")
    assert (data["width"], data["height"], data["nframes"]) == ("50", "40", "7")
    for bad in ({"pixel_size": 0}, {"pixel_size": (1, 2, 3)}, {"pixel_size": float("nan")},
                {"frame_interval": 0}):
        with pytest.raises(OutputError):
            write_trackmate(tmp_path / "bad.xml", labels, **bad)
    assert not (tmp_path / "bad.xml").exists()


def test_empty_stack(tmp_path):
    path = write_trackmate(tmp_path / "empty.xml", np.zeros((3, 5, 6), np.uint8))
    tm = read_trackmate(path)
    assert tm["spots"] == {} and tm["tracks"] == {}
    assert tm["root"].find("Model/AllSpots").get("nspots") == "0"
    assert [f.get("frame") for f in tm["root"].iter("SpotsInFrame")] == ["0", "1", "2"]


# --- refusals and atomic writing ------------------------------------------------------------------------


def test_reads_frame_by_frame_once_and_reports_progress(tmp_path, export):
    lazy = FrameOnly(make_labels())
    calls = []
    path = write_trackmate(tmp_path / "lazy.xml", lazy, PARENTS, progress=lambda d, n: calls.append((d, n)))
    assert lazy.requests == list(range(SHAPE[0]))
    assert calls == [(t + 1, SHAPE[0]) for t in range(SHAPE[0])]
    assert path.read_bytes() == export.read_bytes()


def test_existing_file_is_refused_then_replaced_with_overwrite(tmp_path):
    path = tmp_path / "tracks.xml"
    path.write_text("keep me")
    with pytest.raises(OutputError, match="overwrite=True"):
        write_trackmate(path, make_labels(), PARENTS)
    assert path.read_text() == "keep me"
    write_trackmate(path, make_labels(), PARENTS, overwrite=True)
    check_structure(path)
    assert sorted(os.listdir(tmp_path)) == ["tracks.xml"]  # no temporary or backup file left


def test_folder_missing_parent_and_bad_input_are_refused(tmp_path):
    (tmp_path / "dir.xml").mkdir()
    with pytest.raises(OutputError, match="is a folder"):
        write_trackmate(tmp_path / "dir.xml", make_labels(), overwrite=True)
    with pytest.raises(OutputError, match="does not exist"):
        write_trackmate(tmp_path / "missing" / "t.xml", make_labels())
    with pytest.raises(LabelFormatError, match="never appears"):
        write_trackmate(tmp_path / "t.xml", make_labels(), {9: 77})
    with pytest.raises(LabelFormatError, match="present until"):
        write_trackmate(tmp_path / "t.xml", make_labels(), {40: 1})
    with pytest.raises(LabelFormatError):
        write_trackmate(tmp_path / "t.xml", make_labels()[0])  # no time axis
    with pytest.raises(LabelFormatError, match="negative"):
        write_trackmate(tmp_path / "t.xml", -make_labels(np.int32))
    assert sorted(os.listdir(tmp_path)) == ["dir.xml"]


def test_failure_while_writing_leaves_nothing(tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ET.ElementTree, "write", fail)
    with pytest.raises(OutputError, match="No space left"):
        write_trackmate(tmp_path / "t.xml", make_labels(), PARENTS)
    assert os.listdir(tmp_path) == []


# --- session and command line ---------------------------------------------------------------------------


def seeded_stack() -> tuple[np.ndarray, np.ndarray]:
    """A small (4, 48, 56) stack with two bright discs and the seed labels of frame 0 (ids 4 and 12)."""
    rng = np.random.default_rng(3)
    data = rng.integers(800, 1200, (4, 48, 56), dtype=np.uint16)
    yy, xx = np.ogrid[:48, :56]
    for t in range(4):
        data[t][(yy - 20 - t) ** 2 + (xx - 16) ** 2 < 49] += 2500
        data[t][(yy - 12) ** 2 + (xx - 42) ** 2 < 36] += 2500
    seeds = np.zeros((48, 56), np.uint16)
    seeds[14:27, 10:23] = 4
    seeds[7:18, 37:48] = 12
    return data, seeds


def test_session_export_trackmate_writes_the_session_labels_and_lineage(tiny_model, tmp_path):
    data, seeds = seeded_stack()
    session = tiny_model.open_stack(data, axis=0)
    try:
        session.add_objects_from_labels(0, seeds)
        list(session.propagate(direction="forward"))
        labels = session.labels()
        path = session.export_trackmate(tmp_path / "session.xml")
        assert path == tmp_path / "session.xml"
        with pytest.raises(OutputError, match="overwrite=True"):
            session.export_trackmate(path, labels=labels)
        session.export_trackmate(path, overwrite=True, labels=labels)
        lineage = session.lineage
    finally:
        session.close()
    expected = write_trackmate(tmp_path / "direct.xml", labels, lineage)
    assert path.read_bytes() == expected.read_bytes()
    check_structure(path)


def test_cli_segment_writes_trackmate(tiny_checkpoint, tmp_path):
    from napari_sam2.cli.main import main

    data, seeds = seeded_stack()
    np.save(tmp_path / "s.npy", data)
    tifffile.imwrite(tmp_path / "seeds.tif", seeds)
    out, xml = tmp_path / "s.labels.npy", tmp_path / "s.xml"
    args = ["segment", str(tmp_path / "s.npy"), "--seeds", str(tmp_path / "seeds.tif"), "-o", str(out),
            "--trackmate", str(xml), "--model", str(tiny_checkpoint), "--device", "cpu", "--dtype", "float32", "-q"]
    xml.write_text("keep me")
    assert main(args) == 1  # an existing file is refused before any work
    assert xml.read_text() == "keep me" and not out.exists()
    assert main([*args, "--overwrite"]) == 0
    labels = np.load(out)
    assert xml.read_bytes() == write_trackmate(tmp_path / "direct.xml", labels).read_bytes()
    tm = read_trackmate(xml)
    assert {int(s["LABEL"]) for s in tm["spots"].values()} == {4, 12}
