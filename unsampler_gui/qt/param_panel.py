"""The inputs: model, latent, and the BatchUnsampler parameters. ``spec()`` gives a frozen
``core.UnsampleSpec``.

Files are read on workers: a latent (read, checked and summarised) and a checkpoint (detected from
its header by ``core.detect.resolve_model``; no weights are loaded). The output size and memory line
comes from ``core.plan_unsample`` on a ``latest_only`` ``Background``, so nothing here computes on the GUI thread.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import torch
from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QGroupBox,
                               QHBoxLayout, QLabel, QMessageBox, QPushButton, QSizePolicy, QSpinBox, QVBoxLayout,
                               QWidget)

from .. import core
from ..core.devices import available_memory, cuda_available, human_bytes
from ..core.latent_io import NonFiniteLatentError
from ..core.sigmas import MAX_STEPS
from . import SAMPLE_LABEL, errors
from .background import Background
from .settings import Settings
from .sigma_plot import ScheduleRequest
from .worker import Worker

LATENT_FILTER = "Latents (*.latent *.safetensors);;All files (*)"
CHECKPOINT_FILTER = "Checkpoints (*.safetensors *.sft *.ckpt *.pt *.pth *.bin *.gguf);;All files (*)"
CHECKPOINT_EXTS = (".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft")
#: ComfyUI's ModelSampling* override choices, by sampling kind (see ``Family.with_overrides``).
PREDICTIONS_BY_KIND = {"discrete": ("EPS", "V_PREDICTION"), "stable_cascade": ("EPS", "V_PREDICTION"),
                       "edm": ("EDM", "V_PREDICTION", "EPS"), "flow": ("CONST",), "flux": ("CONST",)}
SHIFT_KINDS = ("flow", "flux", "stable_cascade")
DEFAULT_FAMILY = "SD15"
MAX_SEED = 2 ** 31 - 1


@dataclass
class LoadedLatent:
    """A latent read on a worker, with what the panel shows about it."""

    tensor: object  # float32 CPU tensor
    name: str
    path: Optional[str]
    sha256: Optional[str]
    stored_dtype: str
    kind: str
    summary: dict
    unsampler: Optional[dict] = None
    is_sample: bool = False

    @property
    def shape(self) -> tuple:
        return tuple(self.tensor.shape)

    def describe(self) -> str:
        s = self.summary
        rng = ("" if s.get("min") is None else
               f"<br>range {s['min']:.4g} … {s['max']:.4g}, mean {s['mean']:.4g}, std {s['std'] or 0:.4g}")
        kind = {"latent": ".latent", "legacy latent": ".latent without marker (×1/0.18215, as LoadLatent)",
                "safetensors": "safetensors tensor"}.get(self.kind, self.kind)
        extra = ""
        if self.unsampler:
            u = self.unsampler
            extra = (f"<br>an Unsampler export: {u.get('family', '?')}, {u.get('sampler', '?')}/"
                     f"{u.get('scheduler', '?')}, {u.get('steps', '?')} steps")
        head = f"<i>{SAMPLE_LABEL}</i><br>" if self.is_sample else ""
        return (f"{head}<b>{_esc(self.name)}</b><br>{list(self.shape)} · stored {self.stored_dtype} · {kind}"
                f"{rng}{extra}")


#: The parameters that opening an Unsampler export puts back into the form.
RESTORED_KEYS = ("family", "sampler", "scheduler", "steps", "start_at_step", "end_at_step", "seed", "noise",
                 "formula", "normalize")


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass(frozen=True)
class NonFiniteLatent:
    """A latent that holds NaN/Inf values: the user is asked before it is used (with them zeroed)."""

    path: str
    count: int
    is_sample: bool = False


def load_latent(path: str, is_sample: bool = False, allow_nonfinite: bool = False):
    """Read and summarise a latent file (runs on a worker). NaN/Inf values give a ``NonFiniteLatent``
    unless allowed; when allowed they are replaced by 0, and the summary says how many."""
    try:
        lf = core.read_latent(path, allow_nonfinite=allow_nonfinite)
    except NonFiniteLatentError:
        bad = core.read_latent(path, allow_nonfinite=True).nonfinite
        return NonFiniteLatent(path, bad, is_sample)
    if lf.nonfinite:
        lf.tensor = torch.nan_to_num(lf.tensor, nan=0.0, posinf=0.0, neginf=0.0)
    summary = lf.summary()
    return LoadedLatent(tensor=lf.tensor, name=os.path.basename(path), path=os.path.abspath(path), sha256=lf.sha256,
                        stored_dtype=lf.stored_dtype, kind=lf.kind, summary=summary, unsampler=lf.unsampler,
                        is_sample=is_sample)


@dataclass
class DetectedModel:
    """A checkpoint (or family name) and what ``core.detect.resolve_model`` made of it."""

    source: str
    detection: object  # core.detect.Detection: .family, .family_obj, .prediction, .shift, .evidence

    @property
    def family(self) -> str:
        return self.detection.family


def detect_model(path_or_name: str) -> DetectedModel:
    """``core.detect.resolve_model`` (runs on a worker)."""
    from ..core.detect import resolve_model

    return DetectedModel(source=path_or_name, detection=resolve_model(path_or_name, shift=None, prediction=None))


def load_dropped(path: str):
    """A dropped file: a latent if it reads as one, else a checkpoint (runs on a worker)."""
    low = path.lower()
    if os.path.isdir(path) or low.endswith(CHECKPOINT_EXTS):
        return detect_model(path)
    try:
        return load_latent(path)
    except core.BadFileError:
        if low.endswith(".latent"):
            raise
        return detect_model(path)  # a .safetensors that is not a latent: maybe a model


@dataclass(frozen=True)
class Estimate:
    describe: str
    out_bytes: int
    n_frames: int
    available: Optional[int]


def estimate(spec: core.UnsampleSpec) -> Estimate:
    plan = core.plan_unsample(spec)
    return Estimate(describe=plan.describe(), out_bytes=plan.out_bytes, n_frames=len(plan.positions),
                    available=available_memory())


class ParamPanel(QWidget):
    """The form on the left. Emits ``changed`` for every parameter change and ``runRequested`` for Run."""

    changed = Signal()
    runRequested = Signal()
    cancelRequested = Signal()
    latentChanged = Signal(object)  # LoadedLatent
    modelChanged = Signal()
    status = Signal(str)
    error = Signal(str, str)  # title, message
    idle = Signal()  # no file is being read any more

    def __init__(self, settings: Settings, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.settings = settings
        self._latent: Optional[LoadedLatent] = None
        self._detection = None  # core.detect.Detection of the opened checkpoint
        self._quiet = 0
        self._busy = False
        self._estimate: Optional[Estimate] = None
        self._estimate_error = ""
        self._estimate_pending = False
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
        self._estimator.done.connect(lambda _tag, est: self._on_estimate(est))
        self._estimator.failed.connect(lambda _tag, exc: self._on_estimate_failed(errors.user_message(exc)))
        self._build()
        self.changed.connect(self._refresh_estimate)

    # -- layout -----------------------------------------------------------------------------------
    def _build(self) -> None:
        # model
        self.family = QComboBox()
        for fam in core.all_families():
            self.family.addItem(fam.display_name, fam.name)
            self.family.setItemData(self.family.count() - 1,
                                    f"{fam.name}: {fam.comfy_class}, {fam.sampling.kind} sampling, "
                                    f"{fam.sampling.prediction}, {fam.latent.channels} channels, "
                                    f"{fam.latent.ndim}-D, scale_factor {fam.latent.scale_factor:g}",
                                    Qt.ItemDataRole.ToolTipRole)
        self.family.setToolTip("Built-in model family (no weights needed)")
        self.open_checkpoint_button = QPushButton("Open checkpoint…")
        self.open_checkpoint_button.setToolTip("Detect the family from a checkpoint's header (no weights are loaded)")
        self.open_checkpoint_button.clicked.connect(self.browse_checkpoint)
        self.model_info = _info_label()
        model_box = QGroupBox("Model")
        ml = QVBoxLayout(model_box)
        row = QHBoxLayout()
        row.addWidget(self.family, 1)
        row.addWidget(self.open_checkpoint_button)
        ml.addLayout(row)
        ml.addWidget(self.model_info)

        # latent
        self.open_latent_button = QPushButton("Open latent…")
        self.open_latent_button.setToolTip("A ComfyUI .latent or a .safetensors holding one latent (or drop a file)")
        self.open_latent_button.clicked.connect(self.browse_latent)
        self.latent_info = _info_label()
        self.latent_info.setText("no latent")
        latent_box = QGroupBox("Latent")
        ll = QVBoxLayout(latent_box)
        ll.addWidget(self.open_latent_button)
        ll.addWidget(self.latent_info)

        # sampling
        self.sampler = QComboBox()
        self.sampler.addItems(core.sampler_names())
        self.sampler.setToolTip("dpm_2, dpm_2_ancestral, uni_pc and uni_pc_bh2 compute steps+1 sigmas "
                                "and drop the penultimate one; the rest share a schedule")
        self.scheduler = QComboBox()
        self.scheduler.addItems(core.scheduler_names())
        self.steps = _spin(1, MAX_STEPS, 10000, "KSampler steps (the node's default is 10000)")
        self.start = _spin(0, MAX_STEPS, 0, "start_at_step: the node uses schedule[min(start, e):e]")
        self.end = _spin(0, MAX_STEPS, 10000, "end_at_step: e = min(steps, end)")
        self.normalize = QCheckBox("Normalize")
        self.normalize.setToolTip("Subtract the mean of the first output latent from every latent (the node's option)")
        self.seed = _spin(0, MAX_SEED, 0, "Same seed and settings give bit-identical output")
        self.noise = QComboBox()
        self.noise.addItems(list(core.NOISE_MODES))
        self.noise.setToolTip("independent: fresh noise per step (the node); shared: one noise for all steps; "
                              "trajectory: one forward-diffusion path with exact marginals")
        self.formula = QComboBox()
        self.formula.addItems(list(core.FORMULAS))
        self.formula.setToolTip("model: ComfyUI's own noising (AddNoise), right for flow models too; "
                                "legacy: the node's x + sigma/scale_factor·eps")
        self.device = QComboBox()
        for label, value in (("Auto", "auto"), ("CPU", "cpu"), ("CUDA", "cuda")):
            self.device.addItem(label, value)
        if not cuda_available():
            item = self.device.model().item(2)
            item.setEnabled(False)
            item.setToolTip("no CUDA device in this torch")
        form_box = QGroupBox("Unsampling")
        form = QFormLayout(form_box)
        form.addRow("Sampler", self.sampler)
        form.addRow("Scheduler", self.scheduler)
        form.addRow("Steps", self.steps)
        form.addRow("Start at step", self.start)
        form.addRow("End at step", self.end)
        form.addRow("", self.normalize)
        form.addRow("Seed", self.seed)
        form.addRow("Noise", self.noise)
        form.addRow("Formula", self.formula)
        form.addRow("Device", self.device)

        # advanced overrides
        self.advanced = QGroupBox("Advanced overrides")
        self.advanced.setCheckable(True)
        self.advanced.setChecked(False)
        self.advanced.setToolTip("ComfyUI's ModelSampling* nodes: override the family's shift and prediction type")
        self.shift = QDoubleSpinBox()
        self.shift.setRange(0.01, 100.0)
        self.shift.setDecimals(3)
        self.shift.setSingleStep(0.1)
        self.prediction = QComboBox()
        adv = QFormLayout(self.advanced)
        adv.addRow("Shift", self.shift)
        adv.addRow("Prediction", self.prediction)
        self.override_info = _info_label()
        adv.addRow(self.override_info)

        self.estimate_label = _info_label()
        self.run_button = QPushButton("Run")
        self.run_button.setDefault(True)
        self.run_button.setToolTip("Make the progressively noised batch (Ctrl+R)")
        self.run_button.clicked.connect(self._run_clicked)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        for w in (model_box, latent_box, form_box, self.advanced, self.estimate_label, self.run_button):
            lay.addWidget(w)
        lay.addStretch(1)

        for combo in (self.family, self.sampler, self.scheduler, self.noise, self.formula, self.device,
                      self.prediction):
            combo.currentIndexChanged.connect(self._emit_changed)
        for spin in (self.steps, self.start, self.end, self.seed):
            spin.valueChanged.connect(self._emit_changed)
        self.shift.valueChanged.connect(self._emit_changed)
        self.normalize.toggled.connect(self._emit_changed)
        self.advanced.toggled.connect(self._emit_changed)
        self.family.currentIndexChanged.connect(self._family_changed)
        self._family_changed()

    # -- values -----------------------------------------------------------------------------------
    def family_name(self) -> str:
        return self.family.currentData()

    def base_family(self) -> core.Family:
        """The chosen family: the checkpoint's detection when it matches the combo, else the built-in one."""
        d = self._detection
        if d is not None and d.family == self.family_name():
            fam = getattr(d.detection, "family_obj", None)
            if isinstance(fam, core.Family):
                return fam
        return core.get_family(self.family_name())

    def effective_family(self) -> core.Family:
        """The family with the advanced overrides applied (raises ``BadParameterError`` if they do not fit)."""
        fam = self.base_family()
        if not self.advanced.isChecked():
            return fam
        shift = self.shift.value() if self.shift.isEnabled() else None
        pred = self.prediction.currentText() or None
        return fam.with_overrides(shift=shift, prediction=pred)

    def latent(self) -> Optional[LoadedLatent]:
        return self._latent

    def detection(self) -> Optional[DetectedModel]:
        return self._detection

    def model_source(self) -> str:
        """The checkpoint path when the chosen family is the detected one, else the family name."""
        d = self._detection
        if d is not None and d.family == self.family_name():
            return d.source
        return self.family_name()

    def params(self) -> dict:
        """Every form value, as plain JSON (for settings and tests)."""
        return {
            "family": self.family_name(), "sampler": self.sampler.currentText(),
            "scheduler": self.scheduler.currentText(), "steps": self.steps.value(),
            "start_at_step": self.start.value(), "end_at_step": self.end.value(),
            "normalize": self.normalize.isChecked(), "seed": self.seed.value(), "noise": self.noise.currentText(),
            "formula": self.formula.currentText(), "device": self.device.currentData(),
            "overrides": self.advanced.isChecked(), "shift": self.shift.value(),
            "prediction": self.prediction.currentText(),
        }

    def set_params(self, p: dict, family: bool = True) -> None:
        """Set form values from a dict like ``params()``; unknown or invalid values are skipped."""
        self._quiet += 1
        try:
            if family and "family" in p:
                self.set_family(p["family"])
            for key, combo in (("sampler", self.sampler), ("scheduler", self.scheduler), ("noise", self.noise),
                               ("formula", self.formula)):
                if key in p and combo.findText(str(p[key])) >= 0:
                    combo.setCurrentIndex(combo.findText(str(p[key])))
            for key, spin in (("steps", self.steps), ("start_at_step", self.start), ("end_at_step", self.end),
                              ("seed", self.seed)):
                if isinstance(p.get(key), (int, float)) and not isinstance(p.get(key), bool):
                    spin.setValue(int(p[key]))
            if isinstance(p.get("normalize"), bool):
                self.normalize.setChecked(p["normalize"])
            if "device" in p:
                i = self.device.findData(p["device"])
                if i >= 0 and self.device.model().item(i).isEnabled():
                    self.device.setCurrentIndex(i)
            if isinstance(p.get("overrides"), bool):
                self.advanced.setChecked(p["overrides"])
            if isinstance(p.get("shift"), (int, float)):
                self.shift.setValue(float(p["shift"]))
            if "prediction" in p and self.prediction.findText(str(p["prediction"])) >= 0:
                self.prediction.setCurrentIndex(self.prediction.findText(str(p["prediction"])))
        finally:
            self._quiet -= 1
        self._emit_changed()

    def set_family(self, name: str) -> bool:
        try:
            fam = core.get_family(name)
        except core.UnsamplerError:
            return False
        i = self.family.findData(fam.name)
        if i >= 0:
            self.family.setCurrentIndex(i)
        return i >= 0

    def schedule_request(self) -> Optional[ScheduleRequest]:
        """What the sigma plot needs (no latent involved); None when the overrides do not fit."""
        try:
            fam = self.effective_family()
        except core.UnsamplerError:
            return None
        return ScheduleRequest(family=fam, sampler=self.sampler.currentText(), scheduler=self.scheduler.currentText(),
                               steps=self.steps.value(), start_at_step=self.start.value(),
                               end_at_step=self.end.value())

    def spec(self, **changes) -> core.UnsampleSpec:
        """The frozen job description. Raises ``UnsamplerError`` with a clear message when something is missing."""
        if self._latent is None:
            raise core.BadParameterError("no latent: open a .latent file first (or drop one on the window)")
        lat = self._latent
        spec = core.UnsampleSpec(
            family=self.effective_family(), latent=lat.tensor, sampler=self.sampler.currentText(),
            scheduler=self.scheduler.currentText(), steps=self.steps.value(), start_at_step=self.start.value(),
            end_at_step=self.end.value(), normalize=self.normalize.isChecked(), seed=self.seed.value(),
            noise=self.noise.currentText(), formula=self.formula.currentText(), device=self.device.currentData(),
            source_name=lat.name, source_sha256=lat.sha256, model_source=self.model_source())
        return spec.replace(**changes) if changes else spec

    def estimate(self) -> Optional[Estimate]:
        """The output size of the current parameters (None while it is computed or when they are invalid)."""
        return None if self._estimate_pending else self._estimate

    def estimate_error(self) -> str:
        """Why the current parameters cannot run ("" when they can, or while that is being checked)."""
        return "" if self._estimate_pending else self._estimate_error

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
        path, _ = QFileDialog.getOpenFileName(self, "Open latent", self.settings.folder("latent"), LATENT_FILTER)
        if path:
            self.open_latent(path)

    @Slot()
    def browse_checkpoint(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open checkpoint", self.settings.folder("checkpoint"),
                                              CHECKPOINT_FILTER)
        if path:
            self.open_checkpoint(path)

    def open_latent(self, path: str, is_sample: bool = False, allow_nonfinite: bool = False) -> None:
        """Read a latent on a worker; the form updates when it arrives."""
        if not is_sample:
            self.settings.set_folder("latent", path)
        self.status.emit(f"reading {os.path.basename(path)}…")
        self._latent_loader.run_in_thread(lambda rep: load_latent(path, is_sample, allow_nonfinite))

    def _ask_nonfinite(self, bad: NonFiniteLatent) -> None:
        """NaN/Inf in a latent: say so and use it (zeroed) only when the user agrees."""
        name = os.path.basename(bad.path)
        text = (f"{name} holds {bad.count} NaN/Inf values. Unsampling it would spread them into every frame.\n\n"
                "Replace them with 0 and open it anyway?")
        self.status.emit(f"{name}: {bad.count} NaN/Inf values")
        if self.confirm_nonfinite(text):
            self.open_latent(bad.path, bad.is_sample, allow_nonfinite=True)
        else:
            self.status.emit(f"{name} was not opened: it holds NaN/Inf values")

    def confirm_nonfinite(self, text: str) -> bool:
        """Asks the user (tests replace this)."""
        answer = QMessageBox.question(self, "Open latent", text,
                                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

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
        """Use this latent; switch to a family that takes it when the current one does not."""
        self._latent = latent
        self.latent_info.setText(latent.describe())
        self.latent_info.setToolTip(latent.path or "")
        fam = self.base_family()
        shape = latent.shape
        fits = core.families_for_channels(shape[1], len(shape))
        u = latent.unsampler or {}
        wanted = u.get("family")
        if wanted and any(f.name == wanted for f in fits):
            # an Unsampler export: its settings come back (family, schedule, seed, noise, formula)
            self.set_params({k: u[k] for k in RESTORED_KEYS if k in u}, family=wanted != fam.name)
            self.status.emit(f"{latent.name} is an Unsampler export of {wanted}: its parameters were restored")
        elif fam.latent.channels != shape[1] or fam.latent.ndim != len(shape):
            if self._detection is not None and self._detection.family == fam.name:
                self.status.emit(f"{latent.name} {list(shape)} does not fit the checkpoint's family {fam.name}")
            elif fits:
                self.set_family(fits[0].name)
                self.status.emit(f"{fam.name} does not take a {list(shape)} latent; switched to {fits[0].name}")
            else:
                self.status.emit(f"no known family takes a {list(shape)} latent")
        self.latentChanged.emit(latent)
        self._emit_changed()

    @Slot(object)
    def _on_loaded(self, value) -> None:
        if isinstance(value, NonFiniteLatent):
            self._ask_nonfinite(value)
        elif isinstance(value, LoadedLatent):
            self.set_latent(value)
            self.status.emit(f"opened {value.name} {list(value.shape)}")
        else:
            self.set_detection(value)

    def set_detection(self, det: DetectedModel) -> None:
        self._detection = det
        name = det.family
        self._quiet += 1
        try:
            self.set_family(name)
        finally:
            self._quiet -= 1
        self._show_model_info()
        self.status.emit(f"model: {name}")
        self.modelChanged.emit()
        self._emit_changed()

    @Slot()
    def _loader_finished(self) -> None:
        if not self.is_loading():
            self.idle.emit()

    def _on_load_error(self, title: str, text: str) -> None:
        self.status.emit(text)
        self.error.emit(title, text)

    # -- reactions --------------------------------------------------------------------------------
    def _emit_changed(self, *_):
        if self._quiet == 0:
            self.changed.emit()

    @Slot()
    def _family_changed(self, *_):
        fam = self.base_family()
        kind = fam.sampling.kind
        self._quiet += 1
        try:
            self.shift.setEnabled(kind in SHIFT_KINDS)
            if not self.advanced.isChecked():
                self.shift.setValue(fam.sampling.shift)
            prev = self.prediction.currentText()
            self.prediction.clear()
            self.prediction.addItems(list(PREDICTIONS_BY_KIND.get(kind, (fam.sampling.prediction,))))
            i = self.prediction.findText(prev if self.advanced.isChecked() else fam.sampling.prediction)
            self.prediction.setCurrentIndex(max(0, i))
        finally:
            self._quiet -= 1
        self.override_info.setText(f"{fam.display_name}: {kind} sampling, shift {fam.sampling.shift:g}, "
                                   f"{fam.sampling.prediction}" + ("" if kind in SHIFT_KINDS else
                                                                   " (this kind has no shift)"))
        self._show_model_info()

    def _show_model_info(self) -> None:
        fam = self.base_family()
        dm = self._detection
        if dm is not None and dm.family == fam.name:
            d = dm.detection
            src = os.path.basename(str(dm.source).rstrip("/\\")) or "checkpoint"
            ev = [str(e) for e in (getattr(d, "evidence", None) or [])]
            evidence = "".join(f"<br>• {_esc(e)}" for e in ev[:4])
            if len(ev) > 4:
                evidence += f"<br>• … {len(ev) - 4} more (hover for all)"
            pred = str(getattr(d, "prediction", "") or fam.sampling.prediction)
            shift = getattr(d, "shift", None)
            shift = f", shift {float(shift):g}" if shift is not None and fam.sampling.kind in SHIFT_KINDS else ""
            self.model_info.setText(f"<b>{_esc(src)}</b> → {_esc(fam.display_name)} ({_esc(pred)}{shift})<br>"
                                    f"detected from the header; why:{evidence or ' (no details)'}")
            self.model_info.setToolTip("\n".join(f"• {e}" for e in ev))
        else:
            self.model_info.setToolTip("")
            self.model_info.setText(f"built-in family {_esc(fam.name)}: {fam.comfy_class}, "
                                    f"{fam.sampling.prediction}, {fam.latent.channels}-channel "
                                    f"{fam.latent.ndim}-D latents")

    @Slot()
    def _run_clicked(self) -> None:
        (self.cancelRequested if self._busy else self.runRequested).emit()

    @Slot()
    def _refresh_estimate(self) -> None:
        try:
            spec = self.spec()
        except core.UnsamplerError as e:
            self._show_estimate_error(str(e))
            return
        self._estimate_pending = True
        self._estimator.submit(lambda task: estimate(spec))

    def _show_estimate_error(self, text: str) -> None:
        self._estimate_pending = False
        self._estimate = None
        self._estimate_error = text
        self.estimate_label.setText(f"<span style='color:#d55e00'>{_esc(text)}</span>")

    @Slot(object)
    def _on_estimate(self, est: Estimate) -> None:
        self._estimate_pending = False
        self._estimate = est
        self._estimate_error = ""
        cap = self.settings.memory_cap
        free = f" · {human_bytes(est.available)} free" if est.available else ""
        warn = ""
        if est.available and est.out_bytes > 0.9 * est.available:
            warn = "<br><span style='color:#d55e00'>too big for memory: export straight to a file instead</span>"
        elif cap and est.out_bytes > cap:
            warn = (f"<br><span style='color:#d55e00'>over the memory cap of {human_bytes(cap)}: export straight "
                    "to a file, or raise the cap</span>")
        self.estimate_label.setText(f"Output: {_esc(est.describe)}{free}{warn}")

    @Slot(str)
    def _on_estimate_failed(self, text: str) -> None:
        self._show_estimate_error(text)

    def shutdown(self) -> None:
        self._latent_loader.shutdown()
        self._model_loader.shutdown()
        for w in list(self._drop_loaders):
            w.shutdown()
        self._estimator.shutdown()


def _spin(lo: int, hi: int, value: int, tip: str) -> QSpinBox:
    s = QSpinBox()
    s.setRange(lo, hi)
    s.setValue(value)
    s.setToolTip(tip)
    s.setKeyboardTracking(False)
    s.setAccelerated(True)
    return s


def _info_label() -> QLabel:
    lab = QLabel()
    lab.setWordWrap(True)
    lab.setTextFormat(Qt.TextFormat.RichText)
    lab.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    lab.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
    return lab


__all__ = ["ParamPanel", "LoadedLatent", "DetectedModel", "load_latent", "detect_model", "Estimate", "estimate"]
