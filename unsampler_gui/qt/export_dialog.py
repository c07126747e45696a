"""Export: the ``.latent`` batch (all frames, a step range, every k-th, node order or reversed), straight
into ComfyUI's input folder, the sigmas (JSON, ManualSigmas text), a contact sheet and an animation.

Every export runs on a ``Worker`` with progress and Cancel; writes are atomic in core, so a cancelled
or failed export leaves no file. A latent export with no finished run (or a run made with other
parameters) streams a fresh run straight to the file, with bounded memory.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Callable, Optional

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QDoubleSpinBox, QFileDialog, QFormLayout,
                               QGroupBox, QHBoxLayout, QLabel, QLineEdit, QMessageBox, QProgressBar, QPushButton,
                               QRadioButton, QSpinBox, QVBoxLayout, QWidget)

from .. import core
from ..core.devices import human_bytes
from . import errors
from .settings import Settings
from .worker import Worker

LATENT, COMFYUI, SIGMAS_JSON, SIGMAS_TEXT, SHEET, ANIMATION = (
    "latent", "comfyui", "sigmas_json", "sigmas_text", "contact_sheet", "animation")
KINDS = {
    LATENT: ("Latent batch (.latent)", ".latent", "ComfyUI latent (*.latent)"),
    COMFYUI: ("Latent batch into ComfyUI's input folder", ".latent", ""),
    SIGMAS_JSON: ("Sigmas (JSON)", ".json", "JSON (*.json)"),
    SIGMAS_TEXT: ("Sigmas as ManualSigmas text", ".txt", "Text (*.txt)"),
    SHEET: ("Contact sheet (PNG)", ".png", "PNG picture (*.png)"),
    ANIMATION: ("Animation (WebP or GIF)", ".webp", "Animation (*.webp *.gif)"),
}
FRAME_KINDS = (LATENT, COMFYUI, SHEET, ANIMATION)
PICTURE_KINDS = (SHEET, ANIMATION)
#: Default number of pictures in a contact sheet / an animation (every k-th frame is chosen to fit).
SHEET_FRAMES = 64
ANIMATION_FRAMES = 120


@dataclass
class ExportSource:
    """What an export can draw on: the last finished run (if any) and the form's current spec."""

    result: Optional[core.UnsampleResult]
    spec: Optional[core.UnsampleSpec]
    spec_error: str = ""
    result_is_current: bool = True  # the result was made with the form's current parameters
    stem: str = "unsampler"
    n_frames: int = 0  # frames the current spec makes (from the form's estimate), for exports without a run


def _frame_rows(result: core.UnsampleResult, positions, item: int = 0):
    B = result.plan.batch
    for p in positions:
        yield result.latent[p * B + item]


def export_job(kind: str, source: ExportSource, path: Optional[str], positions: list, overwrite: bool,
               options: dict) -> Callable:
    """The function that runs on the worker: ``job(reporter) -> written path``. No Qt in here."""
    result, spec = source.result, source.spec

    def job(rep) -> str:
        if kind in (SIGMAS_JSON, SIGMAS_TEXT):
            plan = result.plan if result is not None and source.result_is_current else core.plan_unsample(spec)
            from ..core.export import export_sigmas_json, export_sigmas_text
            if kind == SIGMAS_JSON:
                return export_sigmas_json(plan, path, overwrite=overwrite)
            return export_sigmas_text(plan, path, overwrite=overwrite, which=options.get("which", "schedule"))
        target = path
        if kind == COMFYUI:
            from ..core.comfy_paths import comfy_input_dir, unique_latent_name
            target = str(unique_latent_name(comfy_input_dir(options["comfy_root"]), options["stem"]))
        if kind in (LATENT, COMFYUI):
            if result is not None and result.latent is not None and source.result_is_current:
                from ..core.export import export_latent
                return export_latent(result, target, positions=positions, reverse=False,
                                     overwrite=overwrite, reporter=rep)
            # no finished run with these parameters: stream a run straight to the file
            run = core.run_unsample(spec.replace(frames=tuple(positions)), rep, output=target, overwrite=overwrite,
                                    max_memory=options.get("max_memory") or None)
            return run.path
        from ..core import pictures
        sig = result.sigmas
        fam = result.plan.spec.family
        rows = _frame_rows(result, positions, options.get("item", 0))
        if kind == SHEET:
            return pictures.contact_sheet(rows, fam, positions, [float(sig[p]) for p in positions], path,
                                          cell=options.get("cell", 128), overwrite=overwrite, reporter=rep)
        return pictures.animation(rows, fam, path, fps=options.get("fps", 12), overwrite=overwrite, reporter=rep,
                                  size=options.get("size", 256), positions=positions,
                                  sigmas=[float(sig[p]) for p in positions])

    return job


class ExportDialog(QDialog):
    """One dialog for every export; ``kind`` picks what it starts on."""

    exported = Signal(str)  # the written path

    def __init__(self, source: ExportSource, settings: Settings, kind: str = LATENT,
                 parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.setWindowTitle("Export")
        self.source = source
        self.settings = settings
        self.worker = Worker(self, name="export")
        self.worker.progress.connect(self._on_progress)
        self.worker.result.connect(self._on_done)
        self.worker.error.connect(errors.worded(self._on_error))
        self.worker.cancelled.connect(lambda: self._set_status("cancelled: nothing was written"))
        self.worker.finished.connect(self._on_finished)
        self.last_path: Optional[str] = None
        self._build()
        self.kind.setCurrentIndex(max(0, self.kind.findData(kind)))
        self._kind_changed()

    # -- layout -----------------------------------------------------------------------------------
    def _build(self) -> None:
        self.kind = QComboBox()
        for key, (label, _ext, _filt) in KINDS.items():
            self.kind.addItem(label, key)
        self.kind.currentIndexChanged.connect(self._kind_changed)
        self.source_label = QLabel()
        self.source_label.setWordWrap(True)

        n = self.n_steps()
        self.frames_box = QGroupBox("Frames")
        self.first = QSpinBox()
        self.last = QSpinBox()
        self.every = QSpinBox()
        for s in (self.first, self.last):
            s.setRange(0, max(0, n - 1))
        self.last.setValue(max(0, n - 1))
        self.every.setRange(1, max(1, n))
        self.all_button = QPushButton("All")
        self.all_button.clicked.connect(self._select_all)
        self.node_order = QRadioButton("Node order (low to high noise)")
        self.reversed = QRadioButton("Reversed (high to low noise)")
        self.node_order.setChecked(True)
        self.count_label = QLabel()
        fl = QFormLayout(self.frames_box)
        rng = QHBoxLayout()
        rng.addWidget(QLabel("steps"))
        rng.addWidget(self.first)
        rng.addWidget(QLabel("to"))
        rng.addWidget(self.last)
        rng.addWidget(QLabel("every"))
        rng.addWidget(self.every)
        rng.addWidget(self.all_button)
        fl.addRow(rng)
        fl.addRow(self.node_order)
        fl.addRow(self.reversed)
        fl.addRow(self.count_label)
        for w in (self.first, self.last, self.every):
            w.valueChanged.connect(self._update_count)
        self.node_order.toggled.connect(self._update_count)

        self.options_box = QGroupBox("Options")
        ol = QFormLayout(self.options_box)
        self.which = QComboBox()
        self.which.addItem("Full schedule (high to low, for a sampler)", "schedule")
        self.which.addItem("The node's slice (low to high)", "slice")
        self.cell = QSpinBox()
        self.cell.setRange(32, 512)
        self.cell.setValue(128)
        self.fps = QDoubleSpinBox()
        self.fps.setRange(0.5, 60)
        self.fps.setValue(12)
        self.size = QSpinBox()
        self.size.setRange(32, 1024)
        self.size.setValue(256)
        ol.addRow("Sigmas", self.which)
        ol.addRow("Cell size (px)", self.cell)
        ol.addRow("Frames per second", self.fps)
        ol.addRow("Size (px)", self.size)
        self._option_rows = {SIGMAS_TEXT: [self.which], SHEET: [self.cell], ANIMATION: [self.fps, self.size]}
        self._options_layout = ol

        self.dest_box = QGroupBox("Save to")
        dl = QFormLayout(self.dest_box)
        self.path = QLineEdit()
        self.browse = QPushButton("Browse…")
        self.browse.clicked.connect(self._browse)
        prow = QHBoxLayout()
        prow.addWidget(self.path, 1)
        prow.addWidget(self.browse)
        self.path_row = QWidget()
        self.path_row.setLayout(prow)
        prow.setContentsMargins(0, 0, 0, 0)
        self.comfy_root = QLineEdit(self.settings.comfy_root)
        self.comfy_root.setPlaceholderText("the folder that holds ComfyUI's main.py")
        self.comfy_browse = QPushButton("Browse…")
        self.comfy_browse.clicked.connect(self._browse_comfy)
        crow = QHBoxLayout()
        crow.setContentsMargins(0, 0, 0, 0)
        crow.addWidget(self.comfy_root, 1)
        crow.addWidget(self.comfy_browse)
        self.comfy_row = QWidget()
        self.comfy_row.setLayout(crow)
        self.stem = QLineEdit(self.source.stem)
        self.comfy_note = QLabel()
        self.comfy_note.setWordWrap(True)
        dl.addRow("File", self.path_row)
        dl.addRow("ComfyUI folder", self.comfy_row)
        dl.addRow("Name", self.stem)
        dl.addRow(self.comfy_note)
        self._dest_layout = dl
        self.comfy_root.textChanged.connect(self._update_comfy_note)
        self.stem.textChanged.connect(self._update_comfy_note)

        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.status_label = QLabel()
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.buttons = QDialogButtonBox()
        self.export_button = self.buttons.addButton("Export", QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel_button = self.buttons.addButton("Cancel export", QDialogButtonBox.ButtonRole.ActionRole)
        self.close_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        self.cancel_button.setEnabled(False)
        self.export_button.clicked.connect(self.start_export)
        self.cancel_button.clicked.connect(self.worker.cancel)
        self.close_button.clicked.connect(self.reject)

        lay = QVBoxLayout(self)
        top = QFormLayout()
        top.addRow("Export", self.kind)
        lay.addLayout(top)
        lay.addWidget(self.source_label)
        for w in (self.frames_box, self.options_box, self.dest_box, self.progress, self.status_label, self.buttons):
            lay.addWidget(w)
        self.resize(560, 0)

    # -- state ------------------------------------------------------------------------------------
    def current_kind(self) -> str:
        return self.kind.currentData()

    def has_result(self) -> bool:
        r = self.source.result
        return r is not None and r.latent is not None and self.source.result_is_current

    def n_steps(self) -> int:
        r = self.source.result
        if r is not None and self.source.result_is_current:
            return len(r.plan.positions)
        return int(self.source.n_frames or 0)

    def positions(self) -> list:
        """Chosen steps, in output order."""
        from ..core.export import select_positions
        n = self.n_steps()
        if n == 0:
            raise core.BadParameterError("no frames: run first, or check start and end")
        a, b = self.first.value(), self.last.value()
        if b < a:
            raise core.BadParameterError(f"the range {a}..{b} is empty")
        return select_positions(n, a, b + 1, self.every.value(), reverse=self.reversed.isChecked())

    def options(self) -> dict:
        return {"which": self.which.currentData(), "cell": self.cell.value(), "fps": self.fps.value(),
                "size": self.size.value(), "comfy_root": self.comfy_root.text().strip(),
                "stem": self.stem.text().strip() or "unsampler", "max_memory": self.settings.memory_cap}

    def target_path(self) -> Optional[str]:
        if self.current_kind() == COMFYUI:
            return None
        p = self.path.text().strip()
        if not p:
            return None
        ext = KINDS[self.current_kind()][1]
        if not os.path.splitext(p)[1]:
            p += ext
        return os.path.abspath(os.path.expanduser(p))

    # -- reactions --------------------------------------------------------------------------------
    @Slot()
    def _kind_changed(self, *_):
        kind = self.current_kind()
        self.frames_box.setVisible(kind in FRAME_KINDS)
        for k, widgets in self._option_rows.items():
            for w in widgets:
                self._options_layout.setRowVisible(w, k == kind)
        self.options_box.setVisible(kind in self._option_rows)
        comfy = kind == COMFYUI
        self._dest_layout.setRowVisible(self.path_row, not comfy)
        self._dest_layout.setRowVisible(self.comfy_row, comfy)
        self._dest_layout.setRowVisible(self.stem, comfy)
        self._dest_layout.setRowVisible(self.comfy_note, comfy)
        ext = KINDS[kind][1]
        folder = self.settings.folder("export")
        cur = self.path.text().strip()
        base = os.path.splitext(os.path.basename(cur))[0] if cur else self.source.stem
        if kind == ANIMATION and cur.lower().endswith(".gif"):
            ext = ".gif"
        self.path.setText(os.path.join(os.path.dirname(cur) if cur else folder, base + ext))
        n = self.n_steps()
        if kind in PICTURE_KINDS and n:
            want = SHEET_FRAMES if kind == SHEET else ANIMATION_FRAMES
            self.every.setValue(max(1, math.ceil(n / want)))
        elif kind in (LATENT, COMFYUI):
            self.every.setValue(1)
        self._update_source_label()
        self._update_count()
        self._update_comfy_note()

    def _update_source_label(self) -> None:
        kind = self.current_kind()
        r = self.source.result
        if kind in (SIGMAS_JSON, SIGMAS_TEXT):
            text = "the sigmas of the current parameters (no run needed)"
            ok = self.source.spec is not None or r is not None
        elif self.has_result():
            text = f"from the last run: {len(r.plan.positions)} frames of {list(r.plan.out_shape)}"
            ok = True
        elif kind in PICTURE_KINDS:
            text = "pictures need a finished run with the current parameters: press Run first"
            ok = False
        else:
            text = ("no finished run with the current parameters: the export runs the unsampler straight to the "
                    "file, with bounded memory")
            ok = self.source.spec is not None
        if not ok and self.source.spec_error:
            text += f" ({self.source.spec_error})"
        self.source_label.setText(text)
        self.export_button.setEnabled(ok and not self.worker.is_running())

    @Slot()
    def _update_count(self, *_):
        try:
            pos = self.positions()
        except core.UnsamplerError as e:
            self.count_label.setText(str(e))
            return
        r = self.source.result
        spec = self.source.spec
        B = r.plan.batch if r is not None else (int(spec.latent.shape[0]) if spec is not None else 1)
        fb = r.plan.frame_bytes if r is not None else (
            4 * math.prod(spec.latent.shape[1:]) if spec is not None else 0)
        self.count_label.setText(f"{len(pos)} steps × {B} = {len(pos) * B} latents, "
                                 f"{human_bytes(len(pos) * B * fb)}")

    def _update_comfy_note(self, *_):
        stem = self.stem.text().strip() or "unsampler"
        self.comfy_note.setText(
            f"Writes <ComfyUI>/input/{stem}_NNNNN_.latent (the next free number). ComfyUI's LoadLatent node "
            "lists the files at the top of its input folder: refresh the node (or press R) to see it.")

    @Slot()
    def _select_all(self) -> None:
        self.first.setValue(0)
        self.last.setValue(self.last.maximum())
        self.every.setValue(1)

    @Slot()
    def _browse(self) -> None:
        kind = self.current_kind()
        path, _ = QFileDialog.getSaveFileName(self, "Export", self.path.text(), KINDS[kind][2],
                                              options=QFileDialog.Option.DontConfirmOverwrite)
        if path:
            self.path.setText(path)

    @Slot()
    def _browse_comfy(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "ComfyUI folder", self.comfy_root.text() or os.path.expanduser("~"))
        if path:
            self.comfy_root.setText(path)

    def confirm_overwrite(self, path: str) -> bool:
        """Ask before replacing a file (tests replace this)."""
        answer = QMessageBox.question(self, "Export", f"{os.path.basename(path)} already exists. Replace it?",
                                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    # -- running ----------------------------------------------------------------------------------
    @Slot()
    def start_export(self) -> bool:
        """Check the choices, ask about an existing file, and start the export on the worker."""
        kind = self.current_kind()
        try:
            positions = self.positions() if kind in FRAME_KINDS else []
            if kind in PICTURE_KINDS and not self.has_result():
                raise core.BadParameterError("pictures need a finished run with the current parameters: run first")
            if kind not in (SIGMAS_JSON, SIGMAS_TEXT) and not self.has_result() and self.source.spec is None:
                raise core.BadParameterError(self.source.spec_error or "nothing to export")
            if kind in (SIGMAS_JSON, SIGMAS_TEXT) and self.source.spec is None and self.source.result is None:
                raise core.BadParameterError(self.source.spec_error or "nothing to export")
            path = self.target_path()
            if kind == COMFYUI:
                if not self.comfy_root.text().strip():
                    raise core.BadParameterError("choose the ComfyUI folder (the one that holds main.py)")
                self.settings.comfy_root = self.comfy_root.text().strip()
            elif not path:
                raise core.BadParameterError("choose a file to save to")
        except core.UnsamplerError as e:
            self._set_status(str(e), error=True)
            return False
        overwrite = False
        if path and os.path.exists(path):
            if not self.confirm_overwrite(path):
                self._set_status("not saved: the file exists")
                return False
            overwrite = True
        if path:
            self.settings.set_folder("export", path)
        self.progress.setRange(0, 0)
        self.progress.setVisible(True)
        self._set_status("exporting…")
        self.export_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.worker.run_in_thread(export_job(kind, self.source, path, positions, overwrite, self.options()))
        return True

    @Slot(int, int)
    def _on_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(done)

    @Slot(object)
    def _on_done(self, path) -> None:
        self.last_path = str(path)
        self._set_status(f"saved {self.last_path}")
        self.exported.emit(self.last_path)

    @Slot(str)
    def _on_error(self, text: str) -> None:
        self._set_status(text, error=True)

    @Slot()
    def _on_finished(self) -> None:
        self.progress.setVisible(False)
        self.cancel_button.setEnabled(False)
        self._update_source_label()

    def _set_status(self, text: str, error: bool = False) -> None:
        self.status_label.setStyleSheet("color: #d55e00;" if error else "")
        self.status_label.setText(text)

    def is_busy(self) -> bool:
        return self.worker.is_running()

    def shutdown(self) -> None:
        """Cancel a running export and join its thread (the partial file is removed by core)."""
        self.worker.shutdown()

    def done(self, r: int) -> None:  # close, Esc, Close button: stop the export first
        self.shutdown()
        super().done(r)

    def closeEvent(self, event) -> None:
        self.shutdown()
        super().closeEvent(event)
