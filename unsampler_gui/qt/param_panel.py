"""The form: model, latent, and the run parameters, over the ``core.session.Session`` it is given.

The parameter rows are made from ``core.params`` (one per ``RunParams`` field); what the form shows is
what the session holds. Files are read on workers with ``core.inputs`` (a latent is read, checked and
summarised; a checkpoint is detected from its header, no weights are loaded), and the session decides
what an opened file changes. The output size and memory line comes from the session's plan, made on a
``latest_only`` ``Background``, so nothing here computes on the GUI thread.
"""
from __future__ import annotations

import html
import os
from typing import Optional

from PySide6.QtCore import QElapsedTimer, Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (QComboBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QPushButton,
                               QSizePolicy, QToolButton, QVBoxLayout, QWidget)

from .. import core
from ..core import params as run_params
from ..core.devices import human_bytes
from ..core.batch_file import BatchFile
from ..core.errors import printable
from ..core.inputs import (CHECKPOINT_EXTS, PICTURE_EXTS, DetectedModel, LoadedLatent, NonFiniteLatent, PictureInput,
                           detect_model, load_dropped, open_input)
from ..core.session import Estimate, Session
from . import SAMPLE_LABEL, errors
from .background import Background
from .errors import plain_tooltip
from .param_rows import make_row
from .settings import Settings
from .sigma_plot import ScheduleRequest
from .wheel_guard import guard_wheel
from .worker import Worker

#: Edits made in a focused field closer together than this (typing a number: "1", "10", "100"...) are taken
#: once the typing pauses for as long; the first one is taken at once (milliseconds).
TYPING_SETTLE_MS = 250

_PICTURES = " ".join(f"*{e}" for e in PICTURE_EXTS)
LATENT_FILTER = (f"Latents and pictures (*.latent *.safetensors {_PICTURES} *.json);;Latents (*.latent *.safetensors);;"
                 f"Pictures ({_PICTURES});;ComfyUI workflows (*.json);;All files (*)")
CHECKPOINT_FILTER = ("Checkpoints (" + " ".join(f"*{e}" for e in (".safetensors",) + CHECKPOINT_EXTS)
                     + ");;All files (*)")


def describe_latent(lat: LoadedLatent) -> str:
    """The latent panel's rich text (every string from the file escaped)."""
    s = lat.summary
    rng = ("" if s.get("min") is None else
           f"<br>range {s['min']:.4g} … {s['max']:.4g}, mean {s['mean']:.4g}, std {s['std'] or 0:.4g}")
    kind = {"latent": ".latent", "legacy latent": ".latent without marker (×1/0.18215, as LoadLatent)",
            "safetensors": "safetensors tensor", "picture": "encoded from a picture"}.get(lat.kind, lat.kind)
    extra = ""
    if isinstance(lat.unsampler, dict):
        u = lat.unsampler
        extra = (f"<br>an Unsampler export: {_esc(u.get('family', '?'))}, {_esc(u.get('sampler', '?'))}/"
                 f"{_esc(u.get('scheduler', '?'))}, {_esc(u.get('steps', '?'))} steps")
    # the sample's note is one short line on the name's (its whole text is the tooltip)
    head = f" <i>({SAMPLE_LABEL.split(' (')[0]})</i>" if lat.is_sample else ""
    return (f"<b>{_esc(lat.name)}</b>{head}<br>{list(lat.shape)} · stored {_esc(lat.stored_dtype)} · "
            f"{_esc(kind)}{rng}{extra}")


def _esc(text) -> str:
    """Any value, as text that a RichText label shows literally (strings from files are never markup)."""
    return html.escape(printable(text))


class ParamPanel(QWidget):
    """The form on the left. Emits ``changed`` for every parameter change and ``runRequested`` for Run.

    Its rows are made from ``core.params``: one row per ``RunParams`` field, in the field's section.
    """

    changed = Signal()
    runRequested = Signal()
    cancelRequested = Signal()
    latentChanged = Signal(object)  # LoadedLatent
    pictureOpened = Signal(str, str)  # path, "picture" or "workflow": the window's PictureSource takes it
    batchOpened = Signal(object)  # core.batch_file.BatchFile: a file that holds a batch, to browse or use
    modelChanged = Signal()
    status = Signal(str)
    error = Signal(str, str)  # title, message
    idle = Signal()  # no file is being read any more

    def __init__(self, session: Session, settings: Settings, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.session = session
        self.settings = settings
        session.family_choices = settings.family_choices()
        self._showing = False  # the rows are being set from the session: their signals are not edits
        self._busy = False
        self._estimate_inputs = None  # the inputs of the newest size estimate asked for
        self._latent_loader = Worker(self, name="open latent")
        self._latent_loader.result.connect(self._on_loaded)
        self._latent_loader.error.connect(errors.worded(lambda t: self._on_load_error("Open latent", t)))
        self._model_loader = Worker(self, name="open checkpoint")
        self._model_loader.result.connect(self._on_loaded)
        self._model_loader.error.connect(errors.worded(lambda t: self._on_load_error("Open checkpoint", t)))
        for loader in (self._latent_loader, self._model_loader):
            loader.finished.connect(self._loader_finished)
        self._drop_loaders: list = []
        self._estimator = Background(self, name="estimate", latest_only=True)
        self._estimator.done.connect(lambda _tag, answer: self._on_estimate(answer))
        self._estimator.failed.connect(lambda _tag, exc: self._on_estimate_failed(errors.user_message(exc)))
        self._typed = QTimer(self)  # typed edits wait for a pause (TYPING_SETTLE_MS)
        self._typed.setSingleShot(True)
        self._typed.setInterval(TYPING_SETTLE_MS)
        self._typed.timeout.connect(self.flush_edits)
        self._typed_clock = QElapsedTimer()
        self._build()
        self.changed.connect(self.refresh_estimate)

    # -- layout -----------------------------------------------------------------------------------
    def _build(self) -> None:
        self.rows = {p.name: make_row(p) for p in run_params.fields()}
        sections = {s: [r for r in self.rows.values() if r.param.section == s] for s in run_params.SECTIONS}

        # model: the family rows, and the checkpoint that may stand behind them
        self.open_checkpoint_button = QPushButton("Open checkpoint…")
        self.open_checkpoint_button.setToolTip("Detect the family from a checkpoint's header (no weights are loaded)")
        self.open_checkpoint_button.clicked.connect(self.browse_checkpoint)
        self.model_info = info_label()  # one line; the checkpoint's evidence is behind "details"
        self.details_button = QToolButton()
        self.details_button.setText("details")
        self.details_button.setCheckable(True)
        self.details_button.setAutoRaise(True)
        self.details_button.setToolTip("Show why the checkpoint was read as this family")
        self.model_details = info_label()
        self.model_details.setVisible(False)
        self.details_button.toggled.connect(self.model_details.setVisible)
        model_box = QGroupBox("Model")
        ml = QVBoxLayout(model_box)
        row = QHBoxLayout()
        for r in sections["model"]:
            row.addWidget(r.widget, 1)
        row.addWidget(self.open_checkpoint_button)
        ml.addLayout(row)
        info = QHBoxLayout()
        info.addWidget(self.model_info, 1)
        info.addWidget(self.details_button, 0, Qt.AlignmentFlag.AlignTop)
        ml.addLayout(info)
        ml.addWidget(self.model_details)

        # latent
        self.open_latent_button = QPushButton("Open latent or picture…")
        self.open_latent_button.setToolTip("A ComfyUI .latent, a .safetensors holding one latent, a PNG, JPEG or WebP "
                                           "(encoded with the model's VAE) or a ComfyUI workflow .json (or drop a "
                                           "file)")
        self.open_latent_button.clicked.connect(self.browse_latent)
        self.latent_info = info_label()
        self.latent_info.setText("no latent")
        _reserve_lines(self.latent_info, 5)  # a note line coming or going does not move the form
        # how the latent fits the chosen family: a line, and when it does not, the families that do
        self.fit_label = info_label()
        _reserve_lines(self.fit_label, 1)
        self.fit_choice = QComboBox()
        self.fit_choice.setToolTip("The families that take this latent (your last choice for such latents first)")
        guard_wheel(self.fit_choice)
        self.fit_button = QPushButton("Use")
        self.fit_button.setToolTip("Use this family for the latent (remembered for latents of this channel count)")
        self.fit_button.clicked.connect(self._use_fit_choice)
        self.fit_row = QWidget()
        fr = QHBoxLayout(self.fit_row)
        fr.setContentsMargins(0, 0, 0, 0)
        fr.addWidget(self.fit_choice, 1)
        fr.addWidget(self.fit_button)
        keep = self.fit_row.sizePolicy()
        keep.setRetainSizeWhenHidden(True)  # the row's room stays: the form does not jump when it shows
        self.fit_row.setSizePolicy(keep)
        self.fit_row.setVisible(False)
        self.latent_box = latent_box = QGroupBox("Latent")
        ll = QVBoxLayout(latent_box)
        ll.addWidget(self.open_latent_button)
        ll.addWidget(self.latent_info)
        ll.addWidget(self.fit_label)
        ll.addWidget(self.fit_row)

        # the run's parameters
        form_box = QGroupBox("Unsampling")
        form = QFormLayout(form_box)
        for r in sections["unsampling"]:
            form.addRow(r.label, r.widget)

        # advanced overrides: the optional parameters; unchecked, they are the family's own
        self.advanced = QGroupBox("Advanced overrides")
        self.advanced.setCheckable(True)
        self.advanced.setChecked(False)
        self.advanced.setToolTip("ComfyUI's ModelSampling* nodes: override the family's shift and prediction type")
        adv = QFormLayout(self.advanced)
        for r in sections["advanced"]:
            adv.addRow(r.label, r.widget)
        self.override_info = info_label()
        adv.addRow(self.override_info)

        self.estimate_label = info_label()
        _reserve_lines(self.estimate_label, 2)  # the size line and a warning
        # a long message is cut at 4 lines (its whole text is the tooltip): Run stays in view
        self.estimate_label.setMaximumHeight(4 * self.estimate_label.fontMetrics().lineSpacing() + 4)
        self.run_button = QPushButton("Run")
        self.run_button.setDefault(True)
        self.run_button.setToolTip("Make the progressively noised batch (Ctrl+R)")
        self.run_button.clicked.connect(self._run_clicked)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        for w in (model_box, latent_box, form_box, self.advanced):
            lay.addWidget(w)
        lay.addStretch(1)
        # the size line and Run: the window keeps them in view under the scrolling form
        self.footer = QWidget()
        fl = QVBoxLayout(self.footer)
        fl.setContentsMargins(6, 2, 6, 6)
        fl.addWidget(self.estimate_label)
        fl.addWidget(self.run_button)

        for r in self.rows.values():
            r.connect(self._edited)
        self.advanced.toggled.connect(self._edited)
        self._show(self.session.params)
        self.session.set_params(self._read())
        self._show_family_info()

    def widget(self, name: str) -> QWidget:
        """The form widget of a run parameter."""
        return self.rows[name].widget

    # -- values -----------------------------------------------------------------------------------
    # the session holds the inputs; these read it for the form's users
    def family_name(self) -> str:
        return self.session.params.family

    def base_family(self) -> core.Family:
        """The chosen family: the checkpoint's detection when it matches the combo, else the built-in one."""
        return self.session.base_family()

    def effective_family(self) -> core.Family:
        """The family with the advanced overrides applied (raises ``BadParameterError`` if they do not fit)."""
        return self.session.effective_family()

    def latent(self) -> Optional[LoadedLatent]:
        return self.session.latent

    def detection(self) -> Optional[DetectedModel]:
        return self.session.model

    def model_source(self) -> str:
        """The checkpoint path when the chosen family is the detected one, else the family name."""
        return self.session.model_source()

    def run_params(self) -> run_params.RunParams:
        """The form's values."""
        return self.session.params

    def params(self) -> dict:
        """Every form value, as plain JSON (for settings and tests)."""
        return run_params.to_dict(self.session.params)

    def set_params(self, p, family: bool = True) -> None:
        """Set form values from a dict like ``params()`` (or a ``RunParams``); unknown or invalid values are
        skipped, and ``family=False`` keeps the family."""
        values = run_params.to_dict(p) if isinstance(p, run_params.RunParams) else p
        new = run_params.from_dict(values, base=self.session.params, skip=() if family else ("family",))
        self._apply(new)

    def _apply(self, new: run_params.RunParams) -> None:
        """Show ``new`` and take back what the form holds (the form is what a run uses)."""
        self._typed.stop()  # whatever was typed is in the rows: taken now
        self._showing = True
        try:
            self._show(new)
        finally:
            self._showing = False
        self.session.set_params(self._read())
        self._show_family_info()
        self.changed.emit()

    def _read(self) -> run_params.RunParams:
        """The values the rows show; the overrides are None while their box is unchecked."""
        fam = self.session.base_family(self.rows["family"].value(None))
        values = {}
        for n, r in self.rows.items():
            if r.param.section == "advanced" and not self.advanced.isChecked():
                values[n] = None
            else:
                values[n] = r.value(fam)
        return run_params.fit(run_params.default().replace(**values), fam)

    def _show(self, p: run_params.RunParams) -> None:
        fam = self.session.base_family(p.family)
        self.rows["family"].show(p.family, fam)
        self.advanced.setChecked(any(getattr(p, r.param.name) is not None for r in self.rows.values()
                                     if r.param.section == "advanced"))
        for n, r in self.rows.items():
            if n != "family":
                r.show(getattr(p, n), fam)

    def refresh_families(self) -> None:
        """The registry was reloaded (Model > Define family…): the family list shows it, the user's own last."""
        self.rows["family"].refill()

    def set_family(self, name: str) -> bool:
        try:
            fam = core.get_family(name)
        except core.UnsamplerError:
            return False
        self.set_params({"family": fam.name})
        return True

    def schedule_request(self) -> Optional[ScheduleRequest]:
        """What the sigma plot needs (no latent involved); None when the overrides do not fit."""
        try:
            fam = self.effective_family()
        except core.UnsamplerError:
            return None
        p = self.session.params
        return ScheduleRequest(family=fam, sampler=p.sampler, scheduler=p.scheduler, steps=p.steps,
                               start_at_step=p.start_at_step, end_at_step=p.end_at_step)

    def spec(self, **changes) -> core.UnsampleSpec:
        """The frozen job description. Raises ``UnsamplerError`` with a clear message when something is missing."""
        return self.session.spec(**changes)

    def estimate(self) -> Optional[Estimate]:
        """The output size of the current parameters (None while it is computed or when they are invalid)."""
        return self.session.estimate()

    def estimate_error(self) -> str:
        """Why the current parameters cannot run ("" when they can, or while that is being checked)."""
        return self.session.plan_error()

    def set_busy(self, busy: bool) -> None:
        """While a run is going the Run button becomes Cancel."""
        self._busy = busy
        self.run_button.setText("Cancel" if busy else "Run")
        self.run_button.setToolTip("Stop the run (Esc)" if busy else "Make the progressively noised batch (Ctrl+R)")

    def is_loading(self) -> bool:
        return (self._latent_loader.is_running() or self._model_loader.is_running()
                or any(w.is_running() for w in self._drop_loaders))

    # -- files ------------------------------------------------------------------------------------
    @Slot()
    def browse_latent(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open latent or picture", self.settings.folder("latent"),
                                              LATENT_FILTER)
        if path:
            self.open_latent(path)

    @Slot()
    def browse_checkpoint(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open checkpoint", self.settings.folder("checkpoint"),
                                              CHECKPOINT_FILTER)
        if path:
            self.open_checkpoint(path)

    def open_latent(self, path: str, is_sample: bool = False, allow_nonfinite: bool = False,
                    as_input: bool = False) -> None:
        """Read a latent on a worker; the form updates when it arrives. A picture or workflow goes to
        ``pictureOpened``; a file that holds a batch is ``batchOpened`` (to browse, or to use as the
        input) unless ``as_input``."""
        if not is_sample:
            self.settings.set_folder("latent", path)
        self.status.emit(f"reading {os.path.basename(path)}…")
        self._latent_loader.run_in_thread(lambda rep: open_input(path, is_sample, allow_nonfinite, as_input))

    def _ask_nonfinite(self, bad: NonFiniteLatent) -> None:
        """NaN/Inf in a latent: say so and use it (zeroed) only when the user agrees."""
        name = os.path.basename(bad.path)
        text = (f"{name} holds {bad.count} NaN/Inf values. Unsampling it would spread them into every frame.\n\n"
                "Replace them with 0 and open it anyway?")
        self.status.emit(f"{name}: {bad.count} NaN/Inf values")
        if self.confirm_nonfinite(text):
            self.open_latent(bad.path, bad.is_sample, allow_nonfinite=True, as_input=True)
        else:
            self.status.emit(f"{name} was not opened: it holds NaN/Inf values")

    def confirm_nonfinite(self, text: str) -> bool:
        """Asks the user (tests replace this)."""
        from .errors import ask

        return ask(self, "Open latent", text)

    def open_checkpoint(self, path_or_name: str) -> None:
        """Detect a checkpoint's family on a worker (or pick a built-in family by name)."""
        if os.path.exists(path_or_name):
            self.settings.set_folder("checkpoint", path_or_name)
        self.status.emit(f"detecting {os.path.basename(path_or_name.rstrip('/'))}…")
        self._model_loader.run_in_thread(lambda rep: detect_model(path_or_name))

    def open_path(self, path: str) -> None:
        """A dropped path: a latent or a checkpoint, decided on a worker of its own (a latent and a
        checkpoint dropped together both arrive)."""
        self.status.emit(f"opening {os.path.basename(path.rstrip('/'))}…")
        w = Worker(self, name="open dropped")
        w.result.connect(self._on_loaded)
        w.error.connect(errors.worded(lambda t: self._on_load_error("Open", t)))
        w.finished.connect(lambda: self._drop_finished(w))
        self._drop_loaders.append(w)
        w.run_in_thread(lambda rep: load_dropped(path))

    def _drop_finished(self, w: Worker) -> None:
        if w in self._drop_loaders:
            self._drop_loaders.remove(w)
            w.shutdown()
            w.deleteLater()
        self._loader_finished()

    def set_latent(self, latent: LoadedLatent) -> None:
        """Use this latent (the session restores an export's parameters, or switches to a family that takes it)."""
        text = self.session.open_latent(latent)
        self.latent_info.setText(describe_latent(latent))
        self.latent_info.setToolTip(plain_tooltip((SAMPLE_LABEL + "\n" if latent.is_sample else "") + (latent.path or "")))
        self._apply(self.session.params)
        self.latentChanged.emit(latent)
        self.status.emit(text)

    def _show_fit(self) -> None:
        """The line beside the latent: it fits the chosen family, or it does not, and which families do."""
        fit = self.session.latent_fit()
        if fit is None:
            self.fit_label.setText("")
            self.fit_row.setVisible(False)
            return
        color = "" if fit.fits else " style='color:#d55e00'"
        self.fit_label.setText(f"<span{color}>{_esc(fit.message)}</span>")
        self.fit_choice.blockSignals(True)
        self.fit_choice.clear()
        for name in fit.choices:
            self.fit_choice.addItem(core.get_family(name).display_name, name)
        self.fit_choice.blockSignals(False)
        self.fit_row.setVisible(not fit.fits and bool(fit.choices))

    @Slot()
    def _use_fit_choice(self) -> None:
        """Use the family chosen beside the latent, and remember it for latents of this channel count."""
        name = self.fit_choice.currentData()
        if not name:
            return
        text = self.session.choose_family_for_latent(name)
        self.settings.set_family_choices(self.session.family_choices)
        self._apply(self.session.params)
        self.status.emit(text)
        self.modelChanged.emit()

    @Slot(object)
    def _on_loaded(self, value) -> None:
        if isinstance(value, NonFiniteLatent):
            self._ask_nonfinite(value)
        elif isinstance(value, LoadedLatent):
            self.set_latent(value)
        elif isinstance(value, PictureInput):
            self.pictureOpened.emit(value.path, value.kind)
        elif isinstance(value, BatchFile):
            self.batchOpened.emit(value)
        else:
            self.set_detection(value)

    def set_detection(self, det: DetectedModel) -> None:
        text = self.session.set_model(det)
        self._apply(self.session.params)
        self.status.emit(text)
        self.modelChanged.emit()

    @Slot()
    def _loader_finished(self) -> None:
        if not self.is_loading():
            self.idle.emit()

    def _on_load_error(self, title: str, text: str) -> None:
        self.status.emit(text)
        self.error.emit(title, text)

    # -- reactions --------------------------------------------------------------------------------
    @Slot()
    def _edited(self, *_) -> None:
        """A row changed: take the form's values, and refresh the rows that follow the family. Edits typed in
        quick succession into a focused field (a number typed digit by digit) are taken once the typing
        pauses: the first at once, the rest ``TYPING_SETTLE_MS`` after the last (``flush_edits``)."""
        if self._showing:
            return
        w = self.sender()
        typing = isinstance(w, QWidget) and w.hasFocus()
        if typing and (self._typed.isActive()
                       or (self._typed_clock.isValid() and self._typed_clock.elapsed() < TYPING_SETTLE_MS)):
            self._typed_clock.start()
            self._typed.start()
            return
        self._apply(self._read())
        if typing:  # counted from the end of the change: a slow one does not make the next value "slow"
            self._typed_clock.start()
        else:
            self._typed_clock.invalidate()

    @Slot()
    def flush_edits(self) -> None:
        """Take the edits still waiting for the typing to pause (before a run or an export, and on closing)."""
        if self._typed.isActive() or self.sender() is self._typed:
            self._typed_clock.invalidate()  # the next value typed is taken at once again
            self._apply(self._read())

    def edits_pending(self) -> bool:
        """True while typed edits wait for the typing to pause."""
        return self._typed.isActive()

    def _show_family_info(self) -> None:
        fam = self.base_family()
        kind = fam.sampling.kind
        shift = run_params.has_shift(fam)
        self.override_info.setText(f"{_esc(fam.display_name)}: {kind} sampling, shift {fam.sampling.shift:g}, "
                                   f"{fam.sampling.prediction}" + ("" if shift else " (this kind has no shift)"))
        self._show_model_info()
        self._show_fit()

    def _show_model_info(self) -> None:
        """One line: the checkpoint and the family read from it (its evidence behind "details"), or the
        built-in family."""
        fam = self.base_family()
        dm = self.session.model_in_use()
        if dm is not None:
            d = dm.detection
            src = os.path.basename(str(dm.source).rstrip("/\\")) or "checkpoint"
            ev = [str(e) for e in (getattr(d, "evidence", None) or [])]
            pred = str(getattr(d, "prediction", "") or fam.sampling.prediction)
            shift = getattr(d, "shift", None)
            shift = f", shift {float(shift):g}" if shift is not None and run_params.has_shift(fam) else ""
            self.model_info.setText(f"<b>{_esc(src)}</b> → {_esc(fam.display_name)} ({_esc(pred)}{shift}), "
                                    "detected from the header")
            self.model_info.setToolTip(plain_tooltip("\n".join(f"• {e}" for e in ev)))
            self.model_details.setText("why:" + ("".join(f"<br>• {_esc(e)}" for e in ev) or " (no details)"))
            self.details_button.setVisible(True)
            self.model_details.setVisible(self.details_button.isChecked())
        else:
            self.model_info.setToolTip("")
            self.model_info.setText(f"built-in: {_esc(fam.display_name)} · {fam.sampling.prediction} · "
                                    f"{fam.latent.channels}-channel {fam.latent.ndim}-D latents")
            self.model_details.setText("")
            self.details_button.setVisible(False)
            self.model_details.setVisible(False)

    @Slot()
    def _run_clicked(self) -> None:
        self.flush_edits()
        (self.cancelRequested if self._busy else self.runRequested).emit()

    @Slot()
    def refresh_estimate(self) -> None:
        """Plan the current inputs off the GUI thread, for the size line (and the Run check); inputs that
        are planned already are not planned again."""
        if self.session.plan() is not None or self.session.plan_error():
            self._show_estimate()
            return
        job = self.session.plan_job()
        self._estimate_inputs = self.session.inputs()
        if job is None:
            self._show_estimate()
        else:
            self._estimator.submit(lambda task: job())

    @Slot(object)
    def _on_estimate(self, answer) -> None:
        if self.session.take_plan(*answer):
            self._show_estimate()

    @Slot(str)
    def _on_estimate_failed(self, text: str) -> None:  # an unexpected failure: the message names the log
        if self._estimate_inputs is not None and self.session.take_plan(self._estimate_inputs, None, text):
            self._show_estimate()

    def _show_estimate(self) -> None:
        s = self.session
        err, est = s.plan_error(), s.estimate()
        if err or est is None:
            fit = s.latent_fit()
            if err and fit is not None and not fit.fits:  # the line beside the latent says it, with the way out
                err = "cannot run: the latent does not fit the model (see Latent above)"
            self.estimate_label.setText(f"<span style='color:#d55e00'>{_esc(err)}</span>")
            self.estimate_label.setToolTip(plain_tooltip(s.plan_error()))
            return
        self.estimate_label.setToolTip("")
        free = f" · {human_bytes(est.available)} free" if est.available else ""
        warn = s.memory_warning()
        warn = f"<br><span style='color:#d55e00'>{_esc(warn)}</span>" if warn else ""
        self.estimate_label.setText(f"Output: {_esc(est.describe)}{free}{warn}")

    def shutdown(self) -> None:
        self._typed.stop()
        self._latent_loader.shutdown()
        self._model_loader.shutdown()
        for w in list(self._drop_loaders):
            w.shutdown()
        self._estimator.shutdown()


def info_label() -> QLabel:
    """A selectable rich-text label that wraps and never widens its panel."""
    lab = QLabel()
    lab.setWordWrap(True)
    lab.setTextFormat(Qt.TextFormat.RichText)
    lab.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    # a long file name wraps or is cut; it never widens the panel
    lab.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Minimum)
    return lab


def _reserve_lines(lab: QLabel, n: int) -> None:
    """Keep room for ``n`` lines, so the rows below stay put as the text grows and shrinks."""
    lab.setMinimumHeight(n * lab.fontMetrics().lineSpacing())


__all__ = ["ParamPanel", "describe_latent"]
