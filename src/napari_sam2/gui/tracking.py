"""Microscopy tracking in the widget: seeds from a Labels layer, divisions, the track table, doubtful
frames, the Tracks layer and exports — a part of the controller.

Every action ends in engine calls (:mod:`.tasks`): ``session.add_objects_from_labels``,
``session.set_parent`` (applied with the first prompt of a daughter), ``session.track_table``,
``session.export_ctc``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from napari.layers import Labels
from napari.utils.notifications import show_info, show_warning

from ..engine.prompts import MAX_OBJ_ID, Prompts, label_prompts, seed_ids
from ..engine.tracking.track_table import Doubt, doubtful_frames
from ..errors import PromptError, plural
from . import tasks
from .contracts import TrackingHost
from .jobs import Job, Prepared
from .layers import layer_transform, same_layer, unwrap
from .stack import frame_axis_kind, frame_stack_shape, layer_coords

if TYPE_CHECKING:
    import napari
    from napari.layers import Layer, Tracks

    from ..engine.tracking.divisions import Division

TRACKS_NAME = "SAM2 tracks"


class Tracking:
    """Seeds, divisions, track table and doubtful frames of a :class:`~.controller.Sam2Controller`.

    Attributes:
        marked: ``{daughter id: parent id}`` as marked in the widget (*Divide…*, or a loaded prompt file).
            The session owns the lineage (``session.lineage``), but it takes a link only with the daughter's
            first prompt, and every rebind opens a new session: the marks are what is sent (again) with the
            daughters' prompts, as the layers hold the prompts. What the lineage *is*: :attr:`parents`.
        stop_absent_after: propagation stops tracking an object after this many absent frames (None: never).
        rows: the last track table (``session.track_table()``).
        doubts: the doubtful frames of ``rows``.
        tracks: the napari Tracks layer of the lineage, once there is one.
    """

    def __init__(self, host: TrackingHost) -> None:
        self.host = host
        self.marked: dict[int, int] = {}
        self.stop_absent_after: int | None = None
        self.rows: list[dict] = []
        self.doubts: list[Doubt] = []
        self.tracks: Tracks | None = None

    @property
    def parents(self) -> dict[int, int]:
        """``{daughter id: parent id}``: the session's lineage, and the marks of daughters it does not have yet
        (no prompt yet, or no session open)."""
        session = self.host.session
        if session is None:
            return dict(self.marked)
        known = set(session.object_ids)
        return {**{c: p for c, p in self.marked.items() if c not in known}, **session.lineage}

    def forget_object(self, obj_id: int) -> None:
        """An object was deleted: its division marks go (as ``session.remove_object`` drops its links)."""
        self.marked = {c: p for c, p in self.marked.items() if obj_id not in (c, p)}

    # ----------------------------------------------------------------- seeds
    def ids_in_use(self) -> set[int]:
        """Object ids that must not take seeds: those with prompts, results or a division link, and objects
        the user named (only an unused object with its default name "object N" may be taken over)."""
        host = self.host
        state = host.sync_state
        used = {k[1] for table in (state.prompts, state.applied, state.masks) for k in table}
        parents = self.parents
        used |= {r["obj_id"] for r in self.rows} | set(parents) | set(parents.values())
        used |= {oid for oid, name in host.objects.items() if name != f"object {oid}"}
        if host.session is not None:
            used |= set(host.session.object_ids)
        return used

    def seed_from_labels(self, layer: Labels | None) -> None:
        """Every label of ``layer`` (a Labels layer, e.g. Cellpose's) on the frame in view becomes an object
        "label N" prompted with its mask, with the label value as its id where that id is free (an unused
        "object N" is taken over) and fits a label image; other labels get new ids after the largest in use
        (:func:`~napari_sam2.engine.prompts.seed_ids`), and one message says which."""
        host = self.host
        geo = host.geometry
        if geo is None or layer is None:
            show_warning("Pick an image layer and a labels layer first.")
            return
        if same_layer(layer, host.layers.labels):
            show_warning("Pick a labels layer other than 'SAM2 labels' (e.g. Cellpose output).")
            return
        frame = host.current_frame()
        data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
        if tuple(data.shape) == geo.label_shape:
            plane = np.asarray(data[geo.index(frame)])
        elif tuple(data.shape) == geo.frame_hw:
            plane = np.asarray(data)
        else:
            msg = (f"'{layer.name}' has shape {tuple(data.shape)}; it needs the image's shape {geo.label_shape} or "
                   f"one frame's {geo.frame_hw}.")
            show_warning(msg)
            host.message.emit(msg)
            return
        self.seed_plane(plane, frame, f"'{layer.name}'", "label")

    def seed_plane(self, plane: np.ndarray, frame: int, source: str, prefix: str) -> dict[int, int]:
        """Every label of ``plane`` (an (H, W) integer label image of ``frame``) becomes an object named
        "``prefix`` N" (N: the label) prompted with its mask on ``frame``: the one route of seeds into the
        widget's prompts (:attr:`~.controller.Sam2Controller.sync_state`, so they are sent again after a
        rebind and saved with the prompts), whatever their source (a labels layer, the automatic search).
        A label keeps its value as id where that id is free (an unused "object N" is taken over) and fits a
        label image; other labels get new ids after the largest in use, and one message says which.
        ``source`` names the labels in messages. Returns ``{label: obj_id}`` (empty when nothing was
        seeded: the message says why)."""
        host = self.host
        geo = host.geometry
        if geo is None:
            show_warning("Pick an image layer first.")
            return {}
        try:
            by_label = label_prompts(plane, geo.frame_hw)
            used = self.ids_in_use()
            mapping = seed_ids(by_label, used, "fresh")
            host.layers.hold(max(mapping.values()))
        except PromptError as exc:
            msg = f"{source} on frame {frame}: {exc}"
            show_warning(msg)
            host.message.emit(msg)
            return {}
        prompts = {mapping[v]: p for v, p in by_label.items()}
        state = host.sync_state
        for label, p in by_label.items():
            oid = mapping[label]
            if p.mask is not None:  # (always: label prompts are masks)
                state.masks[(frame, oid)] = p.mask  # as the engine will have them: the next sync sends nothing
            state.applied[(frame, oid)] = p
            state.prompts[(frame, oid)] = p
            host.objects[oid] = f"{prefix} {label}"
        host.objects_changed.emit()
        moved = [(v, oid) for v, oid in mapping.items() if v != oid]
        if moved:
            why = {v: f"object {v} already exists" if v in used else f"label ids go up to {MAX_OBJ_ID}"
                   for v, _ in moved}
            msg = (f"Objects from {source} on frame {frame}: "
                   + "; ".join(f"label {v} became object {oid} ({why[v]})" for v, oid in moved) + ".")
            show_info(msg)
            host.message.emit(msg)
        state.edits += 1
        if host.model is None and not any(j.kind == "load" for j in host.jobs()):
            host.load_model(*host.model_choice)

        def prepare() -> Prepared:
            session = host.get_session()
            return None if session is None else (tasks.seed, (session, frame, prompts))

        host.runner.submit(Job(("seed", frame), "edit", prepare, self._seeded,
                               description=f"Making {len(prompts)} objects from {source} on frame {frame}"))
        return mapping

    def _seeded(self, value: object) -> None:
        if isinstance(value, tasks.TrackTable):
            self.adopt_divisions(value.divisions, value.prompts)
            self.show_table(value.rows, value.lineage)
        elif isinstance(value, tasks.Undone):
            self._undone(value)
        else:
            self.host.show(value)

    # ------------------------------------------------------------- divisions
    def divide(self) -> tuple[int, int] | None:
        """The selected object divides on the frame in view: two new objects (its daughters) start here,
        each from a click or a box; the parent is not tracked from this frame on."""
        host = self.host
        if host.geometry is None:
            show_warning("Pick an image layer first.")
            return None
        parent = host.current_obj
        name = host.objects.get(parent, f"object {parent}")
        a = host.add_object(f"{name}.1")
        b = host.add_object(f"{name}.2")
        self.marked[a] = self.marked[b] = parent
        host.select_object(a)
        text = (f"Division of '{name}' on frame {host.current_frame()}: click (or box) daughter '{name}.1' now, "
                f"then select '{name}.2' and click it.")
        show_info(text)
        host.message.emit(text)
        return a, b

    def adopt_divisions(self, divisions: list[Division], prompts: dict[int, dict[int, Prompts]]) -> None:
        """Keep the automatic divisions the widget does not know yet (``session.divisions(automatic_only=True)``
        and the prompts of their objects, ``{obj_id: {frame: Prompts}}``) in its own state, as it keeps seeds:
        the daughters join the objects list ("<parent's name>.1", ".2"), their mask prompts the widget's
        prompts and their links :attr:`marked`, so that a rebind (a new session) sends them again; the
        parent's mask prompts from the split frame on went to the daughters (in the session too)."""
        host = self.host
        state = host.sync_state
        new = [d for d in divisions if not all(c in self.marked for c in d.daughters)]
        for div in new:
            for key in [k for k in state.masks if k[1] == div.parent and k[0] >= div.frame]:
                for table in (state.masks, state.prompts, state.applied):
                    table.pop(key, None)
            name = host.objects.get(div.parent, f"object {div.parent}")
            for i, child in enumerate(div.daughters, 1):
                self._keep_masks(child, prompts.get(child, {}))
                self.marked[child] = div.parent
                if host.objects.get(child, f"object {child}") == f"object {child}":
                    host.objects[child] = f"{name}.{i}"
        if new:
            host.objects_changed.emit()
            where = ", ".join(f"object {d.parent} on frame {d.frame}" for d in new)
            text = (f"{plural(len(new), 'automatic division')}: {where}. Review each daughter's first frame with "
                    f"'Next doubtful frame'; 'Undo division' takes one back.")
            show_info(text)
            host.message.emit(text)

    def _keep_masks(self, obj_id: int, prompts: dict[int, Prompts]) -> None:
        """The mask-only prompts of ``obj_id`` in the session (``{frame: Prompts}``) become the widget's, as
        sent (the next sync sends nothing)."""
        state = self.host.sync_state
        for frame, p in prompts.items():
            if p.mask is not None and not p.n_clicks:
                state.masks[(frame, obj_id)] = p.mask
                state.prompts[(frame, obj_id)] = state.applied[(frame, obj_id)] = p

    def undo_division(self) -> int | None:
        """Take back the division of the selected object (it is the parent, or a daughter): its daughters
        (and theirs) are removed and the parent is tracked past the split again on the next propagation
        (``session.undo_division``; a division marked with *Divide…*: its daughters are deleted). Returns the
        parent's id, None when the selected object is in no division."""
        host = self.host
        obj, parents = host.current_obj, self.parents
        parent = obj if obj in parents.values() else parents.get(obj)
        if parent is None:
            text = (f"Object {obj} is in no division: select a parent or a daughter (see the objects list or the "
                    f"'{TRACKS_NAME}' layer).")
            show_info(text)
            host.message.emit(text)
            return None
        gone = {parent}
        while grown := {c for c, p in parents.items() if p in gone} - gone:
            gone |= grown
        daughters = sorted(gone - {parent})

        def undone(value: object) -> None:
            if isinstance(value, tasks.Undone):
                value = tasks.Undone(value.parent, sorted(set(value.removed) | set(daughters)), value.prompts)
            self._seeded(value)

        def prepare() -> Prepared:
            session = host.session
            if session is None or parent not in session.object_ids:
                undone(tasks.Undone(parent, daughters, {}))
                return None
            return tasks.undo_division, (session, parent)

        host.sync_state.edits += 1
        host.runner.submit(Job(("undo-division", parent), "edit", prepare, undone,
                               description=f"Undoing the division of object {parent}"))
        return parent

    def _undone(self, value: tasks.Undone) -> None:
        """The widget's side of an undone division: the daughters leave its objects, prompts and layers; the
        parent has its mask prompts back."""
        host = self.host
        for oid in value.removed:
            with host.quiet():
                host.layers.remove_object(oid)
            host.sync_state.forget_object(oid)
            host.objects.pop(oid, None)
            self.forget_object(oid)
        self._keep_masks(value.parent, value.prompts)
        if value.parent in host.objects:
            host.select_object(value.parent)
        host.objects_changed.emit()
        text = (f"Division of object {value.parent} undone: {plural(len(value.removed), 'daughter')} removed; "
                f"propagate to track object {value.parent} on. To move the division: go to the right frame, "
                f"select it and press 'Divide…'.")
        show_info(text)
        host.message.emit(text)

    # ---------------------------------------------------------- track table
    def refresh(self) -> None:
        """Fetch the track table in the background (after a propagation or seeding)."""
        host = self.host
        if host.closed:
            return

        def prepare() -> Prepared:
            return None if host.session is None else (tasks.table, (host.session,))

        host.runner.submit(Job(("table",), "edit", prepare, self._seeded, description="Reading the track table"))

    def show_table(self, rows: list[dict], lineage: dict[int, int]) -> None:
        """Keep ``rows``, find the doubtful frames, update the plot and the Tracks layer."""
        self.rows = rows
        self.doubts = doubtful_frames(rows)
        self.host.table_changed.emit()
        self._update_tracks(lineage)

    def object_rows(self, obj_id: int) -> list[dict]:
        """The rows of ``obj_id`` in the last track table."""
        return [r for r in self.rows if r["obj_id"] == obj_id]

    def next_doubt(self, obj_id: int | None = None) -> Doubt | None:
        """Go to the next doubtful frame of ``obj_id`` (default: the selected object) after the frame in
        view (wrapping around); returns it, or None when there is none."""
        host = self.host
        obj_id = host.current_obj if obj_id is None else obj_id
        mine = [d for d in self.doubts if d.obj_id == obj_id]
        if not mine:
            text = f"No doubtful frame for object {obj_id} (after the last propagation)."
            show_info(text)
            host.message.emit(text)
            return None
        now = host.current_frame()
        doubt = next((d for d in mine if d.frame > now), mine[0])
        host.go_to_frame(doubt.frame)
        host.message.emit(f"Frame {doubt.frame}, object {obj_id}: {doubt.reason} ({doubt.detail}).")
        return doubt

    # ------------------------------------------------------------ the layer
    def _update_tracks(self, lineage: dict[int, int]) -> None:
        host = self.host
        geo, image = host.geometry, host.image
        if geo is None or geo.axis is None or geo.axis != 0 or host.viewer is None:
            return  # napari's Tracks layer needs time first (in the image layer's axes)
        wanted = frame_axis_kind(image, geo) == "time" or bool(lineage)  # z / unnamed: only with a division
        rows = [r for r in self.rows if r["area"] > 0]
        if not rows:
            return
        coords = np.array([geo.coords(r["frame"], [[r["centroid_row"], r["centroid_col"]]])[0] for r in rows])
        coords = layer_coords(geo, coords, len(frame_stack_shape(image)))  # (a channel axis of the image: 0)
        data = np.column_stack([[r["obj_id"] for r in rows], coords])
        ids = {r["obj_id"] for r in rows}
        graph = {c: [p] for c, p in lineage.items() if c in ids and p in ids}
        viewer = unwrap(host.viewer)
        if self.tracks is not None and self.tracks not in viewer.layers:
            self.tracks = None
        if self.tracks is None:
            if not wanted:
                return
            self.tracks = viewer.add_tracks(data, graph=graph, name=TRACKS_NAME, tail_length=10,
                                            **layer_transform(image, geo))
            if host.layers.points is not None:  # clicks keep going to the points layer
                viewer.layers.selection.active = unwrap(host.layers.points)
        else:
            self.tracks.graph = {}
            self.tracks.data = data
            self.tracks.graph = graph

    # -------------------------------------------------------------- exports
    def export(self, csv_path: str | os.PathLike[str]) -> None:
        """Write the track table to ``csv_path``, and beside it the tracks in CTC format (``<stem>_CTC/``) and as
        a TrackMate XML file for Fiji (``<stem>_trackmate.xml``)."""
        host = self.host
        if host.session is None:
            show_warning("There are no tracks to export yet.")
            return
        csv = Path(csv_path)
        ctc = csv.with_name(f"{csv.stem}_CTC")
        trackmate = csv.with_name(f"{csv.stem}_trackmate.xml")

        def prepare() -> Prepared:
            if host.session is None:
                return None
            return tasks.export_tracks, (host.session, str(csv), str(ctc), str(trackmate))

        host.runner.submit(Job(("export-tracks",), "save", prepare, self._exported, description="Exporting tracks"))

    def _exported(self, value: object) -> None:
        if isinstance(value, tasks.Saved):
            show_info(f"Saved {value.what} to {value.path}.")
        else:
            self.host.show(value)


def labels_layers(viewer: napari.Viewer, exclude: Layer | None = None) -> list[Labels]:
    """The viewer's Labels layers, without ``exclude`` (the widget's own)."""
    return [layer for layer in viewer.layers if isinstance(layer, Labels) and not same_layer(layer, exclude)]
