"""The dock widget: layout and wiring only; the work is done by :class:`~.controller.Sam2Controller`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from napari.layers import Image
from qtpy.QtCore import QEvent, Qt, QTimer
from qtpy.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..engine.tracking.divisions import DivisionRule
from .controller import Sam2Controller
from .layers import same_layer
from .model_picker import ModelPicker
from .objects import ObjectsList
from .stack import (
    AUTO,
    axis_item,
    candidate_axes,
    channel_candidates,
    default_axis,
    default_channel_axis,
    frame_axis_kind,
)
from .track_plot import TrackPlot
from .tracking import labels_layers

if TYPE_CHECKING:
    import napari
    from napari.utils.events import Event
    from qtpy.QtGui import QShowEvent


#: What a failed job's message is about, by job kind: the message clears when a job of the same step next
#: succeeds (a load clears a load error; a click or a propagation clears a click's or a propagation's error).
#: Other kinds (edits, saves, background encoding) and notes keep their message until the next one.
MESSAGE_STEPS = {"load": "model", "prompt": "segment", "propagate": "segment"}


def _row(*widgets: QWidget) -> QHBoxLayout:
    row = QHBoxLayout()
    for w in widgets:
        row.addWidget(w)
    return row


class Sam2Widget(QWidget):
    """SAM 2 tracking (click, propagate, correct): prompts from napari layers, results in a Labels layer."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.controller = Sam2Controller(napari_viewer)
        self._images: list[Image] = []
        self._message_step: str | None = None  # the step the message is about (see MESSAGE_STEPS)
        boxes = (self._image_box(), self._model_box(), self._objects_box(), self._prompts_box(),
                 self._propagate_box(), self._tracking_box(), self._files_box())
        self._lay_out(*boxes, self.reset_button, *self._status_lines())
        self._connect_controls()
        self._connect_controller()
        events = napari_viewer.layers.events
        for ev in (events.inserted, events.removed, events.moved):
            ev.connect(self._refresh_images)
        self._model_choice_changed()
        self._refresh_images()
        self._show_objects()
        controller = self.controller
        refresh, follow = self._refresh_images, self._plot_follow
        self.destroyed.connect(lambda *_: _teardown(controller, napari_viewer, refresh, follow))

    # ------------------------------------------------------------ building
    def _image_box(self) -> QGroupBox:
        """Image layer, frame axis and channel axis: ``image_combo``, ``axis_combo``, ``channel_combo``."""
        self.image_combo = QComboBox()
        self.axis_combo = QComboBox()
        self.axis_combo.setToolTip("The axis to propagate along (t or z); taken from the layer's axis labels")
        self.channel_combo = QComboBox()
        self.channel_combo.setToolTip("The axis that holds the channels (all of them go to SAM 2; the labels have "
                                      "no channel axis); taken from the axis labels (c, ch, channel)")
        self.geometry_label = QLabel()
        self.geometry_label.setWordWrap(True)
        image_box = QGroupBox("Image")
        form = QFormLayout(image_box)
        form.addRow("Layer", self.image_combo)
        form.addRow("Propagate along", self.axis_combo)
        form.addRow("Channels", self.channel_combo)
        form.addRow(self.geometry_label)
        return image_box

    def _model_box(self) -> QGroupBox:
        """The ``model_picker``."""
        self.model_picker = ModelPicker()
        model_box = QGroupBox("Model")
        QVBoxLayout(model_box).addWidget(self.model_picker)
        return model_box

    def _objects_box(self) -> QGroupBox:
        """The ``objects_list``."""
        self.objects_list = ObjectsList()
        objects_box = QGroupBox("Objects")
        QVBoxLayout(objects_box).addWidget(self.objects_list)
        return objects_box

    def _prompts_box(self) -> QGroupBox:
        """Polarity (``positive_button``, ``negative_button``), ``mask_button``, ``clear_button``."""
        self.positive_button = QRadioButton("● positive")
        self.negative_button = QRadioButton("✕ negative")
        self.positive_button.setChecked(True)
        polarity = QButtonGroup(self)
        polarity.addButton(self.positive_button)
        polarity.addButton(self.negative_button)
        self.mask_button = QPushButton("Use painted mask")
        self.mask_button.setToolTip(
            "Send the selected object's pixels in 'SAM2 labels' on this frame as a mask prompt"
        )
        self.clear_button = QPushButton("Clear frame")
        self.clear_button.setToolTip("Remove the selected object's prompts on this frame")
        hint = QLabel(
            "Click in 'SAM2 points' (T: switch polarity, F: flip the selected points); draw rectangles "
            "in 'SAM2 boxes'."
        )
        hint.setWordWrap(True)
        prompts_box = QGroupBox("Prompts")
        box = QVBoxLayout(prompts_box)
        box.addLayout(_row(QLabel("Next points:"), self.positive_button, self.negative_button))
        box.addWidget(hint)
        box.addLayout(_row(self.mask_button, self.clear_button))
        return prompts_box

    def _propagate_box(self) -> QGroupBox:
        """Direction buttons, frame range (``first_spin``, ``last_spin``), ``follow_check``, ``absent_spin``,
        ``cancel_button``."""
        self.backward_button = QPushButton("◀ Backward")
        self.both_button = QPushButton("◀ Both ▶")
        self.forward_button = QPushButton("Forward ▶")
        self.first_spin, self.last_spin = QSpinBox(), QSpinBox()
        self.follow_check = QCheckBox("follow")
        self.follow_check.setChecked(True)
        self.follow_check.setToolTip("Show each frame as its result arrives")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip(
            "Stop the propagation (or download) after the current frame; results are kept. Also stops "
            "'Find objects' (nothing of it is kept)"
        )
        self.absent_spin = QSpinBox()
        self.absent_spin.setRange(0, 10000)
        self.absent_spin.setSpecialValueText("never")
        self.absent_spin.setSuffix(" absent")
        self.absent_spin.setToolTip("Stop tracking an object in a pass once it was absent on this many frames in a "
                                    "row (saves compute; a later prompt brings it back)")
        prop_box = QGroupBox("Propagate")
        box = QVBoxLayout(prop_box)
        box.addLayout(_row(self.backward_button, self.both_button, self.forward_button))
        box.addLayout(_row(QLabel("frames"), self.first_spin, QLabel("to"), self.last_spin))
        box.addLayout(_row(self.follow_check, QLabel("stop after"), self.absent_spin))
        box.addWidget(self._divisions_row())
        box.addWidget(self.cancel_button)
        return prop_box

    def _divisions_row(self) -> QWidget:
        """``detect_check`` with the rule's numbers (``division_frames_spin``, ``division_area_spin``), in
        ``divisions_row`` (hidden for a z-stack)."""
        rule = DivisionRule()
        self.detect_check = QCheckBox("detect divisions")
        self.detect_check.setToolTip(
            "Forward passes divide an object whose mask splits into two parts that stay apart: two daughters "
            "start on the split frame. Each automatic division is a doubtful frame to review; 'Undo division' "
            "takes one back")
        self.division_frames_spin = QSpinBox()
        self.division_frames_spin.setRange(1, 1000)
        self.division_frames_spin.setValue(rule.frames)
        self.division_frames_spin.setSuffix(" frames")
        self.division_frames_spin.setMinimumWidth(self.division_frames_spin.sizeHint().width() + 40)  # suffix uncut
        self.division_frames_spin.setToolTip("A split is a division when both parts persist this many frames "
                                             "(the split frame included)")
        self.division_area_spin = QSpinBox()
        self.division_area_spin.setRange(1, 1_000_000)
        self.division_area_spin.setValue(rule.min_area)
        self.division_area_spin.setSuffix(" px")
        self.division_area_spin.setToolTip("Parts smaller than this (pixels) are fragments, not daughters")
        self.divisions_row = QWidget()
        row = _row(self.detect_check, self.division_frames_spin, self.division_area_spin)
        row.setContentsMargins(0, 0, 0, 0)
        self.divisions_row.setLayout(row)
        return self.divisions_row

    def _tracking_box(self) -> QGroupBox:
        """Seeds (``seed_combo``, ``seed_button``, ``find_button`` with ``find_min_spin``), ``divide_button``,
        ``undo_division_button``, ``doubt_button``, ``region_button``, ``track_plot``; the box is ``track_box``."""
        self.seed_combo = QComboBox()
        self.seed_combo.setToolTip("A labels layer (e.g. Cellpose or StarDist output)")
        self.seed_button = QPushButton("Objects from labels")
        self.seed_button.setToolTip("Every label of the chosen layer on this frame becomes an object (same id)")
        self.find_button = QPushButton("Find objects")
        self.find_button.setToolTip("SAM 2 finds every object on this frame (in the region, if one is drawn); "
                                    "each becomes a new object (Cancel stops the search)")
        self.find_min_spin = QSpinBox()
        self.find_min_spin.setRange(0, 10_000_000)
        self.find_min_spin.setPrefix("min size ")
        self.find_min_spin.setSuffix(" px")
        self.find_min_spin.setToolTip("Find objects drops objects smaller than this (pixels)")
        self.divide_button = QPushButton("Divide…")
        self.divide_button.setToolTip("The selected object divides on this frame: two daughters start here")
        self.undo_division_button = QPushButton("Undo division")
        self.undo_division_button.setToolTip(
            "Take back the division of the selected object (its parent or a daughter): the daughters are "
            "removed and the parent is tracked on. To move a division: undo it, go to the right frame, select "
            "the parent and press 'Divide…'")
        self.doubt_button = QPushButton("Next doubtful frame")
        self.doubt_button.setToolTip("Go to the next frame where the selected object vanished, jumped in size, "
                                     "lost confidence or was born in an automatic division")
        self.region_button = QPushButton("Region…")
        self.region_button.setToolTip("Track in a rectangle of the frames, at full resolution (small objects in "
                                      "large frames)")
        self.track_plot = TrackPlot()
        self.track_box = track_box = QGroupBox("Tracking")
        box = QVBoxLayout(track_box)
        box.addLayout(_row(self.seed_combo, self.seed_button))
        box.addLayout(_row(self.find_button, self.find_min_spin))
        box.addLayout(_row(self.divide_button, self.undo_division_button))
        box.addLayout(_row(self.doubt_button, self.region_button))
        box.addWidget(self.track_plot)
        return track_box

    def _files_box(self) -> QGroupBox:
        """``save_button``, ``load_button``, ``export_button``, ``export_tracks_button`` (and ``reset_button``,
        laid out below the boxes)."""
        self.save_button = QPushButton("Save prompts…")
        self.save_button.setToolTip("Write what was done (prompts, propagations, corrections) as a JSON file "
                                    "that replays to these labels")
        self.load_button = QPushButton("Load prompts…")
        self.reset_button = QPushButton("Reset")
        self.reset_button.setToolTip(
            "Start a new session in the plane shown now; prompts are kept and re-sent"
        )
        self.export_button = QPushButton("Export labels…")
        self.export_button.setToolTip("Write 'SAM2 labels' as OME-TIFF, OME-Zarr, zarr, TIFF or .npy")
        self.export_tracks_button = QPushButton("Export tracks…")
        self.export_tracks_button.setToolTip("Write the track table (CSV) and, beside it, the tracks in the Cell "
                                             "Tracking Challenge format (a folder) and for Fiji's TrackMate (XML)")
        files_box = QGroupBox("Files")
        box = QVBoxLayout(files_box)
        box.addLayout(_row(self.save_button, self.load_button))
        box.addLayout(_row(self.export_button, self.export_tracks_button))
        return files_box

    def _status_lines(self) -> tuple[QWidget, ...]:
        """``busy_bar``, ``status_label`` and ``message_label`` (the full text of the last warning or error:
        napari's toasts are short-lived and cut long text)."""
        self.busy_bar = QProgressBar()
        self.busy_bar.setRange(0, 0)
        self.busy_bar.setMaximumHeight(8)
        self.busy_bar.setTextVisible(False)
        self.busy_bar.hide()
        self.status_label = QLabel("idle")
        self.status_label.setWordWrap(True)
        self.message_label = QLabel("")
        self.message_label.setWordWrap(True)
        self.message_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.message_label.hide()
        return self.busy_bar, self.status_label, self.message_label

    def _lay_out(self, *parts: QWidget) -> None:
        """``parts`` one below the other in a scroll area (``scroll``): the dock may be shorter than the widget."""
        # wide enough for the dock's title, "SAM 2 tracking (napari-sam2)", in full
        self.setMinimumWidth(self.fontMetrics().horizontalAdvance("SAM 2 tracking (napari-sam2)") + 120)
        content = QWidget()
        layout = QVBoxLayout(content)
        for w in parts:
            layout.addWidget(w)
        layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(content)
        self.scroll = scroll
        self._fit_width()
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)

    def _connect_controls(self) -> None:
        """The controls call the controller's public methods (its facade), never its parts."""
        ctl = self.controller
        self._objects_timer = QTimer(self, singleShot=True, interval=0)
        self._objects_timer.timeout.connect(self._show_objects)
        self.image_combo.currentIndexChanged.connect(self._image_chosen)
        self.axis_combo.currentIndexChanged.connect(self._axis_chosen)
        self.channel_combo.currentIndexChanged.connect(self._channel_chosen)
        self.model_picker.load_requested.connect(ctl.load_model)
        self.model_picker.source.currentIndexChanged.connect(self._model_choice_changed)
        self.model_picker.device.currentIndexChanged.connect(self._model_choice_changed)
        self.model_picker.precision.currentIndexChanged.connect(self._model_choice_changed)
        self.objects_list.add_clicked.connect(lambda: ctl.add_object())
        self.objects_list.selected.connect(ctl.select_object)
        self.objects_list.renamed.connect(ctl.rename_object)
        self.objects_list.delete_clicked.connect(ctl.delete_object)
        self.positive_button.toggled.connect(ctl.set_positive)
        self.mask_button.clicked.connect(ctl.use_painted_mask)
        self.clear_button.clicked.connect(ctl.clear_frame)
        self.backward_button.clicked.connect(lambda: self.propagate("backward"))
        self.both_button.clicked.connect(lambda: self.propagate("both"))
        self.forward_button.clicked.connect(lambda: self.propagate("forward"))
        self.follow_check.toggled.connect(lambda on: setattr(ctl, "follow", on))
        self.cancel_button.clicked.connect(ctl.cancel)
        self.save_button.clicked.connect(self._save_clicked)
        self.load_button.clicked.connect(self._load_clicked)
        self.export_button.clicked.connect(self._export_clicked)
        self.export_tracks_button.clicked.connect(self._export_tracks_clicked)
        self.absent_spin.valueChanged.connect(lambda n: setattr(ctl, "stop_absent_after", n))
        self.seed_button.clicked.connect(self._seed_clicked)
        self.divide_button.clicked.connect(lambda: ctl.divide())
        self.undo_division_button.clicked.connect(lambda: ctl.undo_division())
        self.find_button.clicked.connect(lambda: ctl.find_objects())
        self.find_min_spin.valueChanged.connect(lambda n: setattr(ctl, "find_min_area", n))
        for control in (self.detect_check, self.division_frames_spin, self.division_area_spin):
            signal = control.toggled if isinstance(control, QCheckBox) else control.valueChanged
            signal.connect(self._division_rule_changed)
        self.region_button.clicked.connect(lambda: ctl.start_region())
        self.doubt_button.clicked.connect(lambda: ctl.next_doubt())
        self.track_plot.frame_clicked.connect(ctl.go_to_frame)
        self.reset_button.clicked.connect(ctl.rebind)
        self.viewer.dims.events.current_step.connect(self._plot_follow)

    def _connect_controller(self) -> None:
        """The controller's signals update the widget."""
        ctl = self.controller
        ctl.table_changed.connect(self._show_plot)
        ctl.objects_changed.connect(self._show_plot)
        ctl.status.connect(self._show_status)
        ctl.message.connect(self._show_message)
        ctl.message_step.connect(self._message_is_about)
        ctl.step_done.connect(self._step_done)
        ctl.model_changed.connect(lambda _text: self._step_done("load"))
        ctl.objects_changed.connect(self._objects_timer.start)
        ctl.polarity_changed.connect(self._show_polarity)
        ctl.geometry_changed.connect(self._geometry_changed)
        ctl.model_changed.connect(self.model_picker.show_loaded)

    # ---------------------------------------------------------------- image
    def _refresh_images(self, event: Event | None = None) -> None:
        """Keep the image picker in step with the viewer's Image layers (and their names)."""
        if self.controller.viewer is None:
            return
        self._refresh_labels_layers()
        current = self.controller.image
        images = [layer for layer in self.viewer.layers if isinstance(layer, Image)]
        for layer in images:
            layer.events.name.connect(self._refresh_images)
        self._images = images
        self.image_combo.blockSignals(True)
        self.image_combo.clear()
        self.image_combo.addItems([layer.name for layer in images])
        if current not in images:
            active = self.viewer.layers.selection.active
            current = active if active in images else (images[0] if images else None)
        index = images.index(current) if current is not None else -1
        self.image_combo.setCurrentIndex(index)
        self.image_combo.blockSignals(False)
        self._image_chosen(index)

    def _image_chosen(self, index: int) -> None:
        layer = self._images[index] if 0 <= index < len(self._images) else None
        if layer is self.controller.image or same_layer(layer, self.controller.image):
            return
        self.axis_combo.blockSignals(True)
        self.axis_combo.clear()
        if layer is not None and candidate_axes(layer):
            for ax in candidate_axes(layer):
                self.axis_combo.addItem(axis_item(layer, ax), ax)
            axis = default_axis(layer)  # (one of the candidates: there are some)
            self.axis_combo.setCurrentIndex(candidate_axes(layer).index(axis) if axis is not None else 0)
            self.axis_combo.setEnabled(True)
        else:
            self.axis_combo.addItem("— (2-D image)", None)
            self.axis_combo.setEnabled(False)
        self.axis_combo.blockSignals(False)
        self.controller.axis_choice = self.axis_combo.currentData()
        self._fill_channels(layer, self.controller.axis_choice)
        self.controller.set_image(layer)

    def _fill_channels(self, layer: Image | None, axis: int | None, choice: int | str | None = AUTO) -> None:
        """The channel choices of ``layer`` propagated along ``axis``; ``choice`` (AUTO: the default) selected."""
        combo = self.channel_combo
        combo.blockSignals(True)
        combo.clear()
        candidates = [] if layer is None else channel_candidates(layer, axis)
        if layer is not None and getattr(layer, "rgb", False):
            combo.addItem("RGB colour", AUTO)
        else:
            combo.addItem("none", None)
            for ax in candidates:
                combo.addItem(axis_item(layer, ax), ax)
            if choice == AUTO and layer is not None:
                choice = default_channel_axis(layer, axis)
            combo.setCurrentIndex(max(combo.findData(choice), 0))
        combo.setEnabled(bool(candidates))
        combo.blockSignals(False)
        self.controller.channel_choice = combo.currentData()

    def _axis_chosen(self, index: int) -> None:
        axis = self.axis_combo.itemData(index)
        self._fill_channels(self.controller.image, axis, self.channel_combo.currentData())
        self.controller.set_axis(axis)

    def _channel_chosen(self, index: int) -> None:
        self.controller.set_channels(self.channel_combo.itemData(index))

    def _show_choices(self) -> None:
        """Axis and channel boxes as the controller's geometry has them (an image picked again keeps its own)."""
        geo, image = self.controller.geometry, self.controller.image
        if geo is None or image is None or geo.axis is None:
            return
        if self.axis_combo.currentData() != geo.axis and self.axis_combo.findData(geo.axis) >= 0:
            self.axis_combo.blockSignals(True)
            self.axis_combo.setCurrentIndex(self.axis_combo.findData(geo.axis))
            self.axis_combo.blockSignals(False)
            self.controller.axis_choice = geo.axis
        if not getattr(image, "rgb", False) and self.channel_combo.currentData() != geo.channel_axis:
            self._fill_channels(image, geo.axis, geo.channel_axis)

    def _geometry_changed(self, text: str) -> None:
        self.geometry_label.setText(text)
        self._show_choices()
        geo = self.controller.geometry
        # a z-stack has no divisions and no tracks to export; seeds, doubtful frames, regions and the plot stay
        z_stack = frame_axis_kind(self.controller.image, geo) == "z"
        self.track_box.setTitle("Objects through the stack" if z_stack else "Tracking")
        self.divide_button.setVisible(not z_stack)
        self.undo_division_button.setVisible(not z_stack)
        self.divisions_row.setVisible(not z_stack)
        if z_stack:
            self.detect_check.setChecked(False)
        self.export_tracks_button.setVisible(not z_stack)
        n = 1 if geo is None else geo.num_frames
        for spin, value in ((self.first_spin, 0), (self.last_spin, n - 1)):
            spin.setRange(0, n - 1)
            spin.setValue(value)

    # ----------------------------------------------------------- the rest
    def _division_rule_changed(self, *_: object) -> None:
        self.controller.detect_divisions = (
            DivisionRule(self.division_frames_spin.value(), self.division_area_spin.value())
            if self.detect_check.isChecked() else None)

    def _model_choice_changed(self, *_: object) -> None:
        self.controller.model_choice = self.model_picker.choice()

    def _show_objects(self) -> None:
        ctl = self.controller
        if ctl.viewer is None:
            return
        labels = ctl.layers.labels
        color = labels.get_color if labels is not None else (lambda i: (1.0, 1.0, 0.0, 1.0))
        self.objects_list.show_objects(ctl.objects, ctl.current_obj, color)

    def _show_polarity(self, positive: bool) -> None:
        (self.positive_button if positive else self.negative_button).setChecked(True)

    def _show_message(self, text: str) -> None:
        self.message_label.setText(text)
        self.message_label.setVisible(bool(text))
        self._message_step = None

    def _message_is_about(self, kind: str) -> None:
        """The message just shown is the error of a job of ``kind``: it clears when that step next succeeds."""
        self._message_step = MESSAGE_STEPS.get(kind)

    def _step_done(self, kind: str) -> None:
        """A job of ``kind`` succeeded: clear the message if it was the error of that step."""
        if self._message_step is not None and MESSAGE_STEPS.get(kind) == self._message_step:
            self._show_message("")

    def _show_status(self, text: str) -> None:
        self.status_label.setText(text or "idle")
        self.busy_bar.setVisible(bool(text))

    def propagate(self, direction: str) -> None:
        """Propagate in ``direction`` over the frame range of the spin boxes."""
        self.controller.propagate(direction, self.first_spin.value(), self.last_spin.value())

    def _save_clicked(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save SAM 2 prompts", "prompts.json", "JSON (*.json)")
        if path:
            self.controller.save_prompts(path)

    def _load_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load SAM 2 prompts", "", "JSON (*.json);;All files (*)")
        if path:
            self.controller.load_prompts(path)

    def _refresh_labels_layers(self) -> None:
        ctl = self.controller
        current = self.seed_combo.currentText()
        self._labels_layers = labels_layers(self.viewer, ctl.layers.labels)
        self.seed_combo.blockSignals(True)
        self.seed_combo.clear()
        self.seed_combo.addItems([layer.name for layer in self._labels_layers])
        names = [layer.name for layer in self._labels_layers]
        if current in names:
            self.seed_combo.setCurrentIndex(names.index(current))
        self.seed_combo.blockSignals(False)

    def _seed_clicked(self) -> None:
        i = self.seed_combo.currentIndex()
        layers = getattr(self, "_labels_layers", [])
        self.controller.seed_from_labels(layers[i] if 0 <= i < len(layers) else None)

    def _show_plot(self) -> None:
        ctl = self.controller
        if ctl.viewer is None:
            return
        geo = ctl.geometry
        rows, doubts = ctl.track_of(ctl.current_obj)
        self.track_plot.show_rows(rows, 1 if geo is None else geo.num_frames, doubts,
                                  ctl.current_frame() if geo is not None else 0)

    def _plot_follow(self, event: Event | None = None) -> None:
        ctl = self.controller
        if ctl.viewer is not None and ctl.geometry is not None and ctl.image is not None:
            self.track_plot.set_current(ctl.current_frame())

    def _fit_width(self) -> None:
        """At least as wide as the content (with napari's style, known once shown): nothing is cut off."""
        need = self.scroll.widget().minimumSizeHint().width() + self.scroll.verticalScrollBar().sizeHint().width()
        self.setMinimumWidth(max(self.minimumWidth(), need + 8))

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 (Qt's name)
        super().showEvent(event)
        self._fit_width()

    def show_part(self, part: QWidget) -> None:
        """Scroll the widget so that ``part`` (e.g. ``track_plot``) is in view."""
        self.scroll.ensureWidgetVisible(part)

    def _export_tracks_clicked(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export SAM 2 tracks", "tracks.csv", "CSV (*.csv)")
        if path:
            self.controller.export_tracks(path)

    def _export_clicked(self) -> None:
        filters = "OME-TIFF (*.ome.tif);;OME-Zarr (*.ome.zarr);;TIFF (*.tif);;zarr (*.zarr);;NumPy (*.npy)"
        path, _ = QFileDialog.getSaveFileName(self, "Export SAM 2 labels", "labels.ome.tif", filters)
        if path:
            self.controller.export_labels(path)

    def event(self, event: QEvent) -> bool:
        # napari's "remove dock widget" (the dock's close button) un-parents the widget: stop the work.
        if event.type() == QEvent.Type.ParentChange and self.parent() is None:
            _teardown(self.controller, self.viewer, self._refresh_images, self._plot_follow)
        return super().event(event)


def _teardown(controller: Sam2Controller, viewer: napari.Viewer, refresh: Callable[..., None],
              follow: Callable[..., None]) -> None:
    """Stop jobs and disconnect from the viewer (safe to call twice, also after Qt deleted the widget)."""
    if controller.viewer is None:
        return
    try:
        events = viewer.layers.events
        for ev in (events.inserted, events.removed, events.moved):
            ev.disconnect(refresh)
        viewer.dims.events.current_step.disconnect(follow)
        for layer in viewer.layers:
            layer.events.name.disconnect(refresh)
    except (RuntimeError, AttributeError, ValueError):
        pass
    controller.shutdown()
