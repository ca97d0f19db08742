"""A small plot of one object's area and confidence over the frames; click a frame to go there."""

from __future__ import annotations

import math

from qtpy.QtCore import QPointF, QRectF, Qt, Signal
from qtpy.QtGui import QColor, QPainter, QPainterPath, QPen
from qtpy.QtWidgets import QSizePolicy, QWidget

AREA_COLOR = QColor(80, 170, 255)
CONFIDENCE_COLOR = QColor(255, 170, 40)
DOUBT_COLOR = QColor(255, 60, 60)


class TrackPlot(QWidget):
    """Area (blue, scaled to its maximum) and confidence (orange: presence x predicted IoU, 0-1) of the
    selected object per frame; red ticks mark doubtful frames, a grey line the frame in view.
    ``frame_clicked(frame)`` is emitted on a click."""

    frame_clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumHeight(70)
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

    def _x(self, frame: float, rect: QRectF) -> float:
        span = max(self.num_frames - 1, 1)
        return rect.left() + rect.width() * frame / span

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = QRectF(self.rect()).adjusted(4, 4, -4, -4)
        p.setPen(QPen(QColor(128, 128, 128), 1))
        p.drawRect(rect)
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

    def mousePressEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        rect = QRectF(self.rect()).adjusted(4, 4, -4, -4)
        x = event.position().x() if hasattr(event, "position") else event.x()
        frac = (x - rect.left()) / max(rect.width(), 1.0)
        frame = int(round(min(max(frac, 0.0), 1.0) * max(self.num_frames - 1, 0)))
        if event.button() == Qt.MouseButton.LeftButton:
            self.frame_clicked.emit(frame)
