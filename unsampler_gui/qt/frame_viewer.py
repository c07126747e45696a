"""The frame viewer: one step up close, its histogram and statistics, and statistics against step.

The big preview (latent2rgb or one channel), the histogram and the frame's mean/std/min/max are
computed on a background thread, newest request only (a ``latest_only`` ``Background``): scrolling
through 10,000 steps or playing never queues up work. ``wanted`` is the preview the viewer should show
(a ``PreviewKey``), ``shown`` the one on screen. The frame itself is fetched on that thread too
(``FrameStore.getter``: a frame of a live sequence is made there), and playback prefetches the frames
ahead of it. The per-step statistics plot reads ``store.stats`` (computed off the GUI thread, coarse first
for a sequence) beside the formula's expected curves (``store.expected``), and redraws at most a few
times a second.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QRectF, QSignalBlocker, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QColor, QFontMetrics, QPalette
from PySide6.QtWidgets import (QComboBox, QHBoxLayout, QLabel, QSizePolicy, QSlider, QSpinBox, QSplitter, QStyle,
                               QToolButton, QVBoxLayout, QWidget)

from ..core import preview
from ..core.pictures import format_sigma
from ..core.stats import histogram, one_frame_stats
from . import errors
from .background import Background
from .frame_store import FrameStore
from .plot_axes import sparse_axes
from .preview_decoders import PreviewDecoders
from .viewer_decode import ViewerDecode
from .viewer_tools import ViewerTools

#: Contrast choices: (label, setting). "shared" is the range of step 0 (the least noisy frame).
CONTRASTS = (("ComfyUI range", "fixed"), ("Auto per frame", "auto"), ("Shared (step 0)", "shared"))
HIST_BINS = 128
#: Redraw the statistics plot at most this often while a run is going (ms).
STATS_REFRESH_MS = 250
MEAN_COLOR, STD_COLOR, SIGMA_COLOR, MARK_COLOR = "#0072B2", "#E69F00", "#009E73", "#D55E00"
#: Frames made ahead of the one shown while playing.
PREFETCH = 8


def render_frame(frame, family, mode, contrast, time_index: int, reference=None) -> dict:
    """Everything the viewer shows for one frame (runs on a pool thread).

    Returns the uint8 image, the contrast range used, the histogram (of the whole frame, or of the
    channel shown) and the frame's statistics (raw latent values, every channel).
    """
    if contrast == "shared":
        contrast = preview.reference_range(reference if reference is not None else frame, family, mode, time_index)
    values = preview.display_values(frame, family, mode, time_index)
    lo, hi = preview.contrast_range(values, contrast)
    img = preview.to_uint8(values, lo, hi)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    source = frame if mode == preview.RGB else frame[int(mode)]
    counts, edges = histogram(source, bins=HIST_BINS)
    return {"image": img, "range": (lo, hi), "hist": (counts, edges), "stats": one_frame_stats(frame)}


class PreviewKey(NamedTuple):
    """Which preview: the store's generation (the run), the step, the batch item, time index, mode and contrast."""

    generation: int
    step: int
    item: int
    time_index: int
    mode: object
    contrast: str


class FrameViewer(QWidget):
    """One frame of the store, large, with its statistics; ``frameSelected(step)`` when the step changes."""

    frameSelected = Signal(int)
    batchItemChanged = Signal(int)
    timeIndexChanged = Signal(int)
    displayChanged = Signal(object, object)  # mode ("rgb" or a channel), contrast ("fixed", "auto", "shared")
    rendered = Signal(int)  # the preview of this step is on screen (tests, status)

    def __init__(self, store: FrameStore, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self._store = store
        self._current = -1
        self._item = 0
        self._time = 0
        self._shown: Optional[PreviewKey] = None
        self._asked: Optional[PreviewKey] = None  # the newest request sent to the pool
        self.last_render: Optional[dict] = None
        self._frame_size: Optional[tuple] = None  # (width, height) of the latent preview: the image's place
        self.decoders = PreviewDecoders(self)  # the decoded previews' state, shared with the thumbnails
        self._pool = Background(self, threads=1, name="frame-viewer", latest_only=True)
        self._pool.done.connect(self._on_rendered)
        self._pool.failed.connect(self._on_failed)
        self._prefetch = Background(self, threads=1, name="frame-prefetch", latest_only=True)
        self._play_timer = QTimer(self)
        self._play_timer.timeout.connect(self.advance)
        self._stats_timer = QTimer(self)
        self._stats_timer.setSingleShot(True)
        self._stats_timer.setInterval(STATS_REFRESH_MS)
        self._stats_timer.timeout.connect(self._refresh_stats_plot)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self._build()
        self._apply_palette()
        store.reset.connect(self._on_reset)
        store.framesAdded.connect(self._on_frames_added)
        store.statsChanged.connect(self._on_stats_changed)
        store.finished.connect(self._on_stats_changed)
        store.add_renderer(self)
        self._on_reset()

    # -- layout ---------------------------------------------------------------------------------

    def _build(self) -> None:
        self.mode_combo = QComboBox(self)
        self.mode_combo.setToolTip("RGB: ComfyUI's latent2rgb preview of the family, or the frame decoded by the\n"
                                   "family's TAESD or full VAE; or one latent channel in grey")
        self.contrast_combo = QComboBox(self)
        for label, value in CONTRASTS:
            self.contrast_combo.addItem(label, value)
        self.contrast_combo.setToolTip("ComfyUI range: model-space -1..1, as ComfyUI's previews\n"
                                       "Auto per frame: each frame stretched (0.5-99.5 percentiles)\n"
                                       "Shared: every frame on step 0's range, so the noise shows as it grows")
        self.item_label = QLabel("Item", self)
        self.item_spin = QSpinBox(self)
        self.item_spin.setToolTip("Batch item shown (the input latent had several)")
        self.time_label = QLabel("Time", self)
        self.time_spin = QSpinBox(self)
        self.time_spin.setToolTip("Latent frame of the video latent shown")
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        for w in (self.mode_combo, self.contrast_combo, self.item_label, self.item_spin, self.time_label,
                  self.time_spin):
            top.addWidget(w)
        top.addStretch(1)

        self.image_view = pg.GraphicsLayoutWidget(self)
        self.image_view.setMinimumSize(120, 100)
        self.view_box = self.image_view.addViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.view_box.addItem(self.image_item)
        self.placeholder_text = pg.TextItem("No frames yet: open a latent", anchor=(0.5, 0.5))
        # The text's size in data units depends on the view's scale: were it part of the auto-range
        # bounds, every range change would move the bounds again, a loop of repaints (dozens a second).
        # The range is set by hand instead: around the text while there is no image, and to the image
        # when the first one arrives.
        self.view_box.disableAutoRange()
        self.view_box.addItem(self.placeholder_text, ignoreBounds=True)
        self._frame_placeholder()

        self.play_button = QToolButton(self)
        self.play_button.setCheckable(True)
        self.play_button.setIcon(self.style().standardIcon(QStyle.StandardPixmap.SP_MediaPlay))
        self.play_button.setToolTip("Play the sequence (Space)")
        self.fps_spin = QSpinBox(self)
        self.fps_spin.setRange(1, 60)
        self.fps_spin.setValue(12)
        self.fps_spin.setSuffix(" fps")
        self.slider = QSlider(Qt.Orientation.Horizontal, self)
        self.slider.setToolTip("Step (arrow keys, Home, End)")
        nav = QHBoxLayout()
        nav.setContentsMargins(0, 0, 0, 0)
        nav.addWidget(self.play_button)
        nav.addWidget(self.slider, 1)
        nav.addWidget(self.fps_spin)

        self.step_label = QLabel(self)
        self.step_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.stats_label = QLabel(self)
        self.stats_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        for lab in (self.step_label, self.stats_label):
            lab.setTextFormat(Qt.TextFormat.PlainText)
            lab.setWordWrap(True)  # a narrow viewer (1024x600) wraps the readout instead of cutting it
            lab.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

        self.hist_plot = pg.PlotWidget(self, axisItems=sparse_axes("left", "bottom"))
        self.hist_plot.setMinimumHeight(40)
        self.hist_plot.setMenuEnabled(False)
        self.hist_plot.setMouseEnabled(x=False, y=False)
        self.hist_plot.hideButtons()
        self.hist_plot.getPlotItem().setTitle("")
        self.hist_plot.hideAxis("left")  # counts: at a plot this low their labels pile up
        self.hist_curve = self.hist_plot.plot([0, 1], [0], stepMode="center", fillLevel=0)

        self.stats_plot = pg.PlotWidget(self, axisItems=sparse_axes("left", "bottom", "right"))
        self.stats_plot.setMinimumHeight(80)
        self.stats_plot.setMenuEnabled(False)
        self.stats_plot.hideButtons()
        pi = self.stats_plot.getPlotItem()
        pi.setDownsampling(auto=True, mode="peak")  # 10,000 steps draw as ~2 points a pixel
        pi.getAxis("bottom").enableAutoSIPrefix(False)  # steps are counts: "12000", not "12 (x1e+03)"
        self.stats_plot.setToolTip("Mean and std of each step's frame (solid: measured, dotted: what the formula "
                                   "expects), and sigma on the right-hand axis")
        # what the curves are goes in a title line above them (a legend would sit on the curves of a plot this
        # low), and the axes label their major ticks only, so that short axes never pile their labels up
        self.mean_curve = pi.plot([], [], name="mean")
        self.std_curve = pi.plot([], [], name="std")
        self.expected_mean_curve = pi.plot([], [], name="expected mean")
        self.expected_std_curve = pi.plot([], [], name="expected std")
        self.sigma_box = pg.ViewBox(enableMenu=False)
        self.sigma_box.setMouseEnabled(x=False, y=False)
        pi.showAxis("right")
        pi.scene().addItem(self.sigma_box)
        pi.getAxis("right").linkToView(self.sigma_box)
        self.sigma_box.setXLink(pi)
        self.sigma_curve = pg.PlotDataItem([], [])
        self.sigma_curve.setDownsampling(auto=True, method="peak")
        self.sigma_box.addItem(self.sigma_curve)
        pi.vb.sigResized.connect(self._sync_sigma_box)
        self.step_line = pg.InfiniteLine(angle=90, movable=True)
        pi.addItem(self.step_line)
        self.step_line.sigPositionChangeFinished.connect(self._step_line_moved)

        plots = QSplitter(Qt.Orientation.Vertical, self)
        plots.addWidget(self.image_view)
        plots.addWidget(self.hist_plot)
        plots.addWidget(self.stats_plot)
        plots.setStretchFactor(0, 5)
        plots.setStretchFactor(1, 1)
        plots.setStretchFactor(2, 2)
        plots.setChildrenCollapsible(False)
        self.splitter = plots

        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(top)
        lay.addWidget(plots, 1)
        lay.addLayout(nav)
        lay.addWidget(self.step_label)
        lay.addWidget(self.stats_label)
        self.tools = ViewerTools(self, nav)  # value under the cursor, fit, A/B (qt/viewer_tools.py)
        self.decode = ViewerDecode(self, self.decoders)  # TAESD / full VAE (qt/viewer_decode.py)
        lay.addWidget(self.tools.readout)

        self.mode_combo.currentIndexChanged.connect(self._display_changed)
        self.contrast_combo.currentIndexChanged.connect(self._display_changed)
        self.item_spin.valueChanged.connect(self._item_changed)
        self.time_spin.valueChanged.connect(self._time_changed)
        self.slider.valueChanged.connect(self.select_frame)
        self.play_button.toggled.connect(self._play_toggled)
        self.fps_spin.valueChanged.connect(self._fps_changed)

    def _sync_sigma_box(self) -> None:
        self.sigma_box.setGeometry(self.stats_plot.getPlotItem().vb.sceneBoundingRect())
        self.sigma_box.linkedViewChanged(self.stats_plot.getPlotItem().vb, self.sigma_box.XAxis)

    def _apply_palette(self) -> None:
        pal = self.palette()
        base = pal.color(QPalette.ColorRole.Base)
        text = pal.color(QPalette.ColorRole.Text)
        self.image_view.setBackground(pal.color(QPalette.ColorRole.Window).darker(115))
        self.placeholder_text.setColor(text)
        for plot in (self.hist_plot, self.stats_plot):
            plot.setBackground(base)
            pi = plot.getPlotItem()
            for name in ("left", "bottom", "right"):
                ax = pi.getAxis(name)
                ax.setPen(text)
                ax.setTextPen(text)
        muted = QColor(text)
        muted.setAlpha(90)
        self.hist_curve.setPen(pg.mkPen(text, width=1))
        self.hist_curve.setBrush(muted)
        self.mean_curve.setPen(pg.mkPen(MEAN_COLOR, width=1.5))
        self.std_curve.setPen(pg.mkPen(STD_COLOR, width=1.5))
        self.expected_mean_curve.setPen(pg.mkPen(MEAN_COLOR, width=1, style=Qt.PenStyle.DotLine))
        self.expected_std_curve.setPen(pg.mkPen(STD_COLOR, width=1, style=Qt.PenStyle.DotLine))
        self.sigma_curve.setPen(pg.mkPen(SIGMA_COLOR, width=1, style=Qt.PenStyle.DashLine))
        self.step_line.setPen(pg.mkPen(MARK_COLOR, width=1))
        self._titles()

    def changeEvent(self, event) -> None:
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            self._apply_palette()
        super().changeEvent(event)

    # -- state ----------------------------------------------------------------------------------

    @property
    def store(self) -> FrameStore:
        return self._store

    def current_frame(self) -> int:
        return self._current

    @property
    def mode(self):
        """"rgb" or a channel number."""
        data = self.mode_combo.currentData()
        return preview.RGB if data is None else data

    @property
    def contrast(self) -> str:
        return self.contrast_combo.currentData() or "fixed"

    @property
    def batch_item(self) -> int:
        return self._item

    @property
    def time_index(self) -> int:
        return self._time

    def is_playing(self) -> bool:
        return self._play_timer.isActive()

    # -- selection ------------------------------------------------------------------------------

    @Slot(int)
    def select_frame(self, step: int) -> None:
        """Show ``step`` (clamped to the steps that are in); emits ``frameSelected`` if it changed."""
        n = self._store.available
        if n == 0:
            return
        step = max(0, min(int(step), n - 1))
        if step == self._current:
            return
        self._current = step
        with QSignalBlocker(self.slider):
            self.slider.setValue(step)
        self._update_step_label()
        self.step_line.setValue(self._store.position(step))
        self._request_render()
        self.frameSelected.emit(step)

    def set_display(self, mode=None, contrast=None) -> None:
        """Choose "rgb" or a channel, and "fixed", "auto" or "shared" contrast."""
        if mode is not None:
            i = self.mode_combo.findData(mode)
            if i >= 0:
                self.mode_combo.setCurrentIndex(i)
        if contrast is not None:
            i = self.contrast_combo.findData(contrast)
            if i >= 0:
                self.contrast_combo.setCurrentIndex(i)

    @Slot(int)
    def set_batch_item(self, item: int) -> None:
        self.item_spin.setValue(int(item))

    @Slot(int)
    def set_time_index(self, t: int) -> None:
        self.time_spin.setValue(int(t))

    def keyPressEvent(self, event) -> None:
        key = event.key()
        n = self._store.available
        page = max(1, n // 20)
        moves = {Qt.Key.Key_Left: -1, Qt.Key.Key_Up: -1, Qt.Key.Key_Right: 1, Qt.Key.Key_Down: 1,
                 Qt.Key.Key_PageUp: -page, Qt.Key.Key_PageDown: page}
        if key in moves and n:
            self.select_frame(max(0, self._current) + moves[key])
        elif key == Qt.Key.Key_Home and n:
            self.select_frame(0)
        elif key == Qt.Key.Key_End and n:
            self.select_frame(n - 1)
        elif key == Qt.Key.Key_Space:
            self.play_button.toggle()
        else:
            super().keyPressEvent(event)
            return
        event.accept()

    # -- play -----------------------------------------------------------------------------------

    def play(self) -> None:
        self.play_button.setChecked(True)

    def stop(self) -> None:
        self.play_button.setChecked(False)

    def _play_toggled(self, on: bool) -> None:
        if on and self._store.available > 1 and self.isVisible():
            self._play_timer.start(max(1, round(1000 / self.fps_spin.value())))
        else:
            self._play_timer.stop()
            if self.play_button.isChecked():
                with QSignalBlocker(self.play_button):
                    self.play_button.setChecked(False)
        icon = QStyle.StandardPixmap.SP_MediaPause if self._play_timer.isActive() else QStyle.StandardPixmap.SP_MediaPlay
        self.play_button.setIcon(self.style().standardIcon(icon))

    def _fps_changed(self, fps: int) -> None:
        if self._play_timer.isActive():
            self._play_timer.setInterval(max(1, round(1000 / fps)))

    def advance(self) -> None:
        """One playback step: the next frame; after the last, the first once the run is complete (until then
        it waits for the run to catch up)."""
        n = self._store.available
        if n == 0:
            self.stop()
            return
        nxt = self._current + 1
        if nxt >= n:
            if not self._store.is_finished:
                return  # wait for the run to catch up
            nxt = 0
        self.select_frame(nxt)
        seq = self._store.sequence
        if seq is not None:  # make the next frames while this one is shown
            ahead = [(nxt + k) % n for k in range(1, PREFETCH + 1)]
            self._prefetch.submit(lambda task: None if task.is_cancelled() else seq.frames(ahead))

    def hideEvent(self, event) -> None:
        self.stop()
        super().hideEvent(event)

    def closeEvent(self, event) -> None:
        self.stop()
        self._stats_timer.stop()
        super().closeEvent(event)

    # -- options --------------------------------------------------------------------------------

    def _display_changed(self, _index: int = 0) -> None:
        self._request_render()
        self.displayChanged.emit(self.mode, self.contrast)

    def _item_changed(self, item: int) -> None:
        if item == self._item:
            return
        self._item = item
        self._request_render()
        self._refresh_stats_plot()
        self.batchItemChanged.emit(item)

    def _time_changed(self, t: int) -> None:
        if t == self._time:
            return
        self._time = t
        self._request_render()
        self.timeIndexChanged.emit(t)

    # -- store ----------------------------------------------------------------------------------

    def _on_reset(self) -> None:
        st = self._store
        self.stop()
        self._current = -1
        self._pool.drop()  # a preview in flight is the old run's
        self._shown = self._asked = None
        self.last_render = None
        self.image_item.clear()
        self._frame_size = None
        self._frame_placeholder()
        self.hist_curve.setData([0, 1], [0])
        mode = self.mode
        with QSignalBlocker(self.mode_combo):
            self.mode_combo.clear()
            self.mode_combo.addItem("RGB (latent2rgb)", preview.RGB)
            for c in range(st.channels):
                self.mode_combo.addItem(f"Channel {c}", c)
            i = self.mode_combo.findData(mode)
            self.mode_combo.setCurrentIndex(max(0, i))
            self.decode.install_modes()  # RGB (TAESD), RGB (full VAE)
        with QSignalBlocker(self.item_spin):
            self.item_spin.setRange(0, max(0, st.batch - 1))
            self._item = min(self._item, st.batch - 1)
            self.item_spin.setValue(self._item)
        with QSignalBlocker(self.time_spin):
            self.time_spin.setRange(0, max(0, st.time_steps - 1))
            self._time = min(self._time, max(0, st.time_steps - 1))
            self.time_spin.setValue(self._time)
        for w in (self.item_label, self.item_spin):
            w.setVisible(st.batch > 1)
        for w in (self.time_label, self.time_spin):
            w.setVisible(st.is_video)
        with QSignalBlocker(self.slider):
            self.slider.setRange(0, 0)
        self._update_step_label()
        self.stats_label.setText("")
        # empty plots get fixed ranges: the histogram a unit box until the first frame is shown, the
        # statistics the run's steps from the start, so that the axis stays put as they come in
        self.hist_plot.setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
        self.stats_plot.setXRange(0, max(1, st.n_steps - 1) if st.plan is not None else 1, padding=0.02)
        self._hist_what = None
        self._titles()
        self._refresh_stats_plot()
        if st.plan is not None:
            self._sigma_plot_data()

    def _on_frames_added(self, start: int, stop: int) -> None:
        n = self._store.available
        with QSignalBlocker(self.slider):
            self.slider.setRange(0, max(0, n - 1))
        if self._current < 0 and n:
            self.select_frame(0)
        else:
            self._update_step_label()

    def _on_stats_changed(self, *_args) -> None:
        if not self._stats_timer.isActive():
            self._stats_timer.start()

    def _sigma_plot_data(self) -> None:
        st = self._store
        order = np.argsort(st.positions, kind="stable")
        x = st.positions[order].astype(np.float64)
        self.sigma_curve.setData(x, st.sigmas[order])
        self.sigma_box.enableAutoRange()

    def _refresh_stats_plot(self) -> None:
        """Mean and std against step for the shown item (the steps whose statistics are in), and the
        formula's expected ones (a sequence's, at once)."""
        st = self._store
        exp = st.expected if st.plan is not None else None
        if exp is not None:
            item = min(self._item, st.batch - 1)
            order = np.argsort(st.positions, kind="stable")
            x = st.positions[order].astype(np.float64)
            self.expected_mean_curve.setData(x, exp["mean"][order, item])
            self.expected_std_curve.setData(x, exp["std"][order, item])
        else:
            self.expected_mean_curve.setData([], [])
            self.expected_std_curve.setData([], [])
        if st.plan is None or st.stats.count == 0:
            self.mean_curve.setData([], [])
            self.std_curve.setData([], [])
            if st.plan is None:
                self.sigma_curve.setData([], [])
            return
        item = min(self._item, st.batch - 1)
        order = np.argsort(st.positions, kind="stable")
        filled = st.stats.filled[order]
        x = st.positions[order][filled].astype(np.float64)
        self.mean_curve.setData(x, st.stats.series("mean", item)[order][filled])
        self.std_curve.setData(x, st.stats.series("std", item)[order][filled])

    def _titles(self) -> None:
        """The plots' title lines, and their axes' values only when there is something to read on them: an empty
        plot says what will come instead of showing a made-up 0..1 range."""
        muted = self.palette().color(QPalette.ColorRole.PlaceholderText).name()
        what = getattr(self, "_hist_what", None)
        small = "<span style='font-size:8pt; color:%s'>%s</span>"
        self._set_title(self.hist_plot, small % (muted, f"histogram, {what}" if what else
                                                 "histogram of the frame shown: no frame yet"))
        has_plan = self._store.plan is not None
        if has_plan:
            key = " · ".join(f"<span style='color:{c}'>{n}</span>" for n, c in
                                  (("mean", MEAN_COLOR), ("std", STD_COLOR), ("sigma", SIGMA_COLOR)))
            title = small % (muted, f"{key} per step")
        else:
            title = small % (muted, "mean, std and sigma per step: no frames yet")
        self._set_title(self.stats_plot, title)
        for name in ("left", "bottom", "right"):
            self.stats_plot.getPlotItem().getAxis(name).setStyle(showValues=has_plan)
        self.step_line.setVisible(has_plan)
        self.hist_plot.getPlotItem().getAxis("bottom").setStyle(showValues=what is not None)

    def _set_title(self, plot, html: str) -> None:
        """A title row one small line high (pyqtgraph's is 30 px: on a low plot, room its axis values need)."""
        pi = plot.getPlotItem()
        pi.setTitle(html)
        h = QFontMetrics(self.font()).height()
        pi.titleLabel.setMaximumHeight(h)
        pi.layout.setRowFixedHeight(0, h)

    def plots_empty(self) -> dict:
        """Which plots show no data (their axes without values): ``{"hist": bool, "stats": bool}``."""
        return {"hist": not self.hist_plot.getPlotItem().getAxis("bottom").style["showValues"],
                "stats": not self.stats_plot.getPlotItem().getAxis("left").style["showValues"]}

    def _step_line_moved(self) -> None:
        st = self._store
        if st.available == 0:
            return
        x = self.step_line.value()
        pos = st.positions[:st.available]
        self.select_frame(int(np.argmin(np.abs(pos - x))))
        self.step_line.setValue(st.position(self._current))

    # -- rendering ------------------------------------------------------------------------------

    @property
    def wanted(self) -> Optional[PreviewKey]:
        """The preview the viewer should show now: the current step, item, time index and display."""
        if self._current < 0:
            return None
        return PreviewKey(self._store.generation, self._current, self._item, self._time, self.mode, self.contrast)

    @property
    def shown(self) -> Optional[PreviewKey]:
        """The preview on screen (None before the first one of a run)."""
        return self._shown

    def busy(self) -> bool:
        """True while the preview to show is being rendered."""
        return self._pool.pending()

    def _request_render(self) -> None:
        st = self._store
        key = self.wanted
        if key is None or not st.has(key.step) or key == self._shown:
            return
        if key == self._asked and self._pool.pending():
            return  # already on its way
        self._asked = key
        get = st.getter(key.step, key.item)  # called on the pool thread: a sequence's frame is made there
        get_ref = st.getter(0, key.item) if key.contrast == "shared" and st.has(0) else None
        family = st.family

        def render(task):
            frame = get()
            ref = get_ref() if get_ref is not None else None
            return render_frame(frame, family, key.mode, key.contrast, key.time_index, ref)

        self._pool.submit(render, key)

    def _on_rendered(self, key: PreviewKey, result: dict) -> None:  # the newest request only
        self._show(key, result)

    def _on_failed(self, key: PreviewKey, exc: BaseException) -> None:
        self.stats_label.setText(f"preview failed: {errors.user_message(exc)}")

    def _frame_placeholder(self) -> None:
        self.placeholder_text.setPos(0, 0)
        self.placeholder_text.setVisible(True)
        self.view_box.setRange(xRange=(-1, 1), yRange=(-1, 1), padding=0)

    def _show(self, key: PreviewKey, r: dict) -> None:
        self._shown = key
        self.last_render = r
        self.placeholder_text.setVisible(False)
        img = r["image"]
        size = (img.shape[1], img.shape[0])
        first = self.image_item.image is None or self._frame_size != size
        self._frame_size = size
        self.image_item.setImage(img, levels=(0, 255), autoLevels=False)
        self.image_item.setRect(QRectF(0, 0, *size))
        if first:
            self.view_box.autoRange(padding=0.01)
        counts, edges = r["hist"]
        self.hist_plot.enableAutoRange()
        self.hist_curve.setData(edges, counts.astype(np.float64))
        self._hist_what = "all channels" if key.mode == preview.RGB else f"channel {key.mode}"
        self._titles()
        s = r["stats"]
        lo, hi = r["range"]
        self.stats_label.setText(f"mean {s['mean']:.4g}   std {s['std']:.4g}   min {s['min']:.4g}   "
                                 f"max {s['max']:.4g}   (display {lo:.3g}..{hi:.3g})")
        self.rendered.emit(key.step)

    def show_picture(self, img: np.ndarray) -> None:
        """Put a decoded picture (uint8 [H, W, 3]) on screen in the latent preview's place and size."""
        if self._frame_size is None:
            return
        self.image_item.setImage(img, levels=(0, 255), autoLevels=False)
        self.image_item.setRect(QRectF(0, 0, *self._frame_size))

    def rerender(self) -> None:
        """Show the latent preview on screen again (after a decoded picture), without making it again."""
        if self._shown is not None and self.last_render is not None:
            self._show(self._shown, self.last_render)

    def _update_step_label(self) -> None:
        st = self._store
        if st.plan is None:
            self.step_label.setText("No frames: open a latent")
            return
        if self._current < 0:
            self.step_label.setText(f"{st.available} of {st.n_steps} frames in")
            return
        i = self._current
        self.step_label.setText(
            f"frame {i} of {st.n_steps}   step {st.schedule_step(i)}   \u03c3 {format_sigma(st.sigma(i))}   "
            f"raw {format_sigma(st.raw_sigma(i))}")

    # -- threads --------------------------------------------------------------------------------

    def wait(self, msecs: int = -1) -> bool:
        return self._pool.wait(msecs) and self.decode.wait(msecs)

    def shutdown(self) -> None:
        """Stop playing, the timers and the preview thread (the window calls it when closing)."""
        self.stop()
        self._stats_timer.stop()
        self._prefetch.shutdown()
        self._pool.shutdown()
        self.decode.shutdown()
        self.decoders.shutdown()
