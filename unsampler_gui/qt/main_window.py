"""The main window: composition only.

It builds the models (the ``core.session.Session`` that holds the inputs and the last run, the
``FrameStore``) and the widgets (each takes its model in ``__init__``), lays them out in docks, wires
signals, and owns the menus and the status bar. The run itself is the session's, started through
``RunController``. The frames shown are the live sequence of the current inputs: every change of the
form makes ``FrameStore.follow`` the session, and the grid and viewer show its frames; a frame selected
in the grid, the viewer or the sigma plot is selected in the other two.
"""
from __future__ import annotations

import logging
import os
from typing import Optional

from PySide6.QtCore import QRect, QSize, Qt, Signal, Slot
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QDockWidget, QFileDialog, QFrame, QInputDialog, QLabel, QMainWindow, QMessageBox,
                               QProgressBar, QScrollArea, QToolButton, QVBoxLayout, QWidget)

from .. import core
from ..core.exports import EXPORTS, LATENT
from ..core.devices import human_bytes
from ..core.inputs import OPENABLE_EXTS
from ..core.sequence import CACHE_BYTES
from ..core.session import Session
from . import errors, resource_path
from .actions import install as install_conveniences
from .browse import Browser, BrowseBar
from .export_dialog import ExportDialog
from .family_dialog import define_family
from .frame_store import FrameStore
from .frame_viewer import FrameViewer
from .param_panel import ParamPanel
from .run_controller import RunController
from .settings import Settings
from .sigma_plot import SigmaPlot
from .thumbnail_grid import GridPane, ThumbnailGrid, link
from .worker import UnsampleWorker

log = logging.getLogger("unsampler")

#: The frame cache size the menu offers, in bytes (``Settings.frame_cache`` keeps at least the minimum).
FRAME_CACHE_MIN, FRAME_CACHE_MAX = 16 << 20, 64 << 30
#: The size the window opens at on a screen that has room for it.
DEFAULT_SIZE = QSize(1500, 950)
#: Room left for a title bar when the window's frame is not known yet (before it is first shown).
TITLE_ALLOWANCE = 32


def fit_to_screen(geo: QRect, available: QRect) -> QRect:
    """``geo`` made to fit inside ``available`` (a screen's free area): no bigger, and moved onto it."""
    w, h = min(geo.width(), available.width()), min(geo.height(), available.height())
    x = min(max(geo.x(), available.x()), available.x() + available.width() - w)
    y = min(max(geo.y(), available.y()), available.y() + available.height() - h)
    return QRect(x, y, w, h)


class MainWindow(QMainWindow):
    """Unsampler's window. ``settings`` is injected (tests pass a throwaway one)."""

    runFinished = Signal()  # a run ended (result, error or cancel), after the window updated

    def __init__(self, settings: Optional[Settings] = None, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.settings = settings or Settings()
        self._export: Optional[ExportDialog] = None
        self._closed = False
        self.setAcceptDrops(True)
        self.setDockNestingEnabled(True)

        # models and workers
        self.session = Session()
        self.session.memory_cap = self.settings.memory_cap
        self.store = FrameStore(self, notify_interval_ms=100)  # views repaint at most ~10 times a second
        self.store.cache_bytes = self.settings.frame_cache
        self.worker = UnsampleWorker(self)

        # widgets
        self.panel = ParamPanel(self.session, self.settings)
        self.runner = RunController(self.session, self.worker, self.panel.is_loading, self)
        self.plot = SigmaPlot()
        self.grid = ThumbnailGrid(self.store)
        self.grid_pane = GridPane(self.grid)
        self.viewer = FrameViewer(self.store)
        link(self.grid, self.viewer, selection=False)  # thumbnails follow the viewer's item, time and display

        self._build_layout()
        self._build_status_bar()
        self._build_actions()
        self._connect()
        self._restore()
        self._update_title()
        self.plot.set_request(self.panel.schedule_request())

    # -- construction -----------------------------------------------------------------------------
    def _dock(self, title: str, name: str, widget: QWidget, area) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                         | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.addDockWidget(area, dock)
        return dock

    def _build_layout(self) -> None:
        # the form scrolls; its size line and Run stay in view below it
        self.inputs_scroll = scroll = QScrollArea()
        scroll.setWidget(self.panel)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(self.panel.sizeHint().width() + scroll.verticalScrollBar().sizeHint().width() + 4)
        scroll.setMinimumHeight(120)
        inputs = QWidget()
        il = QVBoxLayout(inputs)
        il.setContentsMargins(0, 0, 0, 0)
        il.setSpacing(0)
        il.addWidget(scroll, 1)
        il.addWidget(self.panel.footer)
        self.inputs_dock = self._dock("Inputs", "inputs", inputs, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.sigma_dock = self._dock("Sigmas", "sigmas", self.plot, Qt.DockWidgetArea.TopDockWidgetArea)
        viewer = self.viewer
        self.viewer_dock = self._dock("Frame", "frame", viewer, Qt.DockWidgetArea.RightDockWidgetArea)
        self.browse_bar = BrowseBar()
        central = QWidget()
        cl = QVBoxLayout(central)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.setSpacing(0)
        cl.addWidget(self.browse_bar)
        cl.addWidget(self.grid_pane, 1)
        self.setCentralWidget(central)
        self.setCorner(Qt.Corner.TopLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.setCorner(Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea)

    def _build_status_bar(self) -> None:
        sb = self.statusBar()
        self.status_label = QLabel("ready")
        self.status_label.setTextFormat(Qt.TextFormat.PlainText)  # messages name files: never markup
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.progress = QProgressBar()
        self.progress.setMinimumWidth(220)
        self.progress.setMaximumWidth(320)
        self.progress.setTextVisible(True)
        self.progress.setVisible(False)
        self.eta_label = QLabel()
        self.eta_label.setVisible(False)
        self.cancel_button = QToolButton()
        self.cancel_button.setText("Cancel")
        self.cancel_button.setToolTip("Stop the run (Esc); nothing partial is kept")
        self.cancel_button.setVisible(False)
        self.cancel_button.clicked.connect(self.cancel_run)
        sb.addWidget(self.status_label, 1)
        sb.addPermanentWidget(self.eta_label)
        sb.addPermanentWidget(self.progress)
        sb.addPermanentWidget(self.cancel_button)

    def _action(self, menu, text: str, slot, shortcut=None, tip: str = "") -> QAction:
        act = QAction(text, self)
        if shortcut is not None:
            act.setShortcut(QKeySequence(shortcut))
        if tip:
            act.setStatusTip(tip)
            act.setToolTip(tip)
        act.triggered.connect(slot)
        menu.addAction(act)
        return act

    def _build_actions(self) -> None:
        mb = self.menuBar()
        f = mb.addMenu("&File")
        self.open_latent_action = self._action(f, "Open &latent…", self.panel.browse_latent, QKeySequence.StandardKey.Open)
        self.open_checkpoint_action = self._action(f, "Open &checkpoint…", self.panel.browse_checkpoint, "Ctrl+Shift+O")
        self.open_sample_action = self._action(f, "Open the &sample latent", self.open_sample)
        f.addSeparator()
        self.export_actions = {k.key: self._action(f, k.menu, lambda _=False, key=k.key: self.open_export(key),
                                                   k.shortcut or None) for k in EXPORTS.values()}
        f.addSeparator()
        self._action(f, "&Quit", self.close, QKeySequence.StandardKey.Quit)

        m = mb.addMenu("&Model")
        self.define_family_action = self._action(m, "&Define family…", lambda: define_family(self),
                                                 tip="Write a model family file of your own (<config>/families)")

        r = mb.addMenu("&Run")
        self.run_action = self._action(r, "&Run", self.start_run, "Ctrl+R", "Make the progressively noised batch")
        self.cancel_action = self._action(r, "&Cancel", self.cancel_run, "Esc", "Stop the run")
        self.cancel_action.setEnabled(False)

        v = mb.addMenu("&View")
        for dock in (self.inputs_dock, self.sigma_dock, self.viewer_dock):
            v.addAction(dock.toggleViewAction())
        v.addSeparator()
        self.log_y_action = QAction("&Log sigma axis", self, checkable=True)
        self.log_y_action.toggled.connect(self.plot.set_log_y)
        self.plot.log_y.toggled.connect(self.log_y_action.setChecked)
        v.addAction(self.log_y_action)

        s = mb.addMenu("&Settings")
        self._action(s, "&ComfyUI folder…", self.choose_comfy_folder)
        self._action(s, "&Memory cap…", self.choose_memory_cap)
        self.frame_cache_action = self._action(s, "&Frame cache size…", self.choose_frame_cache,
                                               tip="How much memory the frames made or read for the views may keep")

        h = mb.addMenu("&Help")
        self._action(h, "Show &log file", self.show_log)
        self._action(h, "&About Unsampler", self.about)
        self.extras = install_conveniences(self, f, h)  # Edit menu, recent files, shortcuts (qt/actions.py)

    def _connect(self) -> None:
        p, w, r = self.panel, self.worker, self.runner
        p.changed.connect(lambda: self.plot.set_request(p.schedule_request()))
        p.changed.connect(lambda: self.store.follow(self.session))
        self.store.sequenceFailed.connect(self.show_status)
        p.runRequested.connect(r.start)
        p.cancelRequested.connect(r.cancel)
        p.latentChanged.connect(self._update_title)
        p.status.connect(self.show_status)
        p.error.connect(self.show_error)
        p.idle.connect(r.files_idle)
        r.busyChanged.connect(self._set_busy)
        r.status.connect(self.show_status)
        r.error.connect(self.show_error)
        r.progressed.connect(self._show_progress)
        r.finished.connect(self.runFinished)
        w.message.connect(self.show_status)
        for src in (self.grid, self.viewer, self.plot):
            src.frameSelected.connect(lambda i, s=src: self._sync_selection(i, s))
        self.browser = Browser(self, self.browse_bar)  # a batch file browsed frame by frame (qt/browse.py)
        self.browser.status.connect(self.show_status)
        self.browser.error.connect(self.show_error)

    def _restore(self) -> None:
        geo, state = self.settings.window_geometry(), self.settings.window_state()
        self.resize(DEFAULT_SIZE)
        if geo is not None:
            self.restoreGeometry(geo)
        if state is not None:
            self.restoreState(state)
        self.fit_to_screen()  # also the size the window has when it is un-maximised
        avail = self.available_geometry()
        if geo is None and avail is not None and (avail.width() < DEFAULT_SIZE.width()
                                                  or avail.height() < DEFAULT_SIZE.height() + TITLE_ALLOWANCE):
            # a first start on a small screen opens maximised: the system fits it, title bar and panels included
            self.setWindowState(self.windowState() | Qt.WindowState.WindowMaximized)
        if state is None:
            self._default_dock_sizes()
        self.panel.set_params(self.settings.last_params(), family=False)

    def _default_dock_sizes(self) -> None:
        """The docks' first sizes, in proportion on a small window (the grid in the middle keeps the rest)."""
        w, h = self.width(), self.height()
        self.resizeDocks([self.inputs_dock, self.viewer_dock], [min(360, max(300, w * 24 // 100)), min(480, w // 3)],
                         Qt.Orientation.Horizontal)
        self.resizeDocks([self.sigma_dock], [min(260, h * 27 // 100)], Qt.Orientation.Vertical)

    def available_geometry(self) -> Optional[QRect]:
        """The free area of the screen the window is on (None when there is no screen)."""
        screen = self.screen()
        return screen.availableGeometry() if screen is not None else None

    def fit_to_screen(self) -> None:
        """Fit the window to its screen: a size saved on a bigger screen (or the default size) is made
        smaller and moved onto this one; a maximised or full-screen window is left to the system."""
        avail = self.available_geometry()
        if avail is None or self.isMaximized() or self.isFullScreen():
            return
        frame, inner = self.frameGeometry(), self.geometry()
        dw, dh = max(0, frame.width() - inner.width()), max(0, frame.height() - inner.height())
        if frame == inner and not self.isVisible():  # the frame is not known before the window is shown
            dh = TITLE_ALLOWANCE
        room = QRect(avail.x(), avail.y(), avail.width() - dw, avail.height() - dh)
        fitted = fit_to_screen(inner, room)
        if fitted != inner:
            self.setGeometry(fitted)

    # -- files --------------------------------------------------------------------------------
    def open_file(self, path: str) -> None:
        """Open a latent (or, for a model file or folder, detect the checkpoint)."""
        self.panel.open_path(path)

    def open_sample(self) -> bool:
        sample = resource_path("sample.latent")
        if sample is None:
            self.show_status("the sample latent is not installed: open a .latent file")
            return False
        self.panel.set_family("SD15")
        self.panel.open_latent(str(sample), is_sample=True)
        return True

    def open_model(self, name_or_path: str) -> None:
        if os.path.exists(name_or_path):
            self.panel.open_checkpoint(name_or_path)
        elif not self.panel.set_family(name_or_path):
            self.panel.open_checkpoint(name_or_path)  # detect gives the clear "unknown" message

    def dragEnterEvent(self, event) -> None:
        if self._dropped_paths(event):
            event.acceptProposedAction()

    def dragMoveEvent(self, event) -> None:
        if self._dropped_paths(event):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        paths = self._dropped_paths(event)
        if paths:
            event.acceptProposedAction()
            for path in paths[:2]:  # a latent and a checkpoint may come together
                self.open_file(path)

    @staticmethod
    def _dropped_paths(event) -> list:
        md = event.mimeData()
        if not md.hasUrls():
            return []
        out = []
        for url in md.urls():
            if url.isLocalFile():
                path = url.toLocalFile()
                if path.lower().endswith(OPENABLE_EXTS) or os.path.isdir(path):
                    out.append(path)
        return out

    # -- run (the session's, through the RunController) --------------------------------------------
    def start_run(self) -> bool:
        """Start a run with the form's parameters (cancelling one in progress)."""
        self.panel.flush_edits()
        return self.runner.start()

    def cancel_run(self) -> None:
        self.runner.cancel()

    def run_when_ready(self) -> None:
        """Run as soon as the files being opened have arrived (``--run``)."""
        self.runner.run_when_ready()

    def is_running(self) -> bool:
        return self.runner.is_running()

    def result(self) -> Optional[core.UnsampleResult]:
        """The last finished run."""
        return self.session.result

    def result_is_current(self) -> bool:
        return self.session.is_current()

    @Slot(bool)
    def _set_busy(self, busy: bool) -> None:
        if busy:
            self.progress.setRange(0, 0)
        self.progress.setVisible(busy)
        self.eta_label.setVisible(busy)
        self.eta_label.setText("")
        self.cancel_button.setVisible(busy)
        self.cancel_action.setEnabled(busy)
        self.panel.set_busy(busy)

    @Slot(int, int, str, str)
    def _show_progress(self, done: int, total: int, text: str, eta: str) -> None:
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(done)
        self.progress.setFormat(text)
        self.eta_label.setText(eta)

    # -- reactions --------------------------------------------------------------------------------
    def select_frame(self, frame: int) -> None:
        """Select a frame in the grid, the viewer and the sigma plot."""
        self._sync_selection(frame, None)

    def _sync_selection(self, frame: int, source) -> None:
        for w in (self.grid, self.viewer, self.plot):
            if w is not source:
                w.select_frame(frame)

    @Slot()
    def _update_title(self, *_) -> None:
        lat = self.session.latent
        # the document first and the program last: Qt appends the display name to a title not ending in it
        self.setWindowTitle(f"{lat.name} — Unsampler" if lat is not None else "Unsampler")

    @Slot(str)
    def show_status(self, text: str) -> None:
        self.status_label.setText(text)
        self.status_label.setToolTip(errors.plain_tooltip(text))

    @Slot(str, str)
    def show_error(self, title: str, text: str) -> None:
        if not self._closed:
            errors.show_error(self, title, text)

    # -- exports, settings, help ------------------------------------------------------------------
    def open_export(self, kind: str = LATENT) -> ExportDialog:
        self.panel.flush_edits()
        if self._export is not None:
            self._export.shutdown()
            self._export.deleteLater()
        self._export = ExportDialog(self.session.export_source(), self.settings, kind, self)
        self._export.exported.connect(lambda path: self.show_status(f"saved {path}"))
        for (_kind, name), w in self._export.option_widgets.items():
            if name == "item":  # the pictures show the batch item the viewer shows
                w.setValue(min(self.viewer.batch_item, w.maximum()))
        self._export.open()
        return self._export

    @Slot()
    def choose_comfy_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "ComfyUI folder",
                                                self.settings.comfy_root or os.path.expanduser("~"))
        if path:
            try:
                from ..core.comfy_paths import resolve_comfy_folder
                resolve_comfy_folder(path)
            except core.UnsamplerError as e:
                self.show_error("ComfyUI folder", str(e))
                return
            self.settings.comfy_root = path
            self.show_status(f"ComfyUI folder: {path}")

    @Slot()
    def choose_memory_cap(self) -> None:
        cur = self.settings.memory_cap / 1e9
        value, ok = QInputDialog.getDouble(self, "Memory cap", "Largest in-memory run, in GB (0: no cap):",
                                           cur, 0.0, 4096.0, 1)
        if ok:
            self.settings.memory_cap = int(value * 1e9)
            self.session.memory_cap = self.settings.memory_cap
            self.panel.refresh_estimate()

    @Slot()
    def choose_frame_cache(self) -> QInputDialog:
        """Frame cache size (MiB): applied at once to the frames shown, and saved."""
        seq = self.store.sequence
        held = f"; {human_bytes(seq.cache.bytes)} is held now" if seq is not None else ""
        dlg = QInputDialog(self)
        dlg.setWindowTitle("Frame cache size")
        dlg.setInputMode(QInputDialog.InputMode.IntInput)
        dlg.setLabelText("Frames made or read for the grid, the viewer and playback are kept up to this size,\n"
                         f"in MiB (at least {FRAME_CACHE_MIN >> 20}; default {CACHE_BYTES >> 20}){held}.\n"
                         "More keeps more frames for going back and forth; less keeps the app smaller.")
        dlg.setIntRange(FRAME_CACHE_MIN >> 20, FRAME_CACHE_MAX >> 20)
        dlg.setIntStep(16)
        dlg.setIntValue(self.settings.frame_cache >> 20)
        dlg.intValueSelected.connect(lambda mib: self.set_frame_cache(int(mib) << 20))
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dlg.open()
        self.frame_cache_dialog = dlg
        return dlg

    def set_frame_cache(self, nbytes: int) -> None:
        """Use and save a frame cache budget (the cache of the frames shown shrinks or grows at once)."""
        self.settings.frame_cache = min(FRAME_CACHE_MAX, max(FRAME_CACHE_MIN, int(nbytes)))
        self.store.set_cache_bytes(self.settings.frame_cache)
        self.show_status(f"frame cache: {human_bytes(self.settings.frame_cache)}")

    @Slot()
    def show_log(self) -> None:
        self.extras.show_log_file()

    @Slot()
    def about(self) -> None:
        from .about import about_html

        QMessageBox.about(self, "About Unsampler", about_html())

    # -- closing ------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop every thread: the run (cancelled, then joined), exports, loaders, plot, views."""
        if self._closed:
            return
        self._closed = True
        self.worker.shutdown()
        if self._export is not None:
            self._export.shutdown()
        self.panel.shutdown()
        self.browser.shutdown()
        self.plot.shutdown()
        self.store.clear()  # answers still queued for this run are now stale and dropped
        for w in (self.grid, self.viewer, self.store):
            w.shutdown()

    def closeEvent(self, event) -> None:
        if not self._closed:
            self.panel.flush_edits()
            try:
                self.settings.save_window(self.saveGeometry(), self.saveState())
                self.settings.set_last_params(self.panel.run_params())
                self.settings.sync()
            except Exception as e:  # settings must never stop the window from closing
                errors.log_exception(e, "saving settings")
        self.shutdown()
        super().closeEvent(event)

    def sizeHint(self) -> QSize:
        avail = self.available_geometry()
        return DEFAULT_SIZE.boundedTo(avail.size()) if avail is not None else DEFAULT_SIZE
