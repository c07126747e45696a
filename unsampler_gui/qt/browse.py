"""Browse a batch file: a ``.latent`` that holds a batch is looked at frame by frame, or used as the input.

When a file that holds a batch is opened (``ParamPanel.batchOpened`` with its ``core.batch_file.BatchFile``,
header only), ``Browser.offer`` takes the likelier use and the bar above the grid offers the other:

- an Unsampler export, or a batch whose frames would not fit the frame cache as an input, is **browsed**:
  the grid, the viewer, its statistics and the sigma plot show the file's frames (read lazily from the file
  on the views' pool threads, ``core.batch_file.BatchSequence``), its stored parameters are on the bar,
  and the form is greyed; the bar has **Use as the input**, **Export shown frames…** (the frames the grid
  shows, every k-th as its stride says, to a new ``.latent`` with the file's parameters: the export
  registry's kinds draw on the form's parameters, so they are off while a file is browsed) and
  **Back to noising**;
- any other batch (say a ComfyUI batch of four images) is **the input to noise**, as before; the bar has
  **Browse its frames**.

Any change of the form while a file is browsed (an undo, another file opened) goes back to noising.
"""
from __future__ import annotations

import os
from typing import Optional

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QToolButton, QWidget

from .. import core
from ..core import params as run_params
from ..core.batch_file import BatchFile, BatchSequence, choose_family, export_frames
from ..core.devices import human_bytes
from ..core.errors import printable
from . import errors
from .errors import plain_tooltip
from .sigma_plot import ScheduleRequest
from .worker import Worker


def frames_line(bf: BatchFile) -> str:
    """"27 frames × 2 latents [4, 64, 64], 3.1 MB" (the size in float32, as the frames are shown)."""
    per = f" × {bf.batch} latents" if bf.batch > 1 else ""
    return f"{bf.n_frames} frames{per} {list(bf.frame_shape)}, {human_bytes(bf.float32_bytes)}"


def schedule_request(bf: BatchFile) -> Optional[ScheduleRequest]:
    """The sigma plot of an export's stored parameters (None for a foreign batch, or ones that do not plot)."""
    u = bf.unsampler
    if not u or "family" not in u:
        return None
    try:
        p = run_params.from_metadata(u)
        fam = run_params.effective_family(p, core.get_family(p.family))
        return ScheduleRequest(family=fam, sampler=p.sampler, scheduler=p.scheduler, steps=p.steps,
                               start_at_step=p.start_at_step, end_at_step=p.end_at_step)
    except core.UnsamplerError:
        return None


class BrowseBar(QWidget):
    """The line above the grid: what the batch file is, and the other use of it."""

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.label = QLabel()
        self.label.setTextFormat(Qt.TextFormat.PlainText)  # names and values from a file: never markup
        self.label.setWordWrap(True)
        self.label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.browse_button = QPushButton("Browse its frames")
        self.browse_button.setToolTip("Look at the file's latents frame by frame (read from the file as shown)")
        self.input_button = QPushButton("Use as the input")
        self.input_button.setToolTip("Noise the file's latents (the whole batch) with the form's parameters")
        self.export_button = QPushButton("Export shown frames…")
        self.export_button.setToolTip("Write the frames the grid shows (every k-th, as its stride says) to a new "
                                      ".latent, with the file's parameters")
        self.back_button = QPushButton("Back to noising")
        self.back_button.setToolTip("Show the frames of the form's parameters again")
        self.close_button = QToolButton()
        self.close_button.setText("×")
        self.close_button.setToolTip("Hide this line")
        self.close_button.clicked.connect(self.hide)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(6, 3, 6, 3)
        lay.addWidget(self.label, 1)
        for b in (self.browse_button, self.input_button, self.export_button, self.back_button, self.close_button):
            lay.addWidget(b)
        self.setAutoFillBackground(True)
        self.hide()

    def show_state(self, text: str, tip: str, browsing: bool) -> None:
        self.label.setText(text)
        self.label.setToolTip(plain_tooltip(tip))
        self.browse_button.setVisible(not browsing)
        self.input_button.setVisible(browsing)
        self.export_button.setVisible(browsing)
        self.back_button.setVisible(browsing)
        self.close_button.setVisible(not browsing)
        self.show()


class Browser(QObject):
    """Browse mode of the window (see the module docstring): ``offer``, ``browse``, ``use_as_input``, ``back``."""

    status = Signal(str)
    error = Signal(str, str)
    browsingChanged = Signal(bool)

    def __init__(self, win, bar: BrowseBar):
        super().__init__(win)
        self.win = win
        self.bar = bar
        self.file: Optional[BatchFile] = None  # the batch file browsed, or last offered
        self.sequence: Optional[BatchSequence] = None
        bar.browse_button.clicked.connect(lambda: self.browse(self.file))
        bar.input_button.clicked.connect(lambda: self.use_as_input())
        bar.back_button.clicked.connect(lambda: self.back())
        bar.export_button.clicked.connect(lambda: self.export_shown())
        self._exporter = Worker(self, name="export browsed frames")
        self._exporter.result.connect(lambda path: self.status.emit(f"saved {path}"))
        self._exporter.error.connect(errors.worded(lambda t: (self.status.emit(t), self.error.emit("Export", t))))
        win.panel.batchOpened.connect(self.offer)
        win.panel.changed.connect(self._form_changed)
        win.panel.latentChanged.connect(self._latent_changed)

    @property
    def active(self) -> bool:
        return self.win.store.browsing

    def prefers_browsing(self, bf: BatchFile) -> bool:
        """An export is browsed; so is a batch whose frames, as an input, would not fit the frame cache."""
        return bf.unsampler is not None or bf.float32_bytes > self.win.store.cache_bytes // 2

    def offer(self, bf: BatchFile) -> None:
        """A batch file was opened: browse it, or use it as the input (the bar offers the other)."""
        self.file = bf
        if self.prefers_browsing(bf):
            self.browse(bf)
        else:
            self.use_as_input()

    def browse(self, bf: Optional[BatchFile] = None) -> bool:
        """Show the frames of ``bf`` (the file offered last by default)."""
        bf = bf or self.file
        if bf is None:
            return False
        win = self.win
        try:
            family = choose_family(bf, preferred=win.session.params.family)
        except core.UnsamplerError as e:
            self.error.emit("Browse", str(e))
            self.status.emit(str(e))
            return False
        self.file = bf
        self.sequence = BatchSequence(bf, family, cache_bytes=win.store.cache_bytes)
        win.store.browse(self.sequence)
        self._set_form_enabled(False)
        req = schedule_request(bf)
        if req is not None:
            win.plot.set_request(req)
        else:  # the form's schedule is not this file's: draw none rather than a wrong one
            win.plot.show_none(f"{printable(bf.name)} stores no parameters to draw its schedule from")
        params = bf.describe_params()
        notes = "\n".join(printable(n) for n in bf.notes)
        self.bar.show_state(f"Browsing {printable(bf.name)}: {frames_line(bf)} · {params}",
                            f"{bf.path}\n{params}" + (f"\n{notes}" if notes else ""), browsing=True)
        self.status.emit(f"browsing {printable(bf.name)}: {bf.n_frames} frames read from the file as they are shown"
                         + ("" if bf.unsampler else "; no stored parameters"))
        self.browsingChanged.emit(True)
        return True

    def use_as_input(self) -> None:
        """Noise the file's latents: the form takes it as its latent (the whole file is read)."""
        bf = self.file
        if bf is None:
            return
        self.back(follow=False)
        self.win.panel.open_latent(bf.path, bf.is_sample, as_input=True)

    def back(self, follow: bool = True) -> None:
        """Back to the frames of the form's parameters."""
        win = self.win
        was = self.active
        self.sequence = None
        win.store.stop_browsing(win.session if follow else None)
        self._set_form_enabled(True)
        win.plot.set_request(win.panel.schedule_request())
        self.bar.hide()
        if was:
            self.browsingChanged.emit(False)

    def export_shown(self, path: Optional[str] = None) -> bool:
        """Write the frames the grid shows (its stride) of the browsed file to ``path`` (asked for when None),
        on a worker thread."""
        seq = self.sequence
        if seq is None:
            return False
        frames = list(range(0, seq.n_frames, max(1, self.win.grid.stride())))
        if path is None:
            stem = os.path.splitext(self.file.name)[0]
            start = os.path.join(self.win.settings.folder("latent"), f"{stem}_frames_{len(frames)}.latent")
            path, _ = QFileDialog.getSaveFileName(self.win, "Export shown frames", start, "Latents (*.latent)")
            if not path:
                return False
        self.status.emit(f"writing {len(frames)} frames to {os.path.basename(path)}…")
        self._exporter.run_in_thread(lambda rep: export_frames(seq, path, frames, overwrite=True, reporter=rep))
        return True

    def is_exporting(self) -> bool:
        return self._exporter.is_running()

    def shutdown(self) -> None:
        self._exporter.shutdown()

    def _set_form_enabled(self, on: bool) -> None:
        win = self.win
        win.inputs_dock.widget().setEnabled(on)  # the form and Run, greyed while a file is browsed
        win.run_action.setEnabled(on)
        for act in win.export_actions.values():
            act.setEnabled(on)

    def _form_changed(self) -> None:
        if self.active:
            self.back()

    def _latent_changed(self, latent) -> None:
        bf = self.file
        if bf is not None and latent.path == bf.path and not self.active:
            self.bar.show_state(f"{printable(bf.name)} holds {frames_line(bf)}: it is the input to noise",
                                bf.path, browsing=False)
        else:
            self.bar.hide()


__all__ = ["Browser", "BrowseBar", "frames_line", "schedule_request"]
