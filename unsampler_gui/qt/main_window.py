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
from typing import TYPE_CHECKING, Callable, Optional

from PySide6.QtCore import QEvent, QObject, QRect, QSize, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QDockWidget, QFileDialog, QFrame, QInputDialog, QLabel, QMainWindow, QMessageBox,
                               QProgressBar, QScrollArea, QToolButton, QVBoxLayout, QWidget)

from .. import core
from . import errors, resource_path
from .family_dialog import define_family
from .settings import Settings

if TYPE_CHECKING:
    from .export_dialog import ExportDialog

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


def _load_core() -> None:
    """Import the core's numerical modules (torch, numpy and what the widgets use): Qt-free, so a thread may."""
    import importlib

    for name in ("session", "params", "exports", "inputs", "sequence", "stats", "pictures", "frames"):
        importlib.import_module(f"..core.{name}", __package__)


class _FirstPaint(QObject):
    """Notes the window's first paint: its contents are built after it (so the frame is on screen first)."""

    def eventFilter(self, obj, event) -> bool:
        if event.type() == QEvent.Type.Paint and obj is self.parent():
            obj.removeEventFilter(self)
            QTimer.singleShot(0, obj._painted)
        return False


class MainWindow(QMainWindow):
    """Unsampler's window. ``settings`` is injected (tests pass a throwaway one)."""

    runFinished = Signal()  # a run ended (result, error or cancel), after the window updated
    ready = Signal()  # the form, plot, grid and viewer are built (a deferred start: after the first paint)
    startFailed = Signal(object)  # a deferred start could not build the window (the exception)

    def __init__(self, settings: Optional[Settings] = None, parent: Optional[QWidget] = None,
                 deferred: bool = False):
        """With ``deferred``, the window is only its frame until it first paints ("starting…" in its middle):
        then torch and the core load on a thread, and the form, plot, grid and viewer are built when they have
        (``ready``; ``when_ready`` queues what needs them). Without, everything is built here."""
        super().__init__(parent)
        self.settings = settings or Settings()
        self._export: Optional[ExportDialog] = None
        self._closed = False
        self._ready = False
        self._when_ready: list = []
        self._loader = None
        self.setAcceptDrops(True)
        self.setDockNestingEnabled(True)
        self.setWindowTitle("Unsampler")
        if deferred:
            self._start_frame()
        else:
            self._populate()

    # -- a start in two steps: the frame paints, then the contents load ---------------------------
    def is_ready(self) -> bool:
        """True once the form, plot, grid and viewer exist."""
        return self._ready

    def when_ready(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` now if the window is ready, or as soon as it is."""
        if self._ready:
            fn()
        else:
            self._when_ready.append(fn)

    def _start_frame(self) -> None:
        self.starting_label = QLabel("Starting Unsampler\u2026")
        self.starting_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.starting_label.setEnabled(False)
        self.setCentralWidget(self.starting_label)
        self.statusBar().showMessage("loading torch and the model families\u2026")
        self._restore_geometry()
        self._first_paint = _FirstPaint(self)
        self.installEventFilter(self._first_paint)
        self._paint_seen = self._core_loaded = False
        self._load()  # the import runs while Qt shows the window (the GUI thread waits on X, not on Python)

    def _painted(self) -> None:
        self._paint_seen = True
        if self._core_loaded:
            self._populate(report=True)

    def _core_ready(self) -> None:
        self._core_loaded = True
        if self._paint_seen:
            self._populate(report=True)

    def _load(self) -> None:
        """The core's numerical modules (torch, numpy) load on a thread, so that the window shows and stays
        responsive meanwhile; the widgets are built on the GUI thread once they have, after the first paint."""
        if self._closed or self._loader is not None:
            return
        from .background import Background
        self._loader = Background(self, name="start-up")
        self._loader.done.connect(lambda _tag, _value: self._core_ready())
        self._loader.failed.connect(lambda _tag, exc: self.startFailed.emit(exc))
        self._loader.submit(lambda _task: _load_core(), "core")

    def ensure_ready(self) -> None:
        """Build the contents now, if they are not yet (a deferred window that must be used at once)."""
        if not self._ready:
            self._populate()

    def _populate(self, report: bool = False) -> None:
        """Build the contents; with ``report`` (the deferred start, which has no caller to raise to), a failure
        is ``startFailed(exc)`` for the app to report."""
        if self._ready or self._closed:
            return
        try:
            self._build()
        except Exception as e:
            if not report:
                raise
            self.startFailed.emit(e)
            return
        self._ready = True
        queued, self._when_ready = self._when_ready, []
        for fn in queued:
            fn()
        self.ready.emit()

    def _build(self) -> None:
        from ..core.session import Session
        from .frame_store import FrameStore
        from .frame_viewer import FrameViewer
        from .param_panel import ParamPanel
        from .picture_source import PictureSource
        from .run_controller import RunController
        from .sigma_plot import SigmaPlot
        from .thumbnail_grid import GridPane, ThumbnailGrid, link
        from .worker import UnsampleWorker

        deferred = self.centralWidget() is not None  # the frame is up: its geometry was restored already
        self.statusBar().clearMessage()
        # models and workers
        self.session = Session()
        self.session.memory_cap = self.settings.memory_cap
        self.store = FrameStore(self, notify_interval_ms=100)  # views repaint at most ~10 times a second
        self.store.cache_bytes = self.settings.frame_cache
        self.worker = UnsampleWorker(self)

        # widgets
        self.panel = ParamPanel(self.session, self.settings)
        self.pictures = PictureSource(self.panel, self.settings)  # a picture opened as the source, under the latent
        self.panel.latent_box.layout().insertWidget(2, self.pictures)
        self.runner = RunController(self.session, self.worker,
                                    lambda: self.panel.is_loading() or self.pictures.is_busy(), self)
        self.plot = SigmaPlot()
        self.grid = ThumbnailGrid(self.store)
        self.grid_pane = GridPane(self.grid)
        self.viewer = FrameViewer(self.store)
        link(self.grid, self.viewer, selection=False)  # thumbnails follow the viewer's item, time and display

        self._build_layout()
        self._build_status_bar()
        self._build_actions()
        self._connect()
        if not deferred:
            self._restore_geometry()
        self._restore_state()
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
        from .browse import BrowseBar

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
        # the viewer's full-VAE decode: its own progress and Cancel (a run may go on beside it)
        self.vae_progress = QProgressBar()
        self.vae_progress.setMaximumWidth(200)
        self.vae_progress.setFormat("VAE decode %p%")
        self.vae_progress.setVisible(False)
        self.vae_cancel_button = QToolButton()
        self.vae_cancel_button.setText("Cancel decode")
        self.vae_cancel_button.setToolTip("Stop decoding the frame with the full VAE")
        self.vae_cancel_button.setVisible(False)
        sb.addWidget(self.status_label, 1)
        sb.addPermanentWidget(self.vae_progress)
        sb.addPermanentWidget(self.vae_cancel_button)
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
        from ..core.exports import EXPORTS
        from .actions import install as install_conveniences
        from .preview_decoders import bind_thumbnails_action

        mb = self.menuBar()
        f = mb.addMenu("&File")
        self.open_latent_action = self._action(f, "Open &latent or picture…", self.panel.browse_latent,
                                               QKeySequence.StandardKey.Open,
                                               "A .latent, a PNG, JPEG or WebP (encoded with the model's VAE), or a "
                                               "ComfyUI workflow .json")
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
        v.addSeparator()
        vd = self.viewer.decode
        self.decode_vae_action = self._action(v, "&Decode frame with VAE", vd.decode_with_vae, "Ctrl+Shift+D",
                                              "Decode the frame in the viewer with the full VAE")
        self.decode_vae_action.setEnabled(vd.vae_button.isEnabled())
        self.preview_vae_file_action = self._action(v, "VAE &file for previews…", vd.browse,
                                                    tip="A VAE, checkpoint or TAESD decoder file to decode frames with")
        self.taesd_thumbnails_action = bind_thumbnails_action(QAction("&TAESD thumbnails", self), self.viewer.decoders)
        v.addAction(self.taesd_thumbnails_action)
        v.setToolTipsVisible(True)  # a disabled option's tooltip says what to add where
        self.viewer.decoders.optionsChanged.connect(
            lambda: self.decode_vae_action.setEnabled(self.viewer.decoders.available("vae")))

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
        pics = self.pictures
        p.pictureOpened.connect(pics.open)
        pics.status.connect(self.show_status)
        pics.error.connect(self.show_error)
        pics.busyChanged.connect(self._set_encoding)
        pics.progressed.connect(lambda *a: None if self.runner.is_running() else self._show_progress(*a))
        pics.idle.connect(r.files_idle)
        r.busyChanged.connect(self._set_busy)
        r.status.connect(self.show_status)
        r.error.connect(self.show_error)
        r.progressed.connect(self._show_progress)
        r.finished.connect(self.runFinished)
        w.message.connect(self.show_status)
        for src in (self.grid, self.viewer, self.plot):
            src.frameSelected.connect(lambda i, s=src: self._sync_selection(i, s))
        from .browse import Browser

        self.browser = Browser(self, self.browse_bar)  # a batch file browsed frame by frame (qt/browse.py)
        self.browser.status.connect(self.show_status)
        self.browser.error.connect(self.show_error)
        self._connect_previews()

    def _connect_previews(self) -> None:
        """The decoded previews: the grid's TAESD box, the decoders' context, the full VAE's progress."""
        dec, vd = self.viewer.decoders, self.viewer.decode
        self.grid.set_decoders(dec)
        dec.set_context(comfy_root=self.settings.comfy_root, user_file=self.settings.vae_file or None)
        self.pictures.vaeFilePicked.connect(vd.pick_file)  # one VAE file for encoding and for previews
        self.panel.changed.connect(self._preview_context)
        vd.status.connect(self.show_status)
        vd.vaeBusy.connect(self.vae_progress.setVisible)
        vd.vaeBusy.connect(self.vae_cancel_button.setVisible)
        vd.vaeProgress.connect(self._show_vae_progress)
        self.vae_cancel_button.clicked.connect(vd.cancel_vae)
        self.grid.thumbnail_model().decodeFailed.connect(
            lambda exc: self.show_status(f"TAESD thumbnails failed: {errors.user_message(exc)}"))

    def _preview_context(self) -> None:
        m = self.session.model_in_use()
        self.viewer.decoders.set_context(checkpoint=str(m.source) if m is not None else None)

    @Slot(int, int)
    def _show_vae_progress(self, done: int, total: int) -> None:
        self.vae_progress.setRange(0, total)  # 0, 0 while the VAE is loading: a busy bar
        self.vae_progress.setValue(done)

    def _restore_geometry(self) -> None:
        geo = self.settings.window_geometry()
        self.resize(DEFAULT_SIZE)
        if geo is not None:
            self.restoreGeometry(geo)
        self.fit_to_screen()  # also the size the window has when it is un-maximised
        avail = self.available_geometry()
        if geo is None and avail is not None and (avail.width() < DEFAULT_SIZE.width()
                                                  or avail.height() < DEFAULT_SIZE.height() + TITLE_ALLOWANCE):
            # a first start on a small screen opens maximised: the system fits it, title bar and panels included
            self.setWindowState(self.windowState() | Qt.WindowState.WindowMaximized)

    def _restore_state(self) -> None:
        self.panel.set_params(self.settings.last_params(), family=False)
        if self.isVisible():  # docks added to a window on screen: their sizes take once the layout placed them
            QTimer.singleShot(0, self._restore_docks)
        else:
            self._restore_docks()

    def _restore_docks(self) -> None:
        if self._closed:
            return
        state = self.settings.window_state()
        if state is not None:
            self.restoreState(state)
        else:
            self._default_dock_sizes()

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
        left, top = max(0, inner.x() - frame.x()), max(0, inner.y() - frame.y())
        if frame == inner and not self.isVisible():  # the frame is not known before the window is shown
            dh = top = TITLE_ALLOWANCE
        # the window's inside goes below its title bar: the frame, title bar included, stays on the screen
        room = QRect(avail.x() + left, avail.y() + top, avail.width() - dw, avail.height() - dh)
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
        if self._ready and self._dropped_paths(event):
            event.acceptProposedAction()

    def dragMoveEvent(self, event) -> None:
        if self._ready and self._dropped_paths(event):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        paths = self._dropped_paths(event)
        if paths:
            event.acceptProposedAction()
            for path in paths[:2]:  # a latent and a checkpoint may come together
                self.open_file(path)

    @staticmethod
    def _dropped_paths(event) -> list:
        from ..core.inputs import OPENABLE_EXTS

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
        """Cancel: the run, and a picture being encoded."""
        self.runner.cancel()
        self.pictures.cancel()

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
        if not busy and self.pictures.is_busy():  # a picture is still being encoded: its progress shows again
            self._set_encoding(True)

    @Slot(bool)
    def _set_encoding(self, busy: bool) -> None:
        """A picture is being read or encoded: the status bar's progress and Cancel (a run keeps them its own)."""
        if self.runner.is_running():
            return
        if busy:
            self.progress.setRange(0, 0)
        self.progress.setVisible(busy)
        self.eta_label.setVisible(False)
        self.cancel_button.setVisible(busy)
        self.cancel_action.setEnabled(busy)

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
    def open_export(self, kind: Optional[str] = None) -> ExportDialog:
        """The export dialog, on ``kind`` (``core.exports``'s keys; default: the latent export)."""
        from ..core.exports import LATENT
        from .export_dialog import ExportDialog

        kind = LATENT if kind is None else kind
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
            self.viewer.decoders.set_context(comfy_root=path)
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
        from ..core.devices import human_bytes
        from ..core.sequence import CACHE_BYTES

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
        from ..core.devices import human_bytes

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
        if self._loader is not None:
            self._loader.shutdown()
        if not self._ready:
            return
        self.worker.shutdown()
        if self._export is not None:
            self._export.shutdown()
        self.panel.shutdown()
        self.pictures.shutdown()
        self.browser.shutdown()
        self.plot.shutdown()
        self.store.clear()  # answers still queued for this run are now stale and dropped
        for w in (self.grid, self.viewer, self.store):
            w.shutdown()

    def closeEvent(self, event) -> None:
        if not self._closed and self._ready:  # closed while starting: nothing of this session to keep
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
