"""Model > Define family…: a form that writes a family file into ``<config>/families`` and reloads the registry.

The form starts from an existing family (its sampling, latent format, preview factors and TAESD name) and
lets the user change the sampling kind and its parameters, the channels and the scale/shift factor. What it
builds is a family definition (``core.family_format``), checked as any file is. Writing the file and
reloading the registry run on a ``Worker`` thread; the new registry is installed on the GUI thread and the
family lists are refilled (``fill_family_combo``), the user's families after the built-in ones.
"""
from __future__ import annotations

from typing import Optional

from PySide6.QtCore import QSignalBlocker, Qt, Signal, Slot
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QDoubleSpinBox, QFormLayout,
                               QFrame, QGroupBox, QLabel, QLineEdit, QScrollArea, QSpinBox, QVBoxLayout, QWidget)

from .. import core
from ..core.families import PREDICTIONS, SAMPLING_KINDS, Family, use_registry
from ..core.family_format import KIND_PARAMS, FamilyDefinitionError, definition_of, family_from_definition
from .wheel_guard import guard_wheel_all

KIND_LABELS = {"discrete": "discrete (DDPM table: SD1.x, SDXL, CogVideoX)", "edm": "EDM (Playground, SVD)",
               "stable_cascade": "Stable Cascade", "flow": "flow (SD3, Wan, most DiTs)", "flux": "flux (Flux, LTX)",
               "flow_av": "flow, audio+video (MiniMax H3)"}
#: The form's number fields: (parameter, label, minimum, maximum, decimals).
NUMBER_FIELDS = (
    ("shift", "Shift", 0.001, 1000.0, 6), ("multiplier", "Multiplier", 0.001, 100000.0, 6),
    ("noise_scale", "Noise scale", 0.001, 1000.0, 6), ("audio_shift", "Audio shift (0: none)", 0.0, 1000.0, 6),
    ("linear_start", "Linear start (beta)", 1e-8, 0.999, 8), ("linear_end", "Linear end (beta)", 1e-8, 0.999, 8),
    ("sigma_min", "Sigma min", 1e-8, 1e6, 8), ("sigma_max", "Sigma max", 1e-8, 1e6, 6),
    ("sigma_data", "Sigma data", 1e-6, 1000.0, 6),
)
USER_SUFFIX = " (yours)"


def family_tooltip(fam: Family) -> str:
    text = (f"{fam.name}: {fam.comfy_class or 'no ComfyUI class'}, {fam.sampling.kind} sampling, "
            f"{fam.sampling.prediction}, {fam.latent.channels} channels, {fam.latent.ndim}-D, "
            f"scale_factor {fam.latent.scale_factor:g}")
    return text if fam.builtin else f"{text}\nfrom {fam.source}"


def fill_family_combo(combo: QComboBox) -> None:
    """(Re)fill a family combo from the registry in use: the built-in families, a separator, the user's own.

    The current family stays selected when it still exists (no change signal then)."""
    current = combo.currentData()
    with QSignalBlocker(combo):
        combo.clear()
        separated = False
        for fam in core.all_families():
            if not fam.builtin and not separated:
                combo.insertSeparator(combo.count())
                separated = True
            combo.addItem(fam.display_name + ("" if fam.builtin else USER_SUFFIX), fam.name)
            combo.setItemData(combo.count() - 1, family_tooltip(fam), Qt.ItemDataRole.ToolTipRole)
        i = combo.findData(current) if current is not None else -1
        combo.setCurrentIndex(i if i >= 0 else 0)
    if current is not None and combo.currentData() != current:
        combo.currentIndexChanged.emit(combo.currentIndex())


def save_family(definition: dict) -> tuple:
    """Worker job: check, write ``<config>/families/<name>.json``, reload. Returns (family, path, registry)."""
    from ..core.family_files import load_registry, write_family_file

    fam = family_from_definition(definition)
    taken = core.families.registry().find(fam.name)
    if taken is not None and core.families.name_key(taken.name) == core.families.name_key(fam.name):
        raise core.BadParameterError(f"{fam.name!r} is already a family ({taken.display_name}); choose another name")
    path = write_family_file(fam)
    reg = load_registry()
    if reg.find(fam.name) is None:  # the file did not load back: say why (it is left for the user to see)
        raise core.BadParameterError("; ".join(reg.problems) or f"{path} did not load")
    return reg.get(fam.name), path, reg


class FamilyDialog(QDialog):
    """The form. ``saved(name, path)`` once the file is written and the registry holds the new family."""

    saved = Signal(str, str)

    def __init__(self, base: Optional[Family] = None, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.setWindowTitle("Define a model family")
        self._base: Family = base or core.get_family("SD15")
        self._exact: dict = {}  # the base's own values, kept where the form shows them unchanged
        from .worker import Worker  # (torch under it: this module is on the start path, the dialog is not)
        self.worker = Worker(self, name="define-family")
        self.worker.result.connect(self._on_saved)
        self.worker.error.connect(lambda t: self._set_status(t, error=True))
        self.worker.finished.connect(lambda: self.buttons.button(QDialogButtonBox.StandardButton.Save)
                                     .setEnabled(True))
        self._build()
        self.load_base(self._base)

    # -- layout -----------------------------------------------------------------------------------
    def _build(self) -> None:
        self.based_on = QComboBox()
        for fam in core.all_families():
            self.based_on.addItem(f"{fam.display_name} ({fam.name})", fam.name)
        self.based_on.setToolTip("Start from this family: its sampling, latent format and preview factors")
        self.name = QLineEdit()
        self.name.setToolTip("The family's name: letters, digits, _ . + - (used by --model and in files)")
        self.display_name = QLineEdit()
        self.kind = QComboBox()
        for k in SAMPLING_KINDS:
            self.kind.addItem(KIND_LABELS[k], k)
        self.prediction = QComboBox()
        self.numbers = {}
        for key, label, lo, hi, dec in NUMBER_FIELDS:
            w = QDoubleSpinBox()
            w.setRange(lo, hi)
            w.setDecimals(dec)
            w.setSingleStep(0.05 if hi <= 1000 else 1.0)
            self.numbers[key] = (w, label)
        self.num_timesteps = QSpinBox()
        self.num_timesteps.setRange(2, 100000)
        self.zsnr = QCheckBox("zero terminal SNR")
        self.channels = QSpinBox()
        self.channels.setRange(1, 4096)
        self.dimensions = QComboBox()
        self.dimensions.addItem("image (2-D)", 2)
        self.dimensions.addItem("video (3-D)", 3)
        self.scale_factor = QDoubleSpinBox()
        self.scale_factor.setRange(1e-6, 10000.0)
        self.scale_factor.setDecimals(8)
        self.has_shift_factor = QCheckBox("Shift factor")
        self.shift_factor = QDoubleSpinBox()
        self.shift_factor.setRange(-1000.0, 1000.0)
        self.shift_factor.setDecimals(8)

        top = QFormLayout()
        top.addRow("Based on", self.based_on)
        top.addRow("Name", self.name)
        top.addRow("Display name", self.display_name)
        sampling = QGroupBox("Sampling (ComfyUI's ModelSampling)")
        self.sampling_form = QFormLayout(sampling)
        self.sampling_form.addRow("Kind", self.kind)
        self.sampling_form.addRow("Prediction", self.prediction)
        self.sampling_form.addRow("Timesteps", self.num_timesteps)
        for key, (w, label) in self.numbers.items():
            self.sampling_form.addRow(label, w)
        self.sampling_form.addRow("", self.zsnr)
        latent = QGroupBox("Latent format")
        lf = QFormLayout(latent)
        lf.addRow("Channels", self.channels)
        lf.addRow("Dimensions", self.dimensions)
        lf.addRow("Scale factor", self.scale_factor)
        lf.addRow(self.has_shift_factor, self.shift_factor)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)
        body = QWidget()
        bl = QVBoxLayout(body)
        bl.setContentsMargins(0, 0, 0, 0)
        bl.addLayout(top)
        bl.addWidget(sampling)
        bl.addWidget(latent)
        bl.addStretch(1)
        self.scroll = QScrollArea()  # on a small screen the form scrolls; the status and buttons stay in view
        self.scroll.setWidget(body)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroll.setMinimumWidth(body.sizeHint().width() + 24)
        lay = QVBoxLayout(self)
        lay.addWidget(self.scroll, 1)
        lay.addWidget(self.status)
        lay.addWidget(self.buttons)
        guard_wheel_all(body)  # the wheel scrolls the form; a value changes only with focus
        screen = self.screen().availableGeometry() if self.screen() is not None else None
        want = body.sizeHint().height() + 120
        self.resize(self.scroll.minimumWidth() + 24, min(want, int(screen.height() * 0.9)) if screen else want)

        self.based_on.currentIndexChanged.connect(lambda *_: self.load_base(core.get_family(self.based_on.currentData())))
        self.kind.currentIndexChanged.connect(self._kind_changed)
        self.has_shift_factor.toggled.connect(self.shift_factor.setEnabled)
        for w in self._inputs():
            signal = getattr(w, "valueChanged", None) or getattr(w, "textChanged", None) or \
                getattr(w, "toggled", None) or w.currentIndexChanged
            signal.connect(self._validate)

    def _inputs(self):
        return ([self.name, self.display_name, self.prediction, self.num_timesteps, self.zsnr, self.channels,
                 self.dimensions, self.scale_factor, self.has_shift_factor, self.shift_factor]
                + [w for w, _ in self.numbers.values()])

    # -- values -----------------------------------------------------------------------------------
    def load_base(self, fam: Family) -> None:
        """Fill the form from a family (the values ComfyUI gives it)."""
        self._base = fam
        d = definition_of(fam)
        self._exact = {("sampling", k): v for k, v in d["sampling"].items()}
        self._exact.update({("latent", k): v for k, v in d["latent"].items()})
        with QSignalBlocker(self.based_on):
            i = self.based_on.findData(fam.name)
            if i >= 0:
                self.based_on.setCurrentIndex(i)
        self.name.setText(self._free_name(fam.name + "_custom"))
        self.display_name.setText(f"{fam.display_name} (custom)")
        with QSignalBlocker(self.kind):
            self.kind.setCurrentIndex(self.kind.findData(fam.sampling.kind))
        self._kind_changed()
        self.prediction.setCurrentText(fam.sampling.prediction)
        s = d["sampling"]
        for key, (w, _) in self.numbers.items():
            default = KIND_PARAMS.get(fam.sampling.kind, {}).get(key)
            v = s.get(key, default)
            if v is not None:
                w.setValue(float(v))
            elif key == "audio_shift":
                w.setValue(0.0)
        self.num_timesteps.setValue(int(s.get("num_timesteps", 1000)))
        self.zsnr.setChecked(bool(s.get("zsnr", False)))
        self.channels.setValue(fam.latent.channels)
        self.dimensions.setCurrentIndex(self.dimensions.findData(fam.latent.dimensions))
        self.scale_factor.setValue(fam.latent.scale_factor)
        self.has_shift_factor.setChecked(fam.latent.shift_factor is not None)
        self.shift_factor.setEnabled(fam.latent.shift_factor is not None)
        self.shift_factor.setValue(fam.latent.shift_factor or 0.0)
        self._validate()

    def _free_name(self, name: str) -> str:
        n, k = name, 2
        while core.families.registry().find(n) is not None:
            n, k = f"{name}{k}", k + 1
        return n

    def _kind_changed(self, *_) -> None:
        kind = self.kind.currentData()
        with QSignalBlocker(self.prediction):
            prev = self.prediction.currentText()
            self.prediction.clear()
            self.prediction.addItems(list(PREDICTIONS[kind]))
            if prev in PREDICTIONS[kind]:
                self.prediction.setCurrentText(prev)
        params = KIND_PARAMS[kind]
        for key, (w, _) in self.numbers.items():
            self.sampling_form.setRowVisible(w, key in params)
            if key in params and (("sampling", key) not in self._exact or self._base.sampling.kind != kind):
                default = params[key]
                w.setValue(0.0 if default is None else float(default))
        self.sampling_form.setRowVisible(self.num_timesteps, "num_timesteps" in params)
        self.sampling_form.setRowVisible(self.zsnr, "zsnr" in params)
        self._validate()

    def _number(self, group: str, key: str, value: float, decimals: int):
        """The form's value, or the base's exact one where the form shows it unchanged (no decimal rounding)."""
        exact = self._exact.get((group, key))
        if isinstance(exact, (int, float)) and not isinstance(exact, bool) and abs(exact - value) < 0.5 * 10 ** -decimals:
            return exact
        return value

    def definition(self) -> dict:
        """The family definition the form describes (plain JSON values)."""
        kind = self.kind.currentData()
        same_kind = kind == self._base.sampling.kind
        sampling = {"kind": kind, "prediction": self.prediction.currentText()}
        for key in KIND_PARAMS[kind]:
            if key == "num_timesteps":
                sampling[key] = self.num_timesteps.value()
            elif key == "zsnr":
                sampling[key] = self.zsnr.isChecked()
            else:
                w = self.numbers[key][0]
                v = self._number("sampling", key, w.value(), w.decimals()) if same_kind else w.value()
                sampling[key] = None if key == "audio_shift" and v == 0 else v
        base = definition_of(self._base)
        latent = dict(base["latent"])
        channels = self.channels.value()
        if channels != self._base.latent.channels:  # per-channel facts of the base no longer apply
            for k in ("latents_mean", "latents_std", "latent_rgb_factors", "latent_rgb_factors_reshape"):
                latent[k] = None
            latent["format"] = self.name.text().strip() or latent["format"]
        latent.pop("process_formula", None)
        latent["channels"] = channels
        latent["dimensions"] = self.dimensions.currentData()
        latent["scale_factor"] = self._number("latent", "scale_factor", self.scale_factor.value(), 8)
        if self.has_shift_factor.isChecked():
            latent["shift_factor"] = self._number("latent", "shift_factor", self.shift_factor.value(), 8)
            latent["latents_mean"] = latent["latents_std"] = None
        else:
            latent["shift_factor"] = None
        d = {"name": self.name.text().strip(), "display_name": self.display_name.text().strip() or None,
             "note": f"defined in Unsampler, based on {self._base.name}", "sampling": sampling, "latent": latent}
        if same_kind and self._base.sampling.table_sha256 and all(
                sampling.get(k) == base["sampling"].get(k) for k in sampling):
            d["reference"] = {"sigmas_sha256_f32le": self._base.sampling.table_sha256}
        return {k: v for k, v in d.items() if v is not None}

    @Slot()
    def _validate(self, *_) -> bool:
        try:
            fam = family_from_definition(self.definition())
        except FamilyDefinitionError as e:
            self._set_status(str(e), error=True)
            return False
        taken = core.families.registry().find(fam.name)
        if taken is not None and core.families.name_key(taken.name) == core.families.name_key(fam.name):
            self._set_status(f"name: {fam.name!r} is already a family ({taken.display_name})", error=True)
            return False
        self._set_status(f"{fam.sampling.kind} sampling, {fam.sampling.prediction}, {fam.latent.channels} channels, "
                         f"{fam.latent.ndim}-D latents, scale_factor {fam.latent.scale_factor:g}")
        return True

    def _set_status(self, text: str, error: bool = False) -> None:
        self.status.setStyleSheet("color: #d55e00;" if error else "")
        self.status.setText(text)

    # -- saving -------------------------------------------------------------------------------------
    def save(self) -> None:
        if not self._validate():
            return
        definition = self.definition()
        self.buttons.button(QDialogButtonBox.StandardButton.Save).setEnabled(False)
        self._set_status("saving…")
        self.worker.run_in_thread(lambda reporter: save_family(definition))

    @Slot(object)
    def _on_saved(self, value) -> None:
        fam, path, reg = value
        use_registry(reg)
        self._set_status(f"saved {path}")
        self.saved.emit(fam.name, str(path))
        self.accept()

    def is_busy(self) -> bool:
        return self.worker.is_running()

    def shutdown(self) -> None:
        self.worker.shutdown()

    def done(self, r: int) -> None:
        self.shutdown()
        super().done(r)

    def closeEvent(self, event) -> None:
        self.shutdown()
        super().closeEvent(event)


def load_startup_families() -> tuple:
    """At startup, before the window is built: the built-in families and ``<config>/families/*.json``.

    Returns the messages of the files that were skipped."""
    from ..core.family_files import reload_families

    return reload_families().problems


def define_family(window) -> FamilyDialog:
    """Model > Define family…: the form, based on the window's current family; on save the lists refill and the
    new family is chosen."""
    panel = window.panel
    try:
        base = panel.base_family()
    except core.UnsamplerError:
        base = None
    dlg = FamilyDialog(base, window)

    def saved(name: str, path: str) -> None:
        panel.refresh_families()
        panel.set_family(name)
        window.show_status(f"family {name} saved to {path}")

    dlg.saved.connect(saved)
    dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dlg.open()
    return dlg
