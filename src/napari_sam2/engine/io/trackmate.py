"""Export a tracked label stack as a TrackMate XML file (Fiji: *Plugins > Tracking > Load a TrackMate file*).

:func:`write_trackmate` takes the same input as :func:`~.ctc.write_ctc` and :func:`~.geff.write_geff`: a
(T, row, col) or (T, Z, row, col) label stack and its ``{child: parent}`` lineage. It writes the elements and
attributes TrackMate's reader (``TmXmlReader``, file format of TrackMate 7 and later) needs to open the file
without errors: ``<TrackMate version>`` holding ``<Model spatialunits timeunits>`` (feature declarations, all
spots by frame, tracks of edges, filtered track ids), ``<Settings>`` (image data, crop, a manual detector and
tracker, empty filters and analyzer lists), ``<GUIState>`` and ``<DisplaySettings>`` (JSON).

The graph is the one the GEFF export builds (:class:`~.track_graph.TrackGraph`, reading the stack once, one frame
at a time): one spot per object and frame, at the object's centroid (``POSITION_X`` = column, ``POSITION_Y``
= row, ``POSITION_Z`` = plane or 0; pixels, or physical units with a pixel size), with ``FRAME``,
``POSITION_T`` (frame x interval), ``AREA`` (2-D) or ``VOLUME`` (3-D), ``RADIUS`` of the disc (sphere) of that
area (volume), ``QUALITY`` 1, ``VISIBILITY`` 1 and ``LABEL`` (the object id). Edges join an object's
successive spots (across gaps too) and a parent's last spot to each daughter's first spot. One track per
lineage tree (a division keeps the daughters in the parent's track, as in TrackMate); an object seen once and
never linked stays a lone spot, as TrackMate keeps it. The file is written to a hidden sibling and renamed
into place once complete (:func:`~.atomic.staged`).
"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import OutputError
from .atomic import Counter, Progress, require_parent, staged
from .label_scan import check_lineage, check_stack, normalise_parents, read_frame, refuse_occupied
from .track_graph import TrackGraph

#: ``version`` attribute of the root element: the TrackMate release whose file format is written.
TRACKMATE_VERSION = "7.14.0"

#: (feature, name, short name, dimension, is int) of the spot, edge and track features written.
_SPOT_FEATURES = [
    ("QUALITY", "Quality", "Quality", "QUALITY", False),
    ("POSITION_X", "X", "X", "POSITION", False),
    ("POSITION_Y", "Y", "Y", "POSITION", False),
    ("POSITION_Z", "Z", "Z", "POSITION", False),
    ("POSITION_T", "T", "T", "TIME", False),
    ("FRAME", "Frame", "Frame", "NONE", True),
    ("RADIUS", "Radius", "R", "LENGTH", False),
    ("VISIBILITY", "Visibility", "Visibility", "NONE", True),
    ("LABEL", "Label (object id)", "Label", "NONE", True),
]
_SIZE_FEATURES = {2: ("AREA", "Area", "Area", "AREA", False), 3: ("VOLUME", "Volume", "Volume", "VOLUME", False)}
_EDGE_FEATURES = [
    ("SPOT_SOURCE_ID", "Source spot ID", "Source ID", "NONE", True),
    ("SPOT_TARGET_ID", "Target spot ID", "Target ID", "NONE", True),
]
_TRACK_FEATURES = [
    ("TRACK_INDEX", "Track index", "Index", "NONE", True),
    ("TRACK_ID", "Track ID", "ID", "NONE", True),
    ("NUMBER_SPOTS", "Number of spots in track", "N spots", "NONE", True),
    ("NUMBER_SPLITS", "Number of split events", "N splits", "NONE", True),
    ("TRACK_START", "Track start", "Track start", "TIME", False),
    ("TRACK_STOP", "Track stop", "Track stop", "TIME", False),
    ("TRACK_DURATION", "Track duration", "Duration", "TIME", False),
]

#: The display settings TrackMate opens the file with: spots and tracks coloured by track.
_DISPLAY_SETTINGS = """{
  "name": "napari-sam2 export",
  "spotUniformColor": "204, 51, 204, 255",
  "spotColorByType": "TRACKS",
  "spotColorByFeature": "TRACK_INDEX",
  "spotDisplayRadius": 1.0,
  "spotDisplayedAsRoi": true,
  "spotMin": 0.0,
  "spotMax": 10.0,
  "spotShowName": false,
  "trackMin": 0.0,
  "trackMax": 10.0,
  "trackColorByType": "TRACKS",
  "trackColorByFeature": "TRACK_INDEX",
  "trackUniformColor": "204, 204, 51, 255",
  "undefinedValueColor": "0, 0, 0, 255",
  "missingValueColor": "89, 89, 89, 255",
  "highlightColor": "51, 230, 51, 255",
  "trackDisplayMode": "FULL",
  "colormap": "Jet",
  "limitZDrawingDepth": false,
  "drawingZDepth": 10.0,
  "fadeTracks": true,
  "fadeTrackRange": 30,
  "useAntialiasing": true,
  "spotVisible": true,
  "trackVisible": true,
  "font": {"name": "Arial", "style": 1, "size": 12},
  "lineThickness": 1.0,
  "selectionLineThickness": 4.0,
  "trackschemeBackgroundColor1": "128, 128, 128, 255",
  "trackschemeBackgroundColor2": "192, 192, 192, 255",
  "trackschemeForegroundColor": "0, 0, 0, 255",
  "trackschemeDecorationColor": "0, 0, 0, 255",
  "trackschemeFillBox": false,
  "spotFilled": false,
  "spotTransparencyAlpha": 1.0
}"""


def write_trackmate(
    path: str | os.PathLike,
    labels: Any,
    parents: Mapping[int, int] | None = None,
    *,
    overwrite: bool = False,
    pixel_size: float | Sequence[float] | None = None,
    frame_interval: float = 1.0,
    spatial_unit: str | None = None,
    time_unit: str = "frame",
    image: str | os.PathLike | None = None,
    progress: Progress | None = None,
) -> Path:
    """Write ``labels`` and their lineage as a TrackMate XML file at ``path`` (see the module docstring).

    Args:
        path: output file (``.xml``); its folder must exist.
        labels: (T, row, col) or (T, Z, row, col) integer label stack, read one frame at a time (``labels[t]``);
            0 is background, any other value an object id.
        parents: ``{child object id: parent object id}``, with the same rules as in :func:`~.ctc.write_ctc`.
        overwrite: replace an existing file at ``path`` (only once the new file is complete).
        pixel_size: size of a pixel, one number for every space axis or one per axis in ((z,) row, col) order;
            None for pixel units (positions, radii and areas are then in pixels).
        frame_interval: time between frames (``POSITION_T = frame * frame_interval``).
        spatial_unit: TrackMate's space unit; default ``"pixel"`` without ``pixel_size``, else ``"µm"``.
        time_unit: TrackMate's time unit (``"frame"`` by default; e.g. ``"min"`` with a ``frame_interval``).
        image: the image the labels were made from, recorded so that TrackMate opens it with the tracks
            (otherwise TrackMate shows the tracks over an empty image of the same size).
        progress: called as ``progress(done, T)`` after each frame.

    Returns:
        ``path`` as a Path. Spot ids are 0..N-1 in order of frame, then object id; track ids 0..K-1 in order of
        the object id at the root of each lineage tree (track name ``Track_<root object id>``).

    Raises:
        OutputError: the folder of ``path`` is missing, ``path`` is a folder, or it exists and ``overwrite`` is
            False; ``pixel_size`` or ``frame_interval`` is not positive or has the wrong number of values.
        LabelFormatError (a ValueError): ``labels`` is not a 3-D/4-D integer stack or holds negative values, or
            the lineage does not fit the labels (as in :func:`~.ctc.write_ctc`). Nothing is written then.
    """
    path = Path(path)
    shape = check_stack(labels)
    require_parent(path, "file")
    if path.is_dir():
        raise OutputError(f"{path} is a folder; choose a file name for the TrackMate export, e.g. tracks.xml.")
    refuse_occupied(path, overwrite)
    n_space = len(shape) - 1
    scale = _pixel_scale(pixel_size, n_space)
    if not (math.isfinite(frame_interval) and frame_interval > 0):
        raise OutputError(f"frame_interval must be a positive number, not {frame_interval}.")
    lineage = normalise_parents(parents)
    counter = Counter(progress, shape[0])
    graph = TrackGraph(n_space)
    for t in range(shape[0]):
        graph.add_frame(t, read_frame(labels, t, shape))
        counter.advance()
    check_lineage(graph.runs, lineage)
    calibration = {
        "scale": scale, "dt": float(frame_interval), "shape": shape, "image": image,
        "space": spatial_unit or ("pixel" if pixel_size is None else "µm"), "time": time_unit,
    }
    root = _document(graph, lineage, calibration)
    ET.indent(root)
    with staged(path) as tmp:
        ET.ElementTree(root).write(tmp, encoding="UTF-8", xml_declaration=True)
        refuse_occupied(path, overwrite)  # created while we were writing
    return path


def _pixel_scale(pixel_size: float | Sequence[float] | None, n_space: int) -> np.ndarray:
    """(n_space,) float64 size of a pixel along (z,) row, col; ones for None."""
    if pixel_size is None:
        return np.ones(n_space)
    sizes = np.atleast_1d(np.asarray(pixel_size, dtype=np.float64))
    if sizes.ndim != 1 or len(sizes) not in (1, n_space) or not np.all(np.isfinite(sizes) & (sizes > 0)):
        raise OutputError(
            f"pixel_size must be one positive number or {n_space} ((z,) row, col), not {pixel_size!r}."
        )
    return np.broadcast_to(sizes, (n_space,)).copy()


def _num(value: float) -> str:
    """A float as Java's ``Double.valueOf`` reads it back exactly."""
    return repr(float(value))


def _document(graph: TrackGraph, lineage: dict[int, int], cal: dict[str, Any]) -> ET.Element:
    """The ``<TrackMate>`` root element of ``graph``."""
    root = ET.Element("TrackMate", version=TRACKMATE_VERSION)
    model = ET.SubElement(root, "Model", spatialunits=cal["space"], timeunits=cal["time"])
    _declare_features(ET.SubElement(model, "FeatureDeclarations"), graph.n_space)
    all_spots = ET.SubElement(model, "AllSpots", nspots=str(graph.n_nodes))
    for spot_frame in _spot_frames(graph, cal):
        all_spots.append(spot_frame)
    edges = sorted(graph.edges + graph.division_edges(lineage))
    frames = np.concatenate(graph.frames) if graph.frames else np.empty(0, np.int64)
    roots = graph.lineage_ids(lineage)
    all_tracks = ET.SubElement(model, "AllTracks")
    filtered = ET.SubElement(model, "FilteredTracks")
    for track_id, (root_obj, track_edges) in enumerate(_tracks(edges, roots)):
        all_tracks.append(_track(track_id, root_obj, track_edges, frames, cal["dt"]))
        ET.SubElement(filtered, "TrackID", TRACK_ID=str(track_id))
    root.append(_settings(cal))
    ET.SubElement(root, "GUIState", state="ConfigureViews")
    ET.SubElement(root, "DisplaySettings").text = _DISPLAY_SETTINGS
    return root


def _declare_features(declarations: ET.Element, n_space: int) -> None:
    """``<SpotFeatures>``, ``<EdgeFeatures>``, ``<TrackFeatures>`` with one ``<Feature>`` each."""
    spot_features = [*_SPOT_FEATURES, _SIZE_FEATURES[n_space]]
    for tag, features in (("SpotFeatures", spot_features), ("EdgeFeatures", _EDGE_FEATURES),
                          ("TrackFeatures", _TRACK_FEATURES)):
        group = ET.SubElement(declarations, tag)
        for feature, name, short, dimension, is_int in features:
            ET.SubElement(group, "Feature", feature=feature, name=name, shortname=short, dimension=dimension,
                          isint=str(is_int).lower())


def _spot_frames(graph: TrackGraph, cal: dict[str, Any]) -> list[ET.Element]:
    """One ``<SpotsInFrame>`` per frame (empty frames included), spots in node-id order."""
    scale, dt = cal["scale"], cal["dt"]
    size_feature = _SIZE_FEATURES[graph.n_space][0]
    pixel_size = float(np.prod(scale))
    elements, node = [], 0
    for t, (objects, areas, centroids) in enumerate(zip(graph.objects, graph.areas, graph.centroids)):
        in_frame = ET.Element("SpotsInFrame", frame=str(t))
        for obj, count, centroid in zip(objects.tolist(), areas.tolist(), centroids * scale):
            size = count * pixel_size
            z = centroid[0] if graph.n_space == 3 else 0.0
            ET.SubElement(in_frame, "Spot", {
                "ID": str(node), "name": f"obj{obj}", "QUALITY": "1.0", "POSITION_T": _num(t * dt),
                "POSITION_X": _num(centroid[-1]), "POSITION_Y": _num(centroid[-2]), "POSITION_Z": _num(z),
                "FRAME": str(t), "RADIUS": _num(_radius(size, graph.n_space)), "VISIBILITY": "1",
                "LABEL": str(obj), size_feature: _num(size),
            })
            node += 1
        elements.append(in_frame)
    return elements


def _radius(size: float, n_space: int) -> float:
    """Radius of the disc of area ``size`` (2-D) or the ball of volume ``size`` (3-D)."""
    return math.sqrt(size / math.pi) if n_space == 2 else (3 * size / (4 * math.pi)) ** (1 / 3)


def _tracks(edges: list[tuple[int, int]], roots: np.ndarray) -> list[tuple[int, list[tuple[int, int]]]]:
    """``(root object id, edges)`` per lineage tree with at least one edge, in order of root object id.

    Both ends of an edge share a root (each edge stays in one object or goes from a parent to a daughter).
    """
    by_root: dict[int, list[tuple[int, int]]] = {}
    for source, target in edges:
        by_root.setdefault(int(roots[source]), []).append((source, target))
    return sorted(by_root.items())


def _track(track_id: int, root_obj: int, edges: list[tuple[int, int]], frames: np.ndarray, dt: float) -> ET.Element:
    """``<Track>`` with its features and one ``<Edge>`` per link (source earlier in time)."""
    spots = sorted({node for edge in edges for node in edge})
    _, out_degree = np.unique([source for source, _ in edges], return_counts=True)
    splits = int(np.count_nonzero(out_degree > 1))
    start, stop = int(frames[spots].min()) * dt, int(frames[spots].max()) * dt
    track = ET.Element("Track", {
        "name": f"Track_{root_obj}", "TRACK_ID": str(track_id), "TRACK_INDEX": str(track_id),
        "NUMBER_SPOTS": str(len(spots)), "NUMBER_SPLITS": str(splits), "TRACK_START": _num(start),
        "TRACK_STOP": _num(stop), "TRACK_DURATION": _num(stop - start),
    })
    for source, target in edges:
        ET.SubElement(track, "Edge", SPOT_SOURCE_ID=str(source), SPOT_TARGET_ID=str(target))
    return track


def _settings(cal: dict[str, Any]) -> ET.Element:
    """``<Settings>``: image size and calibration, full crop, manual detector and tracker, no filters."""
    shape, scale = cal["shape"], cal["scale"]
    n_frames, height, width = shape[0], shape[-2], shape[-1]
    n_slices = shape[1] if len(shape) == 4 else 1
    image = Path(cal["image"]).resolve() if cal["image"] is not None else None
    settings = ET.Element("Settings")
    ET.SubElement(settings, "ImageData", {
        "filename": image.name if image else "", "folder": f"{image.parent}{os.sep}" if image else "",
        "width": str(width), "height": str(height), "nslices": str(n_slices), "nframes": str(n_frames),
        "pixelwidth": _num(scale[-1]), "pixelheight": _num(scale[-2]),
        "voxeldepth": _num(scale[0] if len(scale) == 3 else 1.0), "timeinterval": _num(cal["dt"]),
    })
    ET.SubElement(settings, "BasicSettings", xstart="0", xend=str(width - 1), ystart="0", yend=str(height - 1),
                  zstart="0", zend=str(n_slices - 1), tstart="0", tend=str(n_frames - 1))
    ET.SubElement(settings, "DetectorSettings", DETECTOR_NAME="MANUAL_DETECTOR", RADIUS="1.0")
    ET.SubElement(settings, "InitialSpotFilter", feature="QUALITY", value="0.0", isabove="true")
    ET.SubElement(settings, "SpotFilterCollection")
    ET.SubElement(settings, "TrackerSettings", TRACKER_NAME="MANUAL_TRACKER")
    ET.SubElement(settings, "TrackFilterCollection")
    analyzers = ET.SubElement(settings, "AnalyzerCollection")
    for tag in ("SpotAnalyzers", "EdgeAnalyzers", "TrackAnalyzers"):
        ET.SubElement(analyzers, tag)
    return settings
