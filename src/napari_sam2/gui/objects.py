"""The objects list: one row per object (one label id), with its label colour; add, rename, delete."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from qtpy.QtCore import Qt, Signal
from qtpy.QtGui import QColor, QIcon, QPainter, QPixmap
from qtpy.QtWidgets import QHBoxLayout, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget

ID_ROLE = Qt.ItemDataRole.UserRole


def swatch(rgba: npt.ArrayLike) -> QIcon:
    """A square icon of a colour given as RGBA floats in [0, 1]: opaque (a label's colour is shown at the
    layer's opacity, but the swatch must be readable on light and dark themes) with a grey frame."""
    pix = QPixmap(16, 16)
    pix.fill(QColor(128, 128, 128))
    r, g, b, _ = (np.clip(np.asarray(rgba, float), 0, 1) * 255).astype(int).tolist()
    painter = QPainter(pix)
    painter.fillRect(2, 2, 12, 12, QColor(r, g, b))
    painter.end()
    return QIcon(pix)


class ObjectsList(QWidget):
    """Objects as a list; double-click (or F2) a row to rename it."""

    selected = Signal(int)
    renamed = Signal(int, str)
    add_clicked = Signal()
    delete_clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.list = QListWidget()
        self.list.setToolTip("Each object is one label id in 'SAM2 labels'. Double-click to rename.")
        self.list.setMaximumHeight(120)
        add = QPushButton("Add object")
        delete = QPushButton("Delete object")
        delete.setToolTip("Removes the object's prompts and labels")
        buttons = QHBoxLayout()
        buttons.addWidget(add)
        buttons.addWidget(delete)
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(self.list)
        box.addLayout(buttons)
        add.clicked.connect(self.add_clicked)
        delete.clicked.connect(self._delete)
        self.list.currentItemChanged.connect(self._current_changed)
        self.list.itemChanged.connect(self._item_changed)

    def show_objects(self, objects: dict[int, str], current: int,
                     color_of: Callable[[int], npt.ArrayLike]) -> None:
        """Rebuild the rows from ``{obj_id: name}`` and select ``current`` (``color_of``: an object's RGBA
        colour, floats in [0, 1])."""
        rows = sorted(objects.items())
        self.list.blockSignals(True)
        try:
            shown = [
                (int(self.list.item(i).data(ID_ROLE)), self.list.item(i).text())
                for i in range(self.list.count())
            ]
            if shown != rows:  # rebuild only when objects or names changed (not during a rename)
                self.list.clear()
                for obj_id, name in rows:
                    item = QListWidgetItem(name)
                    item.setData(ID_ROLE, obj_id)
                    item.setToolTip(f"object {obj_id}: label {obj_id} in 'SAM2 labels'")
                    item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
                    self.list.addItem(item)
            for i, (obj_id, _) in enumerate(rows):
                item = self.list.item(i)
                item.setIcon(swatch(color_of(obj_id)))
                if obj_id == current:
                    self.list.setCurrentItem(item)
        finally:
            self.list.blockSignals(False)

    def current_id(self) -> int | None:
        item = self.list.currentItem()
        return None if item is None else int(item.data(ID_ROLE))

    def _current_changed(self, item: QListWidgetItem | None, _previous: QListWidgetItem | None = None) -> None:
        if item is not None:
            self.selected.emit(int(item.data(ID_ROLE)))

    def _item_changed(self, item: QListWidgetItem) -> None:
        self.renamed.emit(int(item.data(ID_ROLE)), item.text())

    def _delete(self) -> None:
        obj_id = self.current_id()
        if obj_id is not None:
            self.delete_clicked.emit(obj_id)
