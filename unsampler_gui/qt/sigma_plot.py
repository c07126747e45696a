"""The sigma plot: a model's full schedule, the start/end cut, and the frames the run will make.

It redraws as the parameters change, with no run: schedules are computed off the GUI thread (a
``latest_only`` ``Background``), because some schedulers are slow to import (``beta`` needs scipy) or
to compute at 10,000 steps, and only the newest answer is drawn. Sigmas are in model space, as ComfyUI
prints them; the hover readout adds the raw-space noise level ``sigma / scale_factor`` that the node adds
to the latent.

x is the schedule index (ComfyUI's step); frame ``i`` of the output is schedule index ``e - 1 - i``
(the node flips the slice to run from low to high noise).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, Qt, Signal, Slot
from PySide6.QtGui import QAction, QColor, QPalette
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QMenu, QSizePolicy, QToolButton, QVBoxLayout, QWidget

from .. import core
from ..core.sigmas import slice_bounds
from . import errors
from .background import Background
from .plot_axes import sparse_axes

#: Colours for compared schedulers (colour-blind friendly, Okabe-Ito).
COMPARE_COLORS = ("#E69F00", "#56B4E9", "#009E73", "#CC79A7", "#D55E00", "#0072B2", "#F0E442", "#999999")
#: Above this many frames the slice is drawn as a line without a symbol per point.
MAX_SYMBOLS = 300


@dataclass(frozen=True)
class ScheduleRequest:
    """What the plot needs to know: the family (with overrides), sampler, scheduler, steps and cut."""

    family: core.Family
    sampler: str
    scheduler: str
    steps: int
    start_at_step: int
    end_at_step: int
    compare: tuple = ()


@dataclass
class SigmaData:
    """A computed schedule, ready to draw (numpy, float32 values as float64)."""

    request: ScheduleRequest
    schedule: np.ndarray  # model space, high to low
    start: int  # s of the node's slice schedule[s:e]
    stop: int  # e
    scale_factor: float
    compare: dict = field(default_factory=dict)  # scheduler name -> schedule

    @property
    def n_frames(self) -> int:
        return max(0, self.stop - self.start)

    @property
    def frame_sigmas(self) -> np.ndarray:
        """Model-space sigmas of the output frames, low to high (``core.model_space_sigmas``)."""
        return self.schedule[self.start:self.stop][::-1].copy()

    def frame_to_index(self, frame: int) -> int:
        return self.stop - 1 - frame

    def index_to_frame(self, index: int) -> int:
        return self.stop - 1 - index


def compute_sigma_data(req: ScheduleRequest) -> SigmaData:
    """Compute everything the plot draws (runs on a worker thread)."""
    sched = core.ksampler_sigmas(req.family, req.sampler, req.scheduler, req.steps)
    s, e = slice_bounds(req.steps, req.start_at_step, req.end_at_step)
    comp = {}
    for name in req.compare:
        if name != req.scheduler:
            comp[name] = core.ksampler_sigmas(req.family, req.sampler, name, req.steps).double().numpy()
    return SigmaData(request=req, schedule=sched.double().numpy(), start=s, stop=e,
                     scale_factor=float(req.family.latent.scale_factor), compare=comp)


class SigmaPlot(QWidget):
    """pyqtgraph view of a schedule. ``set_request`` redraws; a click selects a frame."""

    frameSelected = Signal(int)
    #: Emitted after new data is drawn (the argument is the ``SigmaData``).
    updated = Signal(object)
    #: Emitted with a message when the parameters give no schedule (the plot keeps the last one).
    failed = Signal(str)

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self._data: Optional[SigmaData] = None
        self._request: Optional[ScheduleRequest] = None
        self._selected: Optional[int] = None
        self._compare: list = []
        self._compute = Background(self, name="sigma plot", latest_only=True)
        self._compute.done.connect(self._on_ready)
        self._compute.failed.connect(self._on_failed)

        self.plot = pg.PlotWidget(self, axisItems=sparse_axes("left"))  # a low plot: labels that never pile up
        self.plot.setMenuEnabled(False)
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        for axis in ("left", "bottom"):  # grid lines at major ticks only: minor ones cost ~10 ms a repaint
            self.plot.getPlotItem().getAxis(axis).setStyle(maxTickLevel=0)
        self.plot.setLabel("bottom", "schedule step (sigma index)")
        self.plot.setLabel("left", "sigma (model space)")
        self.plot.setMinimumHeight(90)  # the window fits a 1024x600 screen
        pi = self.plot.getPlotItem()
        pi.setDownsampling(auto=True, mode="peak")  # 10,000-point schedules draw as ~2 points a pixel
        self.legend = pi.addLegend(offset=(-10, 10))
        self.region = pg.LinearRegionItem(movable=False)
        self.region.setZValue(-10)
        pi.addItem(self.region)
        self.full_curve = pi.plot(name="full schedule")
        self.slice_curve = pi.plot(name="frames (start..end)")
        self.marker_line = pg.InfiniteLine(angle=90, movable=False)
        self.marker_line.setVisible(False)
        pi.addItem(self.marker_line, ignoreBounds=True)
        # the selection and hover markers are never part of the auto-range: the view fits the schedule only
        self.marker = pg.PlotDataItem(symbol="o", symbolSize=11)
        self.hover = pg.PlotDataItem(symbol="o", symbolSize=7)
        for item in (self.marker, self.hover):
            pi.addItem(item, ignoreBounds=True)
        self.marker_label = pg.TextItem("", anchor=(0, 1))  # "frame i · step k · σ" beside the marker
        pi.addItem(self.marker_label, ignoreBounds=True)
        self.compare_curves: dict = {}

        self.log_y = QCheckBox("Log y", self)
        self.log_y.setToolTip("Logarithmic sigma axis (the final 0 is left out)")
        self.log_y.toggled.connect(self.set_log_y)
        self.compare_button = QToolButton(self)
        self.compare_button.setText("Compare")
        self.compare_button.setToolTip("Overlay the full schedules of other schedulers (same sampler and steps)")
        self.compare_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.compare_menu = QMenu(self.compare_button)
        for name in core.scheduler_names():
            act = QAction(name, self.compare_menu, checkable=True)
            act.toggled.connect(self._compare_toggled)
            self.compare_menu.addAction(act)
        self.compare_button.setMenu(self.compare_menu)
        self.readout = QLabel(self)
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.readout.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)  # never widens the dock
        self.fit_button = QToolButton(self)
        self.fit_button.setText("Fit")
        self.fit_button.setToolTip("Fit the view to the schedule again (or double-click the plot)")
        self.fit_button.setEnabled(False)
        self.fit_button.clicked.connect(self.fit_view)

        top = QHBoxLayout()
        top.setContentsMargins(4, 2, 4, 0)
        top.addWidget(self.readout, 1)
        top.addWidget(self.fit_button)
        top.addWidget(self.compare_button)
        top.addWidget(self.log_y)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        lay.addLayout(top)
        lay.addWidget(self.plot, 1)

        scene = self.plot.scene()
        scene.sigMouseMoved.connect(self._on_mouse_moved)
        scene.sigMouseClicked.connect(self._on_mouse_clicked)
        vb = pi.getViewBox()
        vb.sigRangeChangedManually.connect(self._zoomed_by_user)
        vb.sigStateChanged.connect(lambda *_: self.fit_button.setEnabled(self.user_zoomed()))
        self.plot.viewport().installEventFilter(self)  # the hover marker goes when the mouse leaves
        self._apply_palette()

    # -- public API -------------------------------------------------------------------------------
    def data(self) -> Optional[SigmaData]:
        """The schedule now drawn (None before the first one arrives)."""
        return self._data

    def selected_frame(self) -> Optional[int]:
        return self._selected

    def compared(self) -> list:
        return list(self._compare)

    def set_request(self, request: Optional[ScheduleRequest]) -> None:
        """Draw the schedule for these parameters (computed off the GUI thread)."""
        if request is None:
            return
        request = dataclasses.replace(request, compare=tuple(self._compare))
        if request == self._request:
            return
        self._request = request
        self._compute.submit(lambda task: compute_sigma_data(request))

    def show_none(self, text: str) -> None:
        """Draw no schedule, and say why in the readout (frames with no stored sigmas, e.g. a browsed
        foreign batch): the last schedule, and any still being computed, are dropped."""
        self._compute.drop()
        self._request = self._data = None
        self._selected = None
        pi = self.plot.getPlotItem()
        for curve in (self.full_curve, self.slice_curve, self.hover):
            curve.setData([], [])
        for name in list(self.compare_curves):
            pi.removeItem(self.compare_curves.pop(name))
        self.region.setVisible(False)
        self._draw_marker()
        self.readout.setText(text)

    def set_compare(self, names) -> None:
        """Overlay these schedulers' full schedules."""
        names = [n for n in names if n in core.scheduler_names()]
        for act in self.compare_menu.actions():
            act.blockSignals(True)
            act.setChecked(act.text() in names)
            act.blockSignals(False)
        self._compare = names
        if self._request is not None:
            self.set_request(self._request)

    @Slot(bool)
    def set_log_y(self, on: bool) -> None:
        if self.log_y.isChecked() != on:
            self.log_y.setChecked(on)  # comes back here through toggled
            return
        self.plot.getPlotItem().setLogMode(x=False, y=on)
        self._draw_marker()
        self.fit_view()

    @Slot(int)
    def select_frame(self, frame: int) -> None:
        """Mark a frame (does not emit ``frameSelected``)."""
        self._selected = None if frame is None or frame < 0 else int(frame)
        self._draw_marker()

    def shutdown(self) -> None:
        self._compute.shutdown()

    def busy(self) -> bool:
        """True while the newest schedule asked for is being computed (it is drawn when it arrives)."""
        return self._compute.pending()

    # -- drawing ----------------------------------------------------------------------------------
    @Slot(object, object)
    def _on_ready(self, _tag, data: SigmaData) -> None:
        self._data = data
        pi = self.plot.getPlotItem()
        x = np.arange(len(data.schedule), dtype=np.float64)
        self.full_curve.setData(x, data.schedule)
        s, e = data.start, data.stop
        if e > s:
            xs = np.arange(s, e, dtype=np.float64)
            sym = "o" if e - s <= MAX_SYMBOLS else None
            self.slice_curve.setData(xs, data.schedule[s:e], symbol=sym, symbolSize=5)
            self.region.setRegion((s, e - 1) if e - 1 > s else (s - 0.5, s + 0.5))
            self.region.setVisible(True)
        else:
            self.slice_curve.setData([], [])
            self.region.setVisible(False)
        for name in list(self.compare_curves):
            if name not in data.compare:
                pi.removeItem(self.compare_curves.pop(name))
        for k, (name, sched) in enumerate(sorted(data.compare.items())):
            curve = self.compare_curves.get(name)
            if curve is None:
                curve = pi.plot(name=name)
                self.compare_curves[name] = curve
            color = COMPARE_COLORS[core.scheduler_names().index(name) % len(COMPARE_COLORS)]
            curve.setPen(pg.mkPen(color, width=1.5, style=Qt.PenStyle.DashLine))
            curve.setData(np.arange(len(sched), dtype=np.float64), sched)
        if self._selected is not None and self._selected >= data.n_frames:
            self._selected = None
        self.hover.setData([], [])  # a hover marker of the old schedule is stale
        self._draw_marker()
        self._show_summary()
        if not self.user_zoomed() or not self._view_shows(len(data.schedule)):
            self.fit_view()
        self.updated.emit(data)

    # -- the view range ---------------------------------------------------------------------------
    def user_zoomed(self) -> bool:
        """The user zoomed or panned the view on purpose: a new schedule keeps that view."""
        return not all(self.plot.getPlotItem().getViewBox().autoRangeEnabled())

    @Slot()
    def fit_view(self) -> None:
        """Fit the view to the schedule (the markers are not part of it) and follow it from now on."""
        vb = self.plot.getPlotItem().getViewBox()
        vb.enableAutoRange()
        vb.updateAutoRange()
        self.fit_button.setEnabled(False)

    def _view_shows(self, n: int) -> bool:
        """Does the view still show part of an ``n``-point schedule? (if not, a zoom is no use to keep)"""
        (x0, x1), _ = self.plot.getPlotItem().getViewBox().viewRange()
        return x1 >= 0 and x0 <= n - 1

    @Slot(object)
    def _zoomed_by_user(self, *_) -> None:
        self.fit_button.setEnabled(self.user_zoomed())

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 (Qt's name)
        if event.type() == QEvent.Type.Leave:
            self.hover.setData([], [])
            self._show_summary()
        return super().eventFilter(obj, event)

    @Slot(object, object)
    def _on_failed(self, _tag, exc: BaseException) -> None:
        text = errors.user_message(exc)
        self.readout.setText(text)
        self.failed.emit(text)

    def _show_summary(self) -> None:
        d = self._data
        if d is None:
            return
        req = d.request
        if d.n_frames == 0:
            self.readout.setText(f"{req.scheduler}: {len(d.schedule)} sigmas; start {req.start_at_step} and end "
                                 f"{req.end_at_step} select none")
            return
        fs = d.frame_sigmas
        self.readout.setText(f"{req.family.display_name} · {req.sampler} · {req.scheduler}: {d.n_frames} frames, "
                             f"sigma {fs[0]:.6g} → {fs[-1]:.6g} (schedule[{d.start}:{d.stop}] of "
                             f"{len(d.schedule)})")

    def _draw_marker(self) -> None:
        d = self._data
        if d is None or self._selected is None or self._selected >= d.n_frames:
            self.marker.setData([], [])
            self.marker_line.setVisible(False)
            self.marker_label.setText("")
            return
        k = d.frame_to_index(self._selected)
        self.marker.setData([float(k)], [float(d.schedule[k])])
        self.marker_label.setText(f"frame {self._selected} · step {k} · \u03c3 {float(d.schedule[k]):.4g}")
        y = float(d.schedule[k])
        if self.log_y.isChecked():  # a text item is placed in view coordinates, which are log10 then
            y = float(np.log10(max(y, 1e-30)))
        self.marker_label.setPos(float(k), y)
        self.marker_line.setPos(k)
        self.marker_line.setVisible(True)

    def frame_at(self, x: float) -> Optional[int]:
        """The output frame nearest schedule index ``x`` (clamped to the slice; None when it is empty)."""
        d = self._data
        if d is None or d.n_frames == 0:
            return None
        return d.index_to_frame(int(round(min(max(x, d.start), d.stop - 1))))

    def _frame_at_scene(self, pos) -> Optional[int]:
        vb = self.plot.getPlotItem().getViewBox()
        if not vb.sceneBoundingRect().contains(pos):
            return None
        return self.frame_at(vb.mapSceneToView(pos).x())

    @Slot(object)
    def _on_mouse_moved(self, pos) -> None:
        frame = self._frame_at_scene(pos)
        d = self._data
        if frame is None:
            self.hover.setData([], [])
            self._show_summary()
            return
        k = d.frame_to_index(frame)
        sigma = float(d.schedule[k])
        self.hover.setData([float(k)], [sigma])
        self.readout.setText(f"step {k} · frame {frame} · sigma {sigma:.6g} · raw sigma "
                             f"{sigma / d.scale_factor:.6g} (sigma / scale_factor {d.scale_factor:g})")

    @Slot(object)
    def _on_mouse_clicked(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return
        if event.double():
            self.fit_view()
            return
        frame = self._frame_at_scene(event.scenePos())
        if frame is not None:
            self.select_frame(frame)
            self.frameSelected.emit(frame)

    @Slot(bool)
    def _compare_toggled(self, _on: bool) -> None:
        self.set_compare([a.text() for a in self.compare_menu.actions() if a.isChecked()])

    # -- light/dark -------------------------------------------------------------------------------
    def _apply_palette(self) -> None:
        pal = self.palette()
        base = pal.color(QPalette.ColorRole.Base)
        text = pal.color(QPalette.ColorRole.Text)
        accent = pal.color(QPalette.ColorRole.Highlight)
        self.plot.setBackground(base)
        pi = self.plot.getPlotItem()
        for name in ("left", "bottom"):
            ax = pi.getAxis(name)
            ax.setPen(text)
            ax.setTextPen(text)
        muted = QColor(text)
        muted.setAlpha(140)
        self.full_curve.setPen(pg.mkPen(muted, width=1))
        self.slice_curve.setPen(pg.mkPen(accent, width=2.5))
        self.slice_curve.setSymbolBrush(accent)
        self.slice_curve.setSymbolPen(None)
        fill = QColor(accent)
        fill.setAlpha(40)
        self.region.setBrush(fill)
        edge = QColor(accent)
        edge.setAlpha(160)
        for line in self.region.lines:
            line.setPen(pg.mkPen(edge, width=1))
        self.marker_line.setPen(pg.mkPen(QColor("#D55E00"), width=1, style=Qt.PenStyle.DotLine))
        self.marker.setSymbolBrush(QColor("#D55E00"))
        self.marker.setSymbolPen(pg.mkPen(base, width=1.5))
        self.hover.setSymbolBrush(None)
        self.hover.setSymbolPen(pg.mkPen(text, width=1))
        self.legend.setLabelTextColor(text)

    def changeEvent(self, event) -> None:
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            self._apply_palette()
        super().changeEvent(event)
