"""Choosing and loading a model: the official SAM 2 / 2.1 checkpoints, EdgeTAM or a local file; device, precision."""

from __future__ import annotations

from pathlib import Path

from napari.utils import progress
from qtpy.QtCore import QObject, Qt, Signal
from qtpy.QtWidgets import QComboBox, QFileDialog, QGridLayout, QLabel, QPushButton, QWidget

from ..weights import CHECKPOINTS
from .notify import DownloadCancelled

LOCAL_FILE = "Local file…"
#: How the model list shows a name whose trade-off the user should see before picking it.
LABELS = {"edgetam": "edgetam (fast model)"}
TIPS = {
    "edgetam": "EdgeTAM (Meta, 2025): SAM 2 with a small image encoder and compressed memory. About 2x faster per\n"
               "frame than sam2.1_hiera_tiny on a CPU, far less per extra object; less accurate than SAM 2.1 on\n"
               "long videos in Meta's paper. Good for laptops and crowded frames.",
}
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "float32", "bfloat16", "float16")


class DownloadProgress(QObject):
    """A download progress bar that the loading thread may drive (``total``, ``update``, ``close``).

    The calls arrive as queued Qt signals on the GUI thread, which owns the napari progress bar.
    After :meth:`cancel`, the next ``update`` raises :class:`DownloadCancelled`, which stops the
    download and discards the partial file.
    """

    _total_set = Signal(object)
    _advanced = Signal(int)
    _closed = Signal()

    def __init__(self) -> None:
        super().__init__()
        self._bar: progress | None = None
        self._total: int | None = None
        self.cancelled = False
        self._total_set.connect(self._on_total)
        self._advanced.connect(self._on_advanced)
        self._closed.connect(self.finish)

    # called from the loading thread
    @property
    def total(self) -> int | None:
        """Bytes expected (None: unknown)."""
        return self._total

    @total.setter
    def total(self, value: int | None) -> None:
        self._total = value
        self._total_set.emit(value)

    def update(self, n: int = 1) -> None:
        """``n`` more bytes arrived; raises :class:`DownloadCancelled` after :meth:`cancel`."""
        if self.cancelled:
            raise DownloadCancelled("The model download was cancelled.")
        self._advanced.emit(int(n))

    def close(self) -> None:
        """The download ended (the bar closes on the GUI thread)."""
        self._closed.emit()

    def cancel(self) -> None:
        """Stop the download at its next chunk."""
        self.cancelled = True

    # GUI thread
    def _on_total(self, value: int | None) -> None:
        if self._bar is None:
            self._bar = progress(total=value, desc="SAM 2: downloading the model (bytes)")
        else:
            self._bar.total = value

    def _on_advanced(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def finish(self) -> None:
        """Close the napari progress bar (GUI thread)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class ModelPicker(QWidget):
    """Model name or local file, device and precision, and a Load button."""

    load_requested = Signal(object, object, object)  # source, device (None = auto), dtype

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.source = QComboBox()
        for name in CHECKPOINTS:  # the item's data is the name load_model takes
            self.source.addItem(LABELS.get(name, name), name)
            if name in TIPS:
                self.source.setItemData(self.source.count() - 1, TIPS[name], Qt.ItemDataRole.ToolTipRole)
        self.source.addItem(LOCAL_FILE)
        self.source.setToolTip(
            "An official SAM 2 / 2.1 or EdgeTAM checkpoint (downloaded once into the cache), or a .pt file on disk"
        )
        self.device = QComboBox()
        self.device.addItems(DEVICES)
        self.precision = QComboBox()
        self.precision.addItems(PRECISIONS)
        self.precision.setToolTip(
            "auto: the image encoder and memory attention each in 16 bits where this CPU or GPU computes that\n"
            "natively and faster (the line below says what was chosen and why), the heads in float32;\n"
            "float32: exactly Meta's numbers"
        )
        self.load_button = QPushButton("Load model")
        self.loaded = QLabel("no model loaded")
        self.loaded.setWordWrap(True)
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.addWidget(QLabel("Model"), 0, 0)
        grid.addWidget(self.source, 0, 1, 1, 3)
        grid.addWidget(QLabel("Device"), 1, 0)
        grid.addWidget(self.device, 1, 1)
        grid.addWidget(QLabel("Precision"), 1, 2)
        grid.addWidget(self.precision, 1, 3)
        grid.addWidget(self.load_button, 2, 3)
        grid.addWidget(self.loaded, 2, 0, 1, 3)
        self._previous = 0
        self.source.activated.connect(self._source_activated)
        self.load_button.clicked.connect(self._load_clicked)

    def _source_activated(self, index: int) -> None:
        if self.source.itemText(index) != LOCAL_FILE:
            self._previous = index
            return
        path, _ = QFileDialog.getOpenFileName(
            self, "SAM 2 checkpoint", "", "PyTorch checkpoints (*.pt *.pth);;All files (*)"
        )
        if path:
            self.set_source(path)
        else:
            self.source.setCurrentIndex(self._previous)

    def set_source(self, source: str | Path) -> None:
        """Select a model name, or add and select a local checkpoint file."""
        text = str(source)
        index = self.source.findData(text)
        if index < 0:
            index = self.source.findText(text)
        if index < 0:
            index = self.source.count() - 1  # before "Local file…"
            self.source.insertItem(index, text, text)
            self.source.setItemData(index, text, Qt.ItemDataRole.ToolTipRole)
        self.source.setCurrentIndex(index)
        self._previous = index

    def choice(self) -> tuple[str, str | None, str]:
        """(source, device or None for auto, precision)."""
        device = self.device.currentText()
        source = self.source.currentData()
        source = self.source.currentText() if source is None else str(source)
        return source, None if device == "auto" else device, self.precision.currentText()

    def _load_clicked(self) -> None:
        self.load_requested.emit(*self.choice())

    def show_loaded(self, text: str) -> None:
        self.loaded.setText(f"loaded: {text}")
