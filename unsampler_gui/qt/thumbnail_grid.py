"""The thumbnail grid: a virtualised QListView (icon mode) over a ``ThumbnailModel``.

Only the rows that are painted ask for their thumbnail, so 10,000 steps scroll smoothly and fill in
live while a run is going. Each cell shows the thumbnail, the step and the sigma. Arrow keys,
Home/End and PageUp/PageDown move the current frame; ``frameSelected(step)`` follows it and
``select_frame(step)`` sets it from outside (the sigma plot, the viewer).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QSize, Qt, Signal, Slot
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPalette
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QLabel, QLineEdit, QListView, QSizePolicy, QSpinBox,
                               QStyle, QStyledItemDelegate, QStyleOptionViewItem, QVBoxLayout, QWidget)

from ..core.errors import BadParameterError

from .frame_store import FrameStore
from .thumbnail_model import ThumbnailModel

#: Default thumbnail side, in pixels.
THUMB_SIZE = 96
PAD = 3
#: The gap between two cells' highlights, in pixels (half of it on each side of a cell).
GAP = 4


class ThumbnailDelegate(QStyledItemDelegate):
    """Paints a cell: the thumbnail centred in a square, then "step" and "σ sigma" below it.

    ``sizeHint`` never reads the model, so laying out 10,000 rows renders nothing.
    """

    def __init__(self, model: ThumbnailModel, parent=None):
        super().__init__(parent)
        self._model = model
        self._fill: Optional[QSize] = None  # the grid's cell, when it is wider than the content needs
        self._font = QFont()
        self._font.setPointSizeF(max(6.5, self._font.pointSizeF() * 0.8))
        self._fm = QFontMetrics(self._font)

    def _two_lines(self) -> bool:
        """Small thumbnails put the sigma on a second line, so that cells stay narrow."""
        return self._model.thumb_size() < self._one_line_width

    @property
    def _one_line_width(self) -> int:
        w = getattr(self, "_one_line_w", None)
        if w is None:
            w = self._one_line_w = self._fm.horizontalAdvance("00000  \u03c3 0.000000")
        return w

    def cell_size(self) -> QSize:
        s = self._model.thumb_size()
        if self._two_lines():
            return QSize(max(s, self._fm.horizontalAdvance("\u03c3 00.0000")) + 2 * PAD,
                         s + 3 * PAD + 2 * self._fm.height())
        return QSize(s + 2 * PAD, s + 3 * PAD + self._fm.height())

    def set_fill(self, size: Optional[QSize]) -> None:
        """Make each cell ``size`` (the grid's pitch), so that cells fill a row; None: the content's size."""
        self._fill = size

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:
        return self._fill if self._fill is not None else self.cell_size()

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        r = option.rect.adjusted(GAP // 2, GAP // 2, -(GAP - GAP // 2), -(GAP - GAP // 2))
        pal = option.palette
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        painter.save()
        if selected:
            painter.fillRect(r, pal.color(QPalette.ColorRole.Highlight))
        elif option.state & QStyle.StateFlag.State_MouseOver:
            painter.fillRect(r, pal.color(QPalette.ColorRole.Midlight))
        s = self._model.thumb_size()
        row = index.row()
        if not 0 <= row < self._model.row_count():
            painter.restore()
            return
        img = self._model.decoration(row)  # cached, or a placeholder after a request
        x = r.x() + (r.width() - img.width()) // 2
        y = r.y() + PAD + (s - img.height()) // 2
        painter.drawImage(x, y, img)
        step, sigma = self._model.caption(row)
        painter.setFont(self._font)
        fg = pal.color(QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text)
        muted = fg if selected else QColor(150, 150, 160)
        lh = self._fm.height()
        line = QRect(r.x() + PAD, r.y() + s + 2 * PAD, r.width() - 2 * PAD, lh)
        painter.setPen(fg)
        if self._two_lines():
            painter.drawText(line, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, step)
            painter.setPen(muted)
            painter.drawText(line.translated(0, lh), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                             sigma)
        else:
            painter.drawText(line, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, step)
            painter.setPen(muted)
            painter.drawText(line, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, sigma)
        painter.restore()


class ThumbnailGrid(QListView):
    """A grid of every available step; ``frameSelected(step)`` when the current cell changes."""

    frameSelected = Signal(int)

    def __init__(self, store: FrameStore, parent: Optional[QWidget] = None, thumb_size: int = THUMB_SIZE):
        super().__init__(parent)
        self._store = store
        self._pending_scroll: Optional[QPersistentModelIndex] = None
        self._model = ThumbnailModel(store, self)
        self._model.set_settings(size=int(thumb_size))
        self._delegate = ThumbnailDelegate(self._model, self)
        self.setModel(self._model)
        self.setItemDelegate(self._delegate)
        self.setViewMode(QListView.ViewMode.ListMode)  # with wrapping it is a grid, and lays out far faster than IconMode
        self.setMovement(QListView.Movement.Static)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(True)
        self.setUniformItemSizes(True)
        self.setLayoutMode(QListView.LayoutMode.SinglePass)  # uniform sizes: laying out 10k rows is cheap
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setDragEnabled(False)
        self.setMouseTracking(True)
        # Always there, so that the columns never change when a run grows past one screen; the cells' width
        # is then computed from a width that does not depend on the number of frames.
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOn)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setAutoFillBackground(True)  # the margins that centre the columns have the viewport's colour
        self.setBackgroundRole(QPalette.ColorRole.Base)
        self._apply_grid_size()
        self.selectionModel().currentChanged.connect(self._on_current_changed)
        self.verticalScrollBar().valueChanged.connect(self._on_scrolled)
        self.setAccessibleName("Thumbnail grid")

    @property
    def store(self) -> FrameStore:
        return self._store

    def thumbnail_model(self) -> ThumbnailModel:
        return self._model

    # -- selection ------------------------------------------------------------------------------

    def current_frame(self) -> int:
        """The frame of the current cell (-1 when none)."""
        idx = self.currentIndex()
        return self._model.frame_of(idx.row()) if idx.isValid() else -1

    @Slot(int)
    def select_frame(self, frame: int) -> None:
        """Make the cell of ``frame`` current (the one before it when the stride skips it) and scroll to it
        (emits ``frameSelected`` if the cell changed)."""
        if not 0 <= frame < self._store.n_steps or not self._model.row_count():
            return
        idx = self._model.index(self._model.row_of(frame))
        if idx != self.currentIndex():
            self.setCurrentIndex(idx)
        self._scroll_when_laid_out(idx)

    def _scroll_when_laid_out(self, idx: QModelIndex) -> None:
        # The batched layout places rows a few thousand at a time, so a far row may not be reachable
        # yet: keep trying as the layout grows (updateGeometries) until the row is on screen.
        self.scrollTo(idx, QAbstractItemView.ScrollHint.EnsureVisible)
        self._pending_scroll = None if self._on_screen(idx) else QPersistentModelIndex(idx)

    def _on_screen(self, idx: QModelIndex) -> bool:
        rect = self.visualRect(idx)
        return rect.isValid() and self.viewport().rect().contains(rect.center())

    def updateGeometries(self) -> None:
        super().updateGeometries()
        pending = self._pending_scroll
        if pending is not None:
            if not pending.isValid():
                self._pending_scroll = None
            else:
                self._scroll_when_laid_out(self._model.index(pending.row()))

    def _on_current_changed(self, current: QModelIndex, previous: QModelIndex) -> None:
        if current.isValid() and current.row() != (previous.row() if previous.isValid() else -1):
            self.frameSelected.emit(self._model.frame_of(current.row()))

    # -- stride and jumps -----------------------------------------------------------------------

    def set_stride(self, k: int) -> None:
        """Show every ``k``-th frame (0: an automatic choice for each sequence); the current frame stays."""
        cur = self.current_frame()
        self._model.set_stride(k)
        if cur >= 0:
            self.select_frame(cur)

    def stride(self) -> int:
        return self._model.stride

    def frame_for(self, text: str) -> int:
        """The frame a "go to" text names: a frame number ("250"), or a sigma ("σ 3.2", "s=3.2", "sigma 3.2")."""
        t = text.strip().lower().replace("\u03c3", "sigma ")
        st = self._store
        if not st.n_steps:
            raise BadParameterError("no frames to go to")
        for prefix in ("sigma", "s=", "s"):
            if t.startswith(prefix) and t[len(prefix):].strip(" =:"):
                try:
                    sigma = float(t[len(prefix):].strip(" =:"))
                except ValueError:
                    break
                if np.isnan(st.sigmas).all():  # a browsed batch file without stored sigmas
                    raise BadParameterError("go to: these frames have no stored sigmas; give a frame number")
                return int(np.argmin(np.abs(st.sigmas - sigma)))
        try:
            f = int(t)
        except ValueError:
            raise BadParameterError(f"go to: {text.strip()!r} is neither a frame number nor a sigma (\u03c3 2.5)")
        if not 0 <= f < st.n_steps:
            raise BadParameterError(f"go to: frame {f} is outside 0..{st.n_steps - 1}")
        return f

    def go_to(self, text: str) -> int:
        """Select the frame ``text`` names (``frame_for``) and return it; emits ``frameSelected``."""
        f = self.frame_for(text)
        if self._model.stride > 1 and f % self._model.stride:
            self.set_stride(1)  # the frame asked for gets its own cell
        self.select_frame(f)
        return f

    # -- options --------------------------------------------------------------------------------

    @Slot(int)
    def set_batch_item(self, item: int) -> None:
        """Show batch item ``item`` (for a batch of B > 1 latents)."""
        self._model.set_settings(item=max(0, min(int(item), self._store.batch - 1)))

    @Slot(int)
    def set_time_index(self, t: int) -> None:
        """Show latent frame ``t`` of video latents."""
        self._model.set_settings(time_index=max(0, min(int(t), self._store.time_steps - 1)))

    def set_display(self, mode, contrast) -> None:
        """``mode``: "rgb" or a channel; ``contrast``: "fixed", "auto" or "shared"."""
        self._model.set_settings(mode=mode, contrast=contrast)

    def set_thumb_size(self, size: int) -> None:
        self._model.set_settings(size=max(16, int(size)))
        self._apply_grid_size()

    def columns(self) -> int:
        """How many cells a row holds now."""
        return max(1, self.viewport().width() // max(1, self.gridSize().width()))

    def _apply_grid_size(self) -> None:
        """Cells share the row's width evenly: as many columns as the content's size allows, each as wide as
        the width divided by their number, and the pixels that do not divide split as margins on both sides.
        So no part-column of empty space is left at the right, whatever the width and the number of frames."""
        cell = self._delegate.cell_size()
        w, h = cell.width() + GAP, cell.height() + GAP
        m = self.viewportMargins()
        # the width with no margins, less one: QListView wraps a row whose cells reach its last pixel
        avail = self.maximumViewportSize().width() + m.left() + m.right() - 1
        cols = max(1, avail // w)
        pitch = max(w, avail // cols)
        rest = max(0, avail - cols * pitch)
        left = rest // 2
        size = QSize(pitch, h)
        self._delegate.set_fill(size)
        if (m.left(), m.right()) != (left, rest - left):
            self.setViewportMargins(left, 0, rest - left, 0)
        if self.gridSize() != size:
            self.setGridSize(size)
            self.doItemsLayout()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._apply_grid_size()

    # -- rendering ------------------------------------------------------------------------------

    def _on_scrolled(self, _value: int) -> None:
        # requests for the page just left are stale: the next paint asks for what is visible now
        self._model.drop_queued()

    def visible_rows(self) -> range:
        """The rows whose cells intersect the viewport (cells are laid out row by row, top to bottom)."""
        n = self._model.row_count()
        h = self.viewport().height()
        if n == 0 or h <= 0:
            return range(0)

        def first_where(pred) -> int:  # first row for which pred holds (pred is monotonic in the row)
            lo, hi = 0, n
            while lo < hi:
                mid = (lo + hi) // 2
                if pred(self.visualRect(self._model.index(mid))):
                    hi = mid
                else:
                    lo = mid + 1
            return lo

        first = first_where(lambda r: r.bottom() >= 0)
        stop = first_where(lambda r: r.top() >= h)
        return range(first, max(first, stop))

    def dataChanged(self, top_left, bottom_right, roles=()) -> None:
        """Repaint only when a changed row is on screen: while a run fills rows far below the visible
        page, QListView would otherwise repaint every visible cell for each batch of arrivals."""
        vis = self.visible_rows()
        if len(vis) and (bottom_right.row() < vis.start or top_left.row() >= vis.stop):
            return
        super().dataChanged(top_left, bottom_right, roles)

    def set_decoders(self, decoders) -> None:
        """Decode the thumbnails with TAESD when ``decoders`` (a ``PreviewDecoders``) has them turned on."""
        def follow(*_):
            self._model.set_decoder(*decoders.thumbnail_decoder())

        decoders.thumbnailsChanged.connect(follow)
        decoders.optionsChanged.connect(follow)
        follow()

    def shutdown(self) -> None:
        """Stop the thumbnail threads (the window calls it when closing)."""
        self._model.shutdown()

    def closeEvent(self, event) -> None:
        self._model.drop_queued()
        super().closeEvent(event)


class GridPane(QWidget):
    """The grid under a bar: the stride (every k-th frame, 0 = auto) and a "go to" box (a frame or a sigma)."""

    def __init__(self, grid: ThumbnailGrid, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.grid = grid
        self.stride_spin = QSpinBox(self)
        self.stride_spin.setRange(0, 100000)
        self.stride_spin.setSpecialValueText("auto")
        self.stride_spin.setPrefix("every ")
        self.stride_spin.setToolTip("Show every k-th frame (auto: the whole sequence in a few screens)")
        self.stride_spin.valueChanged.connect(grid.set_stride)
        self.goto_edit = QLineEdit(self)
        self.goto_edit.setPlaceholderText("go to frame or \u03c3 …")
        self.goto_edit.setToolTip("A frame number (250), or a sigma (\u03c3 3.2): the nearest frame is selected")
        self.goto_edit.setClearButtonEnabled(True)
        self.goto_edit.returnPressed.connect(self._go)
        self.info = QLabel(self)
        self.info.setTextFormat(Qt.TextFormat.PlainText)
        # its text changes with every sequence: it must never widen the grid (and with it the window)
        self.info.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        bar = QHBoxLayout()
        bar.setContentsMargins(4, 2, 4, 2)
        bar.addWidget(QLabel("Frames:", self))
        bar.addWidget(self.stride_spin)
        bar.addWidget(self.goto_edit, 1)
        bar.addWidget(self.info, 2)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addLayout(bar)
        lay.addWidget(grid, 1)
        grid.model().modelReset.connect(self._show_info)
        self.stride_spin.setValue(0)
        grid.set_stride(0)
        self._show_info()

    def _go(self) -> None:
        try:
            f = self.grid.go_to(self.goto_edit.text())
        except BadParameterError as e:
            self.info.setText(str(e))
            return
        self._show_info(f)

    def _show_info(self, frame: Optional[int] = None) -> None:
        m, st = self.grid.thumbnail_model(), self.grid.store
        n = st.n_steps
        text = f"{n} frames, every {m.stride}" if n else "no frames"
        if frame is not None:
            text += f"  \u2192 frame {frame}, step {st.schedule_step(frame)}, \u03c3 {st.sigma(frame):.4g}"
        self.info.setText(text)
        self.info.setToolTip(text)  # the whole line, where the bar is too narrow for it


def link(grid: "ThumbnailGrid", viewer, selection: bool = True) -> None:
    """Keep a grid and a ``FrameViewer`` in step: the viewer's batch item, time index and display
    (mode, contrast) drive the grid's thumbnails; with ``selection``, the current frame follows both
    ways too (leave it out where a window already syncs selection among all its views)."""
    if selection:
        grid.frameSelected.connect(viewer.select_frame)
        viewer.frameSelected.connect(grid.select_frame)
    viewer.batchItemChanged.connect(grid.set_batch_item)
    viewer.timeIndexChanged.connect(grid.set_time_index)
    viewer.displayChanged.connect(grid.set_display)
    grid.set_display(viewer.mode, viewer.contrast)
