"""The widget's napari layers and what their content means as SAM 2 prompts.

* ``SAM2 points`` (Points): clicks; features ``obj_id`` and ``positive``.
  Positive clicks are green discs, negative clicks red crosses; the border
  has the object's label colour.
* ``SAM2 boxes`` (Shapes): rectangles are boxes; feature ``obj_id``.
* ``SAM2 labels`` (Labels): the result, one label id per object, with the
  data shape of the image (without its colour axis): a
  :class:`~napari_sam2.engine.storage.labels.LabelOutput` (zarr on disk for large stacks).

A point or box belongs to the object in its ``obj_id`` and to the frame of
its coordinate on the propagation axis (see :class:`~napari_sam2.engine.coords.geometry.StackGeometry`).

The layers have the image layer's axes. When a non-RGB image has a channel
axis (e.g. ZCYX), the layers keep that axis with length 1 and a scale that
stretches it over every channel (:func:`layer_transform`): the labels and
prompts show at every channel position, a click at any channel is on the
same frame, and the label image itself is (Z, Y, X) (:func:`labels_data`
is a view of it with the length-1 axis; painting writes through).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import numpy.typing as npt
from napari.layers import Labels, Points, Shapes

from ..engine.coords.geometry import StackGeometry
from ..engine.prompts import CroppedMask, Prompts, make_prompts
from ..engine.storage.labels import LabelOutput, label_dtype_for
from ..engine.tracking.heap import release_free_memory
from ..errors import PromptError
from .stack import frame_stack_shape, has_channel_axis, label_coords, layer_channel_axis, layer_coords

if TYPE_CHECKING:
    import napari
    from napari.layers import Image

    from ..engine.io.prompt_file import ObjectPrompts

POINTS_NAME = "SAM2 points"
BOXES_NAME = "SAM2 boxes"
LABELS_NAME = "SAM2 labels"
POSITIVE_COLOR = np.array([0.2, 1.0, 0.2, 1.0])
NEGATIVE_COLOR = np.array([1.0, 0.15, 0.15, 1.0])

Key = tuple[int, int]  # (frame, obj_id)
_L = TypeVar("_L")


def unwrap(obj: Any) -> Any:
    """The real object behind napari's plugin proxy (a widget opened from the Plugins menu gets a
    proxy of the viewer, and the layers it adds are proxies too), or ``obj`` itself."""
    return getattr(obj, "__wrapped__", obj)


def same_layer(a: object, b: object) -> bool:
    """Whether two references (proxied or not) are the same layer."""
    return a is not None and b is not None and unwrap(a) is unwrap(b)


def channel_dim(image: Image, geometry: StackGeometry) -> int | None:
    """The layer axis of ``image`` that holds the channels (None: none, or the colour axis of an RGB layer)."""
    return layer_channel_axis(geometry, len(frame_stack_shape(image)))


def layer_transform(image: Image, geometry: StackGeometry) -> dict[str, np.ndarray]:
    """``scale`` and ``translate`` of the widget's layers over ``image``: the image's, with the channel
    axis (if the layers have one, of length 1) stretched over all channels, centred, so that every
    channel position of the viewer reads the layers' index 0 there."""
    scale = np.array(image.scale, float)
    translate = np.array(image.translate, float)
    ch = channel_dim(image, geometry)
    if ch is not None:
        n = geometry.shape[ch]
        translate[ch] += (n - 1) / 2 * scale[ch]
        scale[ch] *= n
    return {"scale": scale, "translate": translate}


class _LengthOneAxis:
    """An array-like view of a zarr label image with a length-1 axis inserted at ``axis`` (for napari;
    reads and writes go to the image)."""

    def __init__(self, array: Any, axis: int) -> None:
        self.array, self.axis = array, axis
        self.shape = (*array.shape[:axis], 1, *array.shape[axis:])
        self.dtype, self.ndim = array.dtype, array.ndim + 1

    def _key(self, key: Any) -> tuple[tuple[Any, ...], Any]:
        key = key if isinstance(key, tuple) else (key,)
        if Ellipsis in key:
            i = key.index(Ellipsis)
            key = key[:i] + (slice(None),) * (self.ndim - len(key) + 1) + key[i + 1:]
        key = key + (slice(None),) * (self.ndim - len(key))
        return key[: self.axis] + key[self.axis + 1:], key[self.axis]

    def __getitem__(self, key: Any) -> np.ndarray:
        inner, k = self._key(key)
        out = np.asarray(self.array[inner])
        if isinstance(k, slice):  # keep the axis where a slice keeps it
            kept = sum(not isinstance(x, (int, np.integer)) for x in inner[: self.axis])
            out = np.expand_dims(out, kept)
        return out

    def __setitem__(self, key: Any, value: Any) -> None:
        inner, _ = self._key(key)
        if any(isinstance(x, np.ndarray) for x in inner):
            self.array.vindex[inner] = value  # napari's painting: coordinate arrays
        else:
            self.array[inner] = value

    def __array__(self, dtype: npt.DTypeLike | None = None, copy: bool | None = None) -> np.ndarray:
        out = np.expand_dims(np.asarray(self.array), self.axis)
        return out if dtype is None else out.astype(dtype)

    def __len__(self) -> int:
        return self.shape[0]


def labels_data(output: LabelOutput, ndim: int) -> Any:
    """What the Labels layer shows of ``output``: its array (NumPy or zarr), or (layers with the channel axis,
    ``ndim`` axes) a view with a length-1 channel axis that reads and writes the array."""
    ch = layer_channel_axis(output.geometry, ndim)
    if ch is None:
        return output.array
    if isinstance(output.array, np.ndarray):
        return np.expand_dims(output.array, ch)
    return _LengthOneAxis(output.array, ch)


def collect(
    points: Points | None, shapes: Shapes | None, geometry: StackGeometry,
    masks: dict[Key, np.ndarray | CroppedMask],
) -> tuple[dict[Key, Prompts], list[str]]:
    """Group the layers' points and boxes (and the mask prompts) by (frame, object), as checked
    :class:`~napari_sam2.engine.prompts.Prompts`.

    Returns the prompts and notes about what was ignored (and why).
    """
    notes: list[str] = []
    pts: dict[Key, list] = defaultdict(list)
    off_plane = 0
    h, w = geometry.frame_hw
    if points is not None and len(points.data):
        feats = points.features
        for coord, oid, pos in zip(label_coords(geometry, points.data), feats["obj_id"], feats["positive"],
                                   strict=True):
            frame = geometry.frame_of(coord)
            if frame is None:
                off_plane += 1
                continue
            r, c = (float(v) for v in geometry.rc(coord)[0])
            if not (-0.5 <= r <= h - 0.5 and -0.5 <= c <= w - 0.5):
                notes.append(f"The point of object {int(oid)} at (row {r:.0f}, col {c:.0f}) on frame {frame} "
                             f"lies outside the {h} x {w} image and is ignored; delete it or drag it inside.")
                continue
            pts[(frame, int(oid))].append((r, c, 1 if bool(pos) else 0))
    boxes: dict[Key, np.ndarray] = {}
    if shapes is not None and len(shapes.data):
        not_rect = 0
        for data, kind, oid in zip(shapes.data, shapes.shape_type, shapes.features["obj_id"], strict=True):
            if kind != "rectangle":
                not_rect += 1
                continue
            data = label_coords(geometry, data)
            frame = geometry.frame_of(data[0])
            if frame is None:
                off_plane += 1
                continue
            rc = geometry.rc(data)
            key = (frame, int(oid))
            if key in boxes:
                notes.append(
                    f"Object {oid} has several boxes on frame {frame}; SAM 2 takes one, the last is used."
                )
            boxes[key] = np.array([*rc.min(axis=0), *rc.max(axis=0)], np.float32)
        if not_rect:
            notes.append(
                f"{not_rect} shape(s) in '{shapes.name}' are not rectangles and are ignored; draw boxes "
                f"with the rectangle tool."
            )
    if off_plane:
        held = ", ".join(f"axis {a} = {i}" for a, i in sorted(geometry.fixed.items()))
        notes.append(
            f"{off_plane} prompt(s) lie outside the tracked plane ({held}) and are ignored; press "
            f"Reset to start over in the plane shown now."
        )
    out: dict[Key, Prompts] = {}
    for key in sorted(set(pts) | set(boxes) | set(masks)):
        p = np.asarray(pts.get(key, []), np.float64).reshape(-1, 3)
        try:
            out[key] = make_prompts(geometry.frame_hw, p[:, :2] if len(p) else None, p[:, 2] if len(p) else None,
                                    boxes.get(key), masks.get(key))
        except PromptError as exc:
            notes.append(f"The prompts of object {key[1]} on frame {key[0]} are ignored: {exc}")
    return out, notes


class PromptLayers:
    """Finds, creates and styles the Points, Shapes and Labels layers of the widget."""

    def __init__(self, viewer: napari.Viewer) -> None:
        self.viewer = viewer
        self.points: Points | None = None
        self.shapes: Shapes | None = None
        self.labels: Labels | None = None
        self.output: LabelOutput | None = None  # what the Labels layer shows
        self.ndim: int | None = None  # the layers' axes (the image layer's)
        self.shown: Any = None  # the Labels layer's data: output.array, or a view of it (see labels_data)

    def owns(self, layer: object) -> bool:
        """Whether ``layer`` is one of the three layers."""
        return any(same_layer(layer, x) for x in (self.points, self.shapes, self.labels))

    def prompt_layers(self) -> tuple[Points, Shapes]:
        """The Points and Shapes layers; raises RuntimeError before :meth:`ensure` made them (or after one
        was deleted)."""
        if self.points is None or self.shapes is None:
            raise RuntimeError("The SAM2 points and boxes layers are missing (PromptLayers.ensure makes them).")
        return self.points, self.shapes

    def labels_layer(self) -> Labels:
        """The Labels layer; raises RuntimeError before :meth:`ensure` made it (or after it was deleted)."""
        if self.labels is None:
            raise RuntimeError("The SAM2 labels layer is missing (PromptLayers.ensure makes it).")
        return self.labels

    def label_output(self) -> LabelOutput:
        """What the Labels layer shows; raises RuntimeError before :meth:`clear_labels` (or :meth:`ensure`)."""
        if self.output is None:
            raise RuntimeError("The SAM2 labels layer has no label output yet (PromptLayers.clear_labels).")
        return self.output

    def forget(self, layer: object) -> str | None:
        """Drop a layer that left the viewer; returns which one it was."""
        for attr in ("points", "shapes", "labels"):
            if same_layer(getattr(self, attr), layer):
                setattr(self, attr, None)
                return attr
        return None

    def layer_shape(self, geometry: StackGeometry) -> tuple[int, ...]:
        """The Labels layer's data shape: the label image's, with a length-1 channel axis when the layers
        have the image's channel axis."""
        shape = geometry.label_shape
        if has_channel_axis(geometry, self.ndim or 0):
            shape = (*shape[: geometry.channel_axis], 1, *shape[geometry.channel_axis:])
        return shape

    def _find(self, name: str, kind: type[_L], fits: Callable[[_L], bool]) -> _L | None:
        for layer in self.viewer.layers:
            if layer.name == name and isinstance(layer, kind) and fits(layer):
                return layer
        return None

    def ensure(
        self, image: Image, geometry: StackGeometry, on_points: Callable, on_shapes: Callable, on_defaults: Callable
    ) -> list[str]:
        """Reuse or create the three layers for ``image``; returns the names of created ones."""
        created = []
        common = layer_transform(image, geometry)
        size = max(4.0, min(geometry.frame_hw) / 40)
        self.ndim = ndim = len(frame_stack_shape(image))
        shape = self.layer_shape(geometry)
        if self.labels is None or self.labels.data.shape != shape:
            self.labels = self._find(LABELS_NAME, Labels, lambda x: x.data.shape == shape)
            if self.labels is None:
                self.output = LabelOutput(geometry, np.uint16, full_stack=True)
                self.shown = labels_data(self.output, ndim)
                self.labels = self.viewer.add_labels(self.shown, name=LABELS_NAME, opacity=0.5, **common)
                created.append(self.labels.name)
        if self.shapes is None or self.shapes.ndim != ndim:
            if self.shapes is not None:
                self.shapes.events.data.disconnect(on_shapes)
            self.shapes = self._find(BOXES_NAME, Shapes, lambda x: x.ndim == ndim and "obj_id" in x.features)
            if self.shapes is None:
                self.shapes = self.viewer.add_shapes(
                    ndim=ndim,
                    name=BOXES_NAME,
                    face_color=[0, 0, 0, 0],
                    edge_width=max(1.0, size / 4),
                    features={"obj_id": np.zeros(0, int)},
                    **common,
                )
                self.shapes.current_face_color = [0, 0, 0, 0]
                created.append(self.shapes.name)
            self.shapes.events.data.connect(on_shapes)
        if self.points is None or self.points.ndim != ndim:
            if self.points is not None:
                self.points.events.data.disconnect(on_points)
                self.points.events.current_properties.disconnect(on_defaults)
            self.points = self._find(
                POINTS_NAME,
                Points,
                lambda x: x.ndim == ndim and {"obj_id", "positive"} <= set(x.features),
            )
            if self.points is None:
                self.points = self.viewer.add_points(
                    ndim=ndim,
                    name=POINTS_NAME,
                    size=size,
                    border_width=0.2,
                    out_of_slice_display=False,
                    features={"obj_id": np.zeros(0, int), "positive": np.zeros(0, bool)},
                    **common,
                )
                created.append(self.points.name)
                self.points.mode = "add"
            self.points.events.data.connect(on_points)
            self.points.events.current_properties.connect(on_defaults)
        for layer in (self.labels, self.shapes, self.points):  # reused for another image: align with it
            if not (np.allclose(layer.scale, common["scale"]) and np.allclose(layer.translate, common["translate"])):
                layer.scale, layer.translate = common["scale"], common["translate"]
        return created

    def disconnect(self, on_points: Callable, on_shapes: Callable, on_defaults: Callable) -> None:
        if self.points is not None:
            self.points.events.data.disconnect(on_points)
            self.points.events.current_properties.disconnect(on_defaults)
        if self.shapes is not None:
            self.shapes.events.data.disconnect(on_shapes)

    def set_defaults(self, obj_id: int, positive: bool) -> None:
        """The object (and polarity) that new points and boxes get."""
        if self.points is not None:
            self.points.feature_defaults = {"obj_id": obj_id, "positive": positive}
        if self.shapes is not None:
            self.shapes.feature_defaults = {"obj_id": obj_id}
        if self.labels is not None:
            self.hold(obj_id)
            self.labels.selected_label = obj_id

    def hold(self, obj_id: int) -> None:
        """Widen the label image (uint16 to uint32, :func:`~napari_sam2.engine.storage.labels.label_dtype_for`) so
        that the Labels layer can hold (and select) ``obj_id``."""
        if self.labels is None or self.output is None or self.labels.data is not self.shown:
            return
        dtype = label_dtype_for(obj_id)
        if dtype.itemsize > self.output.dtype.itemsize:
            self.output = self.output.grown(dtype)
            self._show_output()

    def restyle(self) -> None:
        """Colour points by polarity (border: object colour) and boxes by object colour."""
        color = (
            self.labels.get_color if self.labels is not None else (lambda i: np.array([1.0, 1.0, 0.0, 1.0]))
        )
        pts = self.points
        if pts is not None and len(pts.data):
            pos = pts.features["positive"].to_numpy(bool)
            pts.face_color = np.where(pos[:, None], POSITIVE_COLOR, NEGATIVE_COLOR)
            pts.symbol = np.where(pos, "disc", "x")
            pts.border_color = np.array([color(int(i)) for i in pts.features["obj_id"]])
        shp = self.shapes
        if shp is not None and len(shp.data):
            shp.edge_color = np.array([color(int(i)) for i in shp.features["obj_id"]])

    def flip_selected(self) -> bool:
        """Switch the polarity of the selected points; returns whether any was selected."""
        pts = self.points
        sel = sorted(pts.selected_data) if pts is not None else []
        if pts is None or not sel:
            return False
        feats = pts.features.copy()
        feats.loc[feats.index[sel], "positive"] = ~feats["positive"].to_numpy(bool)[sel]
        pts.features = feats
        return True

    def remove_object(self, obj_id: int) -> None:
        """Remove the points and boxes of ``obj_id``."""
        for layer in (self.points, self.shapes):
            if layer is not None and len(layer.data):
                idx = np.flatnonzero(layer.features["obj_id"].to_numpy() == obj_id).tolist()
                if idx:
                    layer.remove(idx)

    def clear_frame(self, geometry: StackGeometry, frame: int, obj_id: int) -> None:
        """Remove the points and boxes of ``obj_id`` on ``frame``."""
        for layer, coords in ((self.points, lambda d: d), (self.shapes, lambda d: d[0])):
            if layer is not None and len(layer.data):
                ids = layer.features["obj_id"].to_numpy()
                idx = [
                    i
                    for i, d in enumerate(layer.data)
                    if ids[i] == obj_id and geometry.frame_of(label_coords(geometry, coords(d))) == frame
                ]
                if idx:
                    layer.remove(idx)

    def fill(self, objects: Iterable[ObjectPrompts], geometry: StackGeometry) -> None:
        """Replace the points and boxes with those of ``objects`` (``ObjectPrompts`` of a prompt file)."""
        for layer in (self.points, self.shapes):
            if layer is not None and len(layer.data):
                layer.remove(list(range(len(layer.data))))
        points, shapes = self.prompt_layers()
        defaults = (
            points.feature_defaults.iloc[0].to_dict(),
            shapes.feature_defaults.iloc[0].to_dict(),
        )
        for obj in objects:
            for frame, p in sorted(obj.frames.items()):
                labels = np.asarray(p.labels)
                starts = [0, *(np.flatnonzero(np.diff(labels)) + 1), len(labels)]
                for a, b in zip(starts[:-1], starts[1:]):  # runs of one polarity, in the file's order
                    if b > a:
                        points.feature_defaults = {"obj_id": obj.obj_id, "positive": bool(labels[a])}
                        points.add(self.coords(geometry, frame, np.asarray(p.points)[a:b]))
                if p.box is not None:
                    r0, c0, r1, c1 = p.box
                    shapes.feature_defaults = {"obj_id": obj.obj_id}
                    shapes.add_rectangles(
                        self.coords(geometry, frame, [[r0, c0], [r0, c1], [r1, c1], [r1, c0]])
                    )
        points.feature_defaults, shapes.feature_defaults = defaults

    def coords(self, geometry: StackGeometry, frame: int, rc: npt.ArrayLike) -> np.ndarray:
        """(N, ndim) coordinates in the layers of (row, col) positions ``rc`` on ``frame``."""
        return layer_coords(geometry, geometry.coords(frame, rc), self.ndim or geometry.label_ndim)

    def read(self, geometry: StackGeometry, frame: int) -> np.ndarray:
        """``frame``'s (H, W) plane of the Labels layer (as painted there)."""
        key = list(geometry.index(frame))
        labels = self.labels_layer()
        ch = layer_channel_axis(geometry, labels.data.ndim)
        if ch is not None:
            key.insert(ch, 0)
        return np.asarray(labels.data[tuple(key)])

    def _show_output(self) -> None:
        output = self.label_output()
        self.shown = labels_data(output, self.ndim or output.geometry.label_ndim)
        self.labels_layer().data = self.shown

    def clear_labels(self, geometry: StackGeometry) -> None:
        """Give the Labels layer a fresh, empty label output (in RAM, or zarr on disk for large stacks)."""
        if self.labels is not None:
            self.output = LabelOutput(geometry, np.uint16, full_stack=True)
            self._show_output()

    def write(self, geometry: StackGeometry, frame: int, labels: np.ndarray) -> None:
        """Put one frame's (H, W) labels into the Labels layer and redraw it (uint32 above id 65535)."""
        if self.labels is None:
            return
        if (self.output is None or self.output.geometry != geometry
                or self.labels.data is not self.shown):
            self.clear_labels(geometry)  # a layer found in the viewer, or data replaced by someone else
        if labels.dtype.itemsize > self.label_output().dtype.itemsize:  # the session's ids outgrew uint16
            self.output = self.label_output().grown(labels.dtype)
            self._show_output()
        self.label_output().write(frame, labels)
        self.labels.refresh()
        release_free_memory()  # redrawing 2048² planes fragments the heap: without this RSS creeps up per frame
