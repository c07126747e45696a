"""Export: one dialog for every kind in ``core.exports.EXPORTS`` (the ``.latent`` batch, straight into
ComfyUI's input folder, the sigmas as JSON or ManualSigmas text, a contact sheet, an animation).

The dialog is made from the registry: its kinds, each kind's option rows, the frame choice (a step
range, every k-th, node order or reversed) for the kinds that pick frames, the destination rows, and
the line that says what the export draws on. The export runs on a ``Worker`` with progress and Cancel;
the job is the registry's (``core.exports.export_job``), and its writes are atomic, so a cancelled or
failed export leaves no file.
"""
from __future__ import annotations

import os
from typing import Optional

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QDoubleSpinBox, QFileDialog, QFormLayout,
                               QGroupBox, QHBoxLayout, QLabel, QLineEdit, QProgressBar, QPushButton,
                               QRadioButton, QSpinBox, QVBoxLayout, QWidget)

from .. import core
from ..core.devices import human_bytes
from ..core.exports import COMFYUI_INPUT, EXPORTS, LATENT, ExportKind, ExportOption, ExportSource, export_job
from . import errors
from .settings import Settings
from .wheel_guard import guard_wheel_all
from .worker import Worker


def _option_widget(opt: ExportOption) -> QWidget:
    """The widget for an export option: a combo for choices, else a spin box in the option's range."""
    if opt.choices:
        w = QComboBox()
        for value, label in opt.choices:
            w.addItem(label, value)
        w.setCurrentIndex(max(0, w.findData(opt.default)))
    elif isinstance(opt.default, float):
        w = QDoubleSpinBox()
        w.setDecimals(opt.decimals or 1)
        w.setRange(*opt.range)
        w.setValue(opt.default)
    else:
        w = QSpinBox()
        w.setRange(*opt.range)
        w.setValue(opt.default)
    w.setToolTip(opt.help)
    return w


def _option_value(w: QWidget):
    return w.currentData() if isinstance(w, QComboBox) else w.value()


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
        for k in EXPORTS.values():
            self.kind.addItem(k.label, k.key)
        self.kind.currentIndexChanged.connect(self._kind_changed)
        self.source_label = QLabel()
        self.source_label.setTextFormat(Qt.TextFormat.PlainText)
        self.source_label.setWordWrap(True)

        self.frames_box = self._build_frames()

        # every kind's options, each kind's rows shown only while it is chosen
        self.options_box = QGroupBox("Options")
        self._options_layout = QFormLayout(self.options_box)
        self.option_widgets: dict = {}  # (kind, option name) -> widget
        for k in EXPORTS.values():
            for opt in k.options:
                w = _option_widget(opt)
                self.option_widgets[(k.key, opt.name)] = w
                self._options_layout.addRow(opt.label, w)

        self.dest_box = self._build_destination()

        self.progress = QProgressBar()
        keep = self.progress.sizePolicy()
        keep.setRetainSizeWhenHidden(True)  # the dialog keeps its size when an export starts and ends
        self.progress.setSizePolicy(keep)
        self.progress.setVisible(False)
        self.status_label = QLabel()
        self.status_label.setTextFormat(Qt.TextFormat.PlainText)  # messages name files: never markup
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status_label.setMinimumHeight(2 * self.status_label.fontMetrics().lineSpacing())  # room for 2 lines
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
        guard_wheel_all(self)  # the wheel changes a value only with focus
        self.resize(560, 0)

    def _build_frames(self) -> QGroupBox:
        n = self.n_steps()
        box = QGroupBox("Frames")
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
        self.count_label.setTextFormat(Qt.TextFormat.PlainText)
        fl = QFormLayout(box)
        rng = QHBoxLayout()
        for w in (QLabel("frames"), self.first, QLabel("to"), self.last, QLabel("every"), self.every,
                  self.all_button):
            rng.addWidget(w)
        fl.addRow(rng)
        fl.addRow(self.node_order)
        fl.addRow(self.reversed)
        fl.addRow(self.count_label)
        for w in (self.first, self.last, self.every):
            w.valueChanged.connect(self._update_count)
        self.node_order.toggled.connect(self._update_count)
        return box

    def _build_destination(self) -> QGroupBox:
        box = QGroupBox("Save to")
        dl = QFormLayout(box)
        self.path = QLineEdit()
        self.browse = QPushButton("Browse…")
        self.browse.clicked.connect(self._browse)
        self.path_row = _row(self.path, self.browse)
        self.comfy_root = QLineEdit(self.settings.comfy_root)
        self.comfy_root.setPlaceholderText("ComfyUI's folder: the install, or Desktop's user folder")
        self.comfy_browse = QPushButton("Browse…")
        self.comfy_browse.clicked.connect(self._browse_comfy)
        self.comfy_row = _row(self.comfy_root, self.comfy_browse)
        self.stem = QLineEdit(self.source.stem)
        self.comfy_note = QLabel()
        self.comfy_note.setTextFormat(Qt.TextFormat.PlainText)
        self.comfy_note.setWordWrap(True)
        dl.addRow("File", self.path_row)
        dl.addRow("ComfyUI folder", self.comfy_row)
        dl.addRow("Name", self.stem)
        dl.addRow(self.comfy_note)
        self._dest_layout = dl
        self.comfy_root.textChanged.connect(self._update_comfy_note)
        self.stem.textChanged.connect(self._update_comfy_note)
        return box

    # -- state ------------------------------------------------------------------------------------
    def current_kind(self) -> str:
        return self.kind.currentData()

    def export_kind(self) -> ExportKind:
        return EXPORTS[self.current_kind()]

    def has_result(self) -> bool:
        return self.source.has_frames

    def n_steps(self) -> int:
        return self.source.n_frames

    def positions(self) -> list:
        """Chosen frames (frame i: the i-th latent, from low to high noise), in output order."""
        from ..core.export import select_positions
        n = self.n_steps()
        if n == 0:
            raise core.BadParameterError("no frames: check start and end (or wait until the plan is made)")
        a, b = self.first.value(), self.last.value()
        if b < a:
            raise core.BadParameterError(f"the range {a}..{b} is empty")
        return select_positions(n, a, b + 1, self.every.value(), reverse=self.reversed.isChecked(),
                                keep_end=self.export_kind().keeps_end)

    def option_widget(self, name: str) -> QWidget:
        """The widget of the current kind's option ``name``."""
        return self.option_widgets[(self.current_kind(), name)]

    def options(self) -> dict:
        """The current kind's options, and where a ComfyUI export goes."""
        k = self.export_kind()
        out = {opt.name: _option_value(self.option_widgets[(k.key, opt.name)]) for opt in k.options}
        out.update(comfy_root=self.comfy_root.text().strip(), stem=self.stem.text().strip() or "unsampler")
        return out

    def target_path(self) -> Optional[str]:
        k = self.export_kind()
        p = self.path.text().strip()
        if k.destination == COMFYUI_INPUT or not p:
            return None
        return k.target(p)

    # -- reactions --------------------------------------------------------------------------------
    @Slot()
    def _kind_changed(self, *_):
        k = self.export_kind()
        self.frames_box.setVisible(k.picks_frames)
        for (key, _name), w in self.option_widgets.items():
            self._options_layout.setRowVisible(w, key == k.key)
        self.options_box.setVisible(bool(k.options))
        comfy = k.destination == COMFYUI_INPUT
        self._dest_layout.setRowVisible(self.path_row, not comfy)
        for w in (self.comfy_row, self.stem, self.comfy_note):
            self._dest_layout.setRowVisible(w, comfy)
        cur = self.path.text().strip()
        base = os.path.splitext(os.path.basename(cur))[0] if cur else self.source.stem
        ext = os.path.splitext(cur)[1].lower() if cur else ""
        ext = ext if ext in k.exts else k.ext
        self.path.setText(os.path.join(os.path.dirname(cur) if cur else self.settings.folder("export"), base + ext))
        if k.picks_frames:
            self.every.setValue(k.default_every(self.n_steps()))
        self._update_source_label()
        self._update_count()
        self._update_comfy_note()
        if not self.worker.is_running():
            self._set_status("")  # a line about another kind's export is not about this one
        self._fit_height()

    def _fit_height(self, grow_only: bool = False) -> None:
        """The height the shown rows need at the dialog's width (wrapped help text included), so no
        control is squashed and no text is cut; ``grow_only`` keeps a taller size (while exporting)."""
        lay = self.layout()
        lay.activate()
        w = max(self.width(), lay.totalMinimumSize().width())
        h = lay.totalHeightForWidth(w) if lay.hasHeightForWidth() else lay.totalSizeHint().height()
        h = max(h, lay.totalSizeHint().height())
        if grow_only and h <= self.height():
            return
        self.setMinimumHeight(h)
        self.resize(w, h)

    def _update_source_label(self) -> None:
        text, ok = self.export_kind().source_text(self.source)
        self.source_label.setText(text)
        self.export_button.setEnabled(ok and not self.worker.is_running())

    @Slot()
    def _update_count(self, *_):
        try:
            pos = self.positions()
        except core.UnsamplerError as e:
            self.count_label.setText(str(e))
            return
        B, fb = self.source.batch, self.source.frame_bytes
        text = f"{len(pos)} frames × {B} = {len(pos) * B} latents, {human_bytes(len(pos) * B * fb)}"
        plan = self.source.plan
        if plan is not None:  # the ends with their schedule step and sigma, as the viewer and the grid say them
            def at(i: int) -> str:
                k = plan.positions[i]
                return f"frame {i}: step {int(plan.schedule_index[k])}, \u03c3 {float(plan.model_sigmas[k]):.4g}"
            a, b = self.first.value(), self.last.value()
            text += f"\n{at(a)}  …  {at(b)}"
        self.count_label.setText(text)

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
        path, _ = QFileDialog.getSaveFileName(self, "Export", self.path.text(), self.export_kind().filter,
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
        from .errors import ask

        return ask(self, "Export", f"{os.path.basename(path)} already exists. Replace it?")

    # -- running ----------------------------------------------------------------------------------
    @Slot()
    def start_export(self) -> bool:
        """Check the choices, ask about an existing file, and start the export on the worker."""
        k = self.export_kind()
        try:
            positions = self.positions() if k.picks_frames else []
            k.check(self.source)
            path = self.target_path()
            if k.destination == COMFYUI_INPUT:
                if not self.comfy_root.text().strip():
                    raise core.BadParameterError("choose the ComfyUI folder (the install, or ComfyUI Desktop's "
                                                 "user folder)")
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
        self.progress.setRange(0, 0)
        self.progress.setVisible(True)
        self._set_status("exporting…")
        self.export_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.worker.run_in_thread(export_job(k.key, self.source, path, positions, overwrite, self.options()))
        return True

    @Slot(int, int)
    def _on_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(done)

    @Slot(object)
    def _on_done(self, path) -> None:
        self.last_path = str(path)
        # only a folder that took a file becomes the next default (a read-only one is not offered again)
        if self.export_kind().destination == COMFYUI_INPUT:
            self.settings.comfy_root = self.comfy_root.text().strip()
        else:
            self.settings.set_folder("export", self.last_path)
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
        self._fit_height(grow_only=True)

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


def _row(*widgets) -> QWidget:
    row = QWidget()
    lay = QHBoxLayout(row)
    lay.setContentsMargins(0, 0, 0, 0)
    for i, w in enumerate(widgets):
        lay.addWidget(w, 1 if i == 0 else 0)
    return row
