"""A small plot of one object's area and confidence over the frames; click a frame to go there.

Axes: frame numbers along x ("frame"), 0 ... 1 along y (the area as a fraction of its largest value, the
confidence as it is); a legend names the lines and the doubtful-frame ticks.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from qtpy.QtCore import QPointF, QRectF, Qt, Signal
from qtpy.QtGui import QColor, QPainter, QPainterPath, QPen
from qtpy.QtWidgets import QSizePolicy, QWidget

if TYPE_CHECKING:
    from qtpy.QtGui import QMouseEvent, QPaintEvent

AREA_COLOR = QColor(80, 170, 255)
CONFIDENCE_COLOR = QColor(255, 170, 40)
DOUBT_COLOR = QColor(255, 60, 60)
TEXT_COLOR = QColor(170, 170, 170)
NICE_STEPS = (1, 2, 5)


def frame_ticks(num_frames: int, room: int) -> list[int]:
    """Frame numbers to label on an x axis with room for ``room`` labels: 0 and every 1, 2, 5, 10, 20 ...
    frames (the smallest such step that fits)."""
    last = max(num_frames - 1, 0)
    step, scale = 1, 1
    while True:
        for base in NICE_STEPS:
            step = base * scale
            if last // step + 1 <= max(room, 2):
                return list(range(0, last + 1, step))
        scale *= 10


class TrackPlot(QWidget):
    """Area (blue, scaled to its maximum) and confidence (orange: presence x predicted IoU, 0-1) of the
    selected object per frame; red ticks mark doubtful frames, a grey line the frame in view.
    ``frame_clicked(frame)`` is emitted on a click."""

    frame_clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumHeight(4 * self.fontMetrics().height() + 60)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip("Area (blue) and confidence (orange) of the selected object per frame; red: doubtful "
                        "frames. Click to go to a frame.")
        self.num_frames = 1
        self.rows: list[dict] = []
        self.doubts: list[int] = []
        self.current = 0

    def show_rows(self, rows: list[dict], num_frames: int, doubts: list[int], current: int) -> None:
        """Plot ``rows`` (track-table rows of one object) over ``num_frames`` frames."""
        self.rows, self.num_frames, self.doubts, self.current = rows, max(1, num_frames), doubts, current
        self.update()

    def set_current(self, frame: int) -> None:
        self.current = frame
        self.update()

    def legend(self) -> list[tuple[str, QColor]]:
        """The legend's entries, as drawn: (text, colour)."""
        top = max((r["area"] for r in self.rows), default=0)
        area = f"area (of its max, {top:g} px)" if top else "area (of its max)"
        return [(area, AREA_COLOR), ("confidence", CONFIDENCE_COLOR), ("doubtful frame", DOUBT_COLOR)]

    def axis_labels(self) -> tuple[str, str]:
        """(x, y) axis titles."""
        return "frame", "0-1"

    def x_ticks(self) -> list[int]:
        """The frame numbers labelled along x at the plot's present width."""
        rect = self._plot_rect()
        label = self.fontMetrics().horizontalAdvance(f"{max(self.num_frames - 1, 0)}") + 12
        return frame_ticks(self.num_frames, int(rect.width() // label))

    def _plot_rect(self) -> QRectF:
        """Where the data go: inside the legend (top), the frame numbers (bottom) and 0 / 1 (left)."""
        fm = self.fontMetrics()
        left = fm.horizontalAdvance("0.5") + 10
        return QRectF(self.rect()).adjusted(left, fm.height() + 8, -8, -(2 * fm.height() + 6))

    def _x(self, frame: float, rect: QRectF) -> float:
        span = max(self.num_frames - 1, 1)
        return rect.left() + rect.width() * frame / span

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt's name)
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = self._plot_rect()
        p.setPen(QPen(QColor(128, 128, 128), 1))
        p.drawRect(rect)
        self._axes(p, rect)
        p.drawLine(QPointF(self._x(self.current, rect), rect.top()), QPointF(self._x(self.current, rect),
                                                                             rect.bottom()))
        p.setPen(QPen(DOUBT_COLOR, 2))
        for f in self.doubts:
            x = self._x(f, rect)
            p.drawLine(QPointF(x, rect.bottom() - 8), QPointF(x, rect.bottom()))
        if self.rows:
            top = max(r["area"] for r in self.rows) or 1
            self._line(p, rect, [(r["frame"], r["area"] / top) for r in self.rows], AREA_COLOR)
            self._line(p, rect, [(r["frame"], r["present_score"] * (r["iou"] if r["iou"] is not None else 1.0))
                                 for r in self.rows], CONFIDENCE_COLOR)
        p.end()

    def _axes(self, p: QPainter, rect: QRectF) -> None:
        fm = self.fontMetrics()
        h = fm.height()
        p.setPen(QPen(TEXT_COLOR, 1))
        for value, text in ((0.0, "0"), (0.5, "0.5"), (1.0, "1")):  # y: a fraction of the area's max; confidence
            y = rect.bottom() - rect.height() * value
            p.drawLine(QPointF(rect.left() - 3, y), QPointF(rect.left(), y))
            p.drawText(QRectF(0, y - h / 2, rect.left() - 5, h), int(Qt.AlignmentFlag.AlignRight
                                                                     | Qt.AlignmentFlag.AlignVCenter), text)
        for frame in self.x_ticks():  # x: frame numbers
            x = self._x(frame, rect)
            p.drawLine(QPointF(x, rect.bottom()), QPointF(x, rect.bottom() + 3))
            p.drawText(QRectF(x - 40, rect.bottom() + 3, 80, h), int(Qt.AlignmentFlag.AlignHCenter), str(frame))
        p.drawText(QRectF(rect.left(), rect.bottom() + 3 + h, rect.width(), h), int(Qt.AlignmentFlag.AlignHCenter),
                   self.axis_labels()[0])
        x = rect.left()
        for text, color in self.legend():  # a short line of its colour, then its name
            p.setPen(QPen(color, 2))
            p.drawLine(QPointF(x, 4 + h / 2), QPointF(x + 12, 4 + h / 2))
            p.setPen(QPen(TEXT_COLOR, 1))
            width = fm.horizontalAdvance(text)
            p.drawText(QRectF(x + 16, 4, width + 2, h), int(Qt.AlignmentFlag.AlignVCenter), text)
            x += 16 + width + 12

    def _line(self, p: QPainter, rect: QRectF, points: list[tuple[int, float]], color: QColor) -> None:
        p.setBrush(Qt.BrushStyle.NoBrush)
        path = QPainterPath()
        previous = None
        for frame, value in sorted(points):
            if value is None or (isinstance(value, float) and math.isnan(value)):
                previous = None
                continue
            pt = QPointF(self._x(frame, rect), rect.bottom() - rect.height() * min(max(value, 0.0), 1.0))
            if previous is not None and frame == previous + 1:
                path.lineTo(pt)
            else:
                path.moveTo(pt)
            previous = frame
        p.setPen(QPen(color, 1.5))
        p.drawPath(path)
        p.setBrush(color)
        for frame, value in points:
            if len(points) < 60:
                p.drawEllipse(QPointF(self._x(frame, rect), rect.bottom() - rect.height() * min(max(value, 0), 1)),
                              1.5, 1.5)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt's name)
        rect = self._plot_rect()
        x = event.position().x() if hasattr(event, "position") else event.x()
        frac = (x - rect.left()) / max(rect.width(), 1.0)
        frame = int(round(min(max(frac, 0.0), 1.0) * max(self.num_frames - 1, 0)))
        if event.button() == Qt.MouseButton.LeftButton:
            self.frame_clicked.emit(frame)
