"""The picture behind the latent: a PNG, JPEG or WebP opened as the source is encoded into the session's latent,
and a ComfyUI picture or workflow ``.json`` fills the form with its sampler settings.

``PictureSource`` sits in the form's Latent box. ``open(path, kind)`` (``kind`` from ``core.inputs.picture_input``)
reads the file off the GUI thread; then:

- the ComfyUI settings it carries (``core.vae.comfyui_settings``, ``workflow.run_values``) are set on the form as
  any form change is (so Edit > Undo takes them back), and the model it names is opened when the ComfyUI folder
  holds it (``comfy_paths.find_model_file``); what was taken from where is said on the status line and under
  the source;
- a picture is encoded (``core.vae.picture_latent``) once that model is known, with the VAE ComfyUI would
  use, in this order: the checkpoint's own, the VAE file the user picked (remembered in the settings), the
  ComfyUI folder's ``models/vae`` files, its TAESD encoder (approximate); with none, the least-squares
  inverse of the latent preview, labelled approximate, with where a VAE would go. The VAE row offers every
  one of them and "VAE file…"; choosing another re-encodes.

Changing the family or the checkpoint re-encodes the picture (another VAE may fit), so the latent always fits
the chosen family. Everything runs on one ``latest_only`` ``Background``: the newest request wins, Cancel
stops an encoding between network stages and keeps the latent that was there.
"""
from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from typing import Optional

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (QComboBox, QFileDialog, QHBoxLayout, QLabel, QToolButton, QVBoxLayout,
                               QWidget)

from ..core.errors import BadFileError, printable
from ..core.inputs import picture_loaded
from ..core.vae.weights import WEIGHT_EXTENSIONS
from . import errors
from .background import Background
from .param_panel import info_label
from .wheel_guard import guard_wheel

VAE_FILTER = f"VAE files ({' '.join('*' + e for e in WEIGHT_EXTENSIONS)});;All files (*)"
APPROXIMATE = ("approximate",)
APPROXIMATE_LABEL = "approximate: latent preview inverse (no VAE)"


def choice_key(choice) -> tuple:
    """How a VAE choice is known again when the list is made anew (its kind and files)."""
    return (choice.kind, choice.path or choice.encoder)


def _encoder_file(choice) -> str:
    return choice.encoder if choice.kind == "taesd" else choice.path


@dataclass
class _Read:
    """A picture or workflow read off the GUI thread."""

    path: str
    kind: str
    picture: object = None  # core.vae.Picture
    settings: object = None  # core.vae.ComfySettings
    settings_error: str = ""
    model_path: Optional[str] = None


@dataclass
class _Encoded:
    key: tuple  # (family, checkpoint) the latent was made for
    options: list  # [(key, label)] in the order offered; the approximate one last
    picked: tuple
    result: object  # core.vae.PictureLatent
    latent: object  # core.inputs.LoadedLatent
    notes: list = field(default_factory=list)


def read_source(path: str, kind: str, comfy_root: str) -> _Read:
    """The picture (as LoadImage reads it) and the ComfyUI settings it carries; the model file they name."""
    from ..core import comfy_paths
    from ..core.vae import comfyui_settings, read_picture, settings_from_chunks

    out = _Read(path, kind)
    if kind == "picture":
        out.picture = read_picture(path)
        try:
            out.settings = settings_from_chunks(out.picture.text)
        except BadFileError as e:  # the picture is still good: its graph is not
            out.settings_error = str(e)
    else:
        out.settings = comfyui_settings(path)
    s = out.settings
    if s is not None and comfy_root and "model" in s.values and s.model_kind:
        found = comfy_paths.find_model_file(comfy_root, s.model_kind, s.values["model"])
        out.model_path = str(found) if found is not None else None
    return out


def encode_source(picture, family, checkpoint: Optional[str], comfy_root: str, remembered: str, wanted,
                  device: str, task) -> _Encoded:
    """Encode ``picture`` for ``family`` with the wanted VAE (None: the first in ComfyUI's order)."""
    from ..core.vae import picture_latent, vae_choices
    from ..core.vae.find import user_vae

    picked_now = bool(remembered) and wanted == choice_key(user_vae(remembered))  # tried, and told if it fails
    choices, notes = vae_choices(family, checkpoint=checkpoint, comfy_root=comfy_root or None,
                                 user_file=remembered or None, insist=picked_now)
    choices = [c for c in choices if c.can_encode]
    options = [(choice_key(c), c) for c in choices] + [(APPROXIMATE, None)]
    picked_key, picked = next((o for o in options if o[0] == wanted), options[0])

    def progress(done, total):
        task.post((int(done), int(total)))

    if picked is None:  # no VAE given or searched: the approximate latent
        res = picture_latent(picture, family, allow_approximate=True, device=device)
    else:
        res = picture_latent(picture, family, vae_file=_encoder_file(picked), device=device,
                             cancel=task.is_cancelled, progress=progress)
    labels = [(k, c.label if c is not None else APPROXIMATE_LABEL) for k, c in options]
    own = [] if res.method == "approximate" else list(res.notes)  # the approximate one's advice is shown apart
    return _Encoded((family.name, checkpoint), labels, picked_key, res, picture_loaded(res, family), notes + own)


def _esc(text) -> str:
    return html.escape(printable(text))


def source_line(res) -> str:
    """``photo.png (encoded with <vae>, 512x512 → 64x64)``: what the latent was made from."""
    pic = res.picture
    h, w = res.latent.shape[-2:]
    x, y, cw, ch = res.crop
    crop = "" if (cw, ch) == (pic.width, pic.height) else f", cropped to {cw}x{ch}"
    how = ("APPROXIMATE: the latent preview's least-squares inverse, not a VAE encoding"
           if res.method == "approximate" else f"encoded with {res.encoder}")
    return f"{os.path.basename(pic.path)} ({how}, {pic.width}x{pic.height}{crop} → {w}x{h})"


def settings_lines(name: str, settings, values: dict, sources: dict, notes: list) -> tuple:
    """(the status line, the lines under the source) of the settings taken from a ComfyUI graph."""
    taken = ", ".join(f"{k.replace('_at_step', '')} {v}" for k, v in values.items())
    where = sorted(set(sources.values()))
    status = (f"{name}: took {taken} from its ComfyUI {settings.graph} ({', '.join(where)})" if values else
              f"{name}: no sampler settings could be taken from its ComfyUI {settings.graph}")
    lines = [f"from the {settings.graph} of {name}:"] + [f"{k} {v} ({sources.get(k, '?')})" for k, v in values.items()]
    return status, lines + list(settings.notes) + list(notes)


class PictureSource(QWidget):
    """The source line, the VAE row and the settings note under the latent (see the module docstring)."""

    status = Signal(str)
    error = Signal(str, str)  # title, message
    busyChanged = Signal(bool)
    progressed = Signal(int, int, str, str)  # done, total, text, ETA
    idle = Signal()  # nothing is read or encoded any more
    vaeFilePicked = Signal(str)  # a VAE file the user chose: the previews offer it too

    def __init__(self, panel, settings, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.panel, self.session, self.settings = panel, panel.session, settings
        self._picture = None  # core.vae.Picture of the session's latent, when it was made from one here
        self._candidate = None  # a picture just read, until its latent is made
        self._loaded = None  # the LoadedLatent this gave the session
        self._made_for: Optional[tuple] = None  # (family, checkpoint) of that latent
        self._encoding_for: Optional[tuple] = None
        self._wanted = None  # the VAE choice the user asked for (None: ComfyUI's order)
        self._waiting_for_model = False  # the picture's model is being opened: encode once it is known
        self._name = ""
        self._result = None  # the PictureLatent behind ``_loaded``
        self._shown_pick = None  # the VAE choice the row shows (that of the latent there)
        self._notes: list = []  # what the last picture or workflow's ComfyUI graph gave the form
        self._extra: list = []  # the notes of the VAE search
        self._applying = False  # the form is being set from a graph: not a change to follow
        self._bg = Background(self, name="picture", latest_only=True)
        self._bg.done.connect(self._done)
        self._bg.failed.connect(self._failed)
        self._bg.cancelled.connect(self._cancelled)
        self._bg.posted.connect(self._posted)
        self._bg.finished.connect(self._finished)
        self._build()
        panel.changed.connect(self._follow)
        panel.latentChanged.connect(self._latent_changed)
        panel.idle.connect(self._files_idle)

    def _build(self) -> None:
        self.source_label = info_label()
        self.vae_combo = QComboBox()
        self.vae_combo.setToolTip("The VAE the picture is encoded with (ComfyUI's order: the checkpoint's own, your "
                                  "VAE file, models/vae, TAESD); choose another to encode again")
        self.vae_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.vae_combo.setMinimumContentsLength(12)
        guard_wheel(self.vae_combo)
        self.vae_combo.activated.connect(self._combo_chosen)
        self.vae_button = QToolButton()
        self.vae_button.setText("VAE file…")
        self.vae_button.setToolTip("Encode with a VAE file of your own (a models/vae file, a checkpoint or a TAESD "
                                   "encoder); it is remembered")
        self.vae_button.clicked.connect(self.browse_vae)
        self.vae_row = QWidget()
        row = QHBoxLayout(self.vae_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("VAE"))
        row.addWidget(self.vae_combo, 1)
        row.addWidget(self.vae_button)
        self.note_label = info_label()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        for w in (self.source_label, self.vae_row, self.note_label):
            lay.addWidget(w)
        self._show()

    # -- state ---------------------------------------------------------------------------------------------------
    def is_busy(self) -> bool:
        """True while a picture is read or encoded, or waits for its model."""
        return self._bg.pending() or self._waiting_for_model

    def picture_latent(self):
        """The ``PictureLatent`` of the session's latent, when it was made from a picture here (else None)."""
        return self._result if self._loaded is not None and self.session.latent is self._loaded else None

    def _key(self) -> tuple:
        m = self.session.model_in_use()
        ckpt = m.source if m is not None and os.path.exists(str(m.source)) else None
        return (self.session.params.family, ckpt)

    # -- opening -------------------------------------------------------------------------------------------------
    @Slot(str, str)
    def open(self, path: str, kind: str) -> None:
        """Read a picture or workflow off the GUI thread; the form, the model and the latent follow."""
        self._name = os.path.basename(path)
        self._waiting_for_model = False
        self.status.emit(f"reading {self._name}…")
        root = self.settings.comfy_root
        self._bg.submit(lambda task: read_source(path, kind, root), tag=("read", path))
        self.busyChanged.emit(True)

    def _took(self, read: _Read) -> list:
        """Set the settings a ComfyUI graph carries on the form; open its model. Returns the note lines."""
        from ..core.vae.workflow import run_values

        s, name = read.settings, os.path.basename(read.path)
        if read.settings_error:
            return [f"its ComfyUI graph was not read: {read.settings_error}"]
        if s is None:
            return []
        values, sources, notes = run_values(s)
        if values:
            self._applying = True
            try:
                self.panel.set_params(values, family=False)
            finally:
                self._applying = False
        status, lines = settings_lines(name, s, values, sources, notes)
        model = s.values.get("model")
        if read.model_path:
            lines.append(f"model {model} ({s.sources.get('model')}): {read.model_path}")
            self.panel.open_checkpoint(read.model_path)
            self._waiting_for_model = read.kind == "picture"
            status += f"; opening its model {os.path.basename(read.model_path)}"
        elif model:
            root = self.settings.comfy_root
            lines.append(f"model {model} ({s.sources.get('model')}): " + (
                f"not found in {root}" if root else "set Settings > ComfyUI folder to find it"))
        self.status.emit(status)
        return lines

    def _encode(self) -> None:
        picture = self._candidate or self._picture
        if picture is None:
            return
        key = self._key()
        fam = self.session.base_family()
        root, remembered, wanted = self.settings.comfy_root, self.settings.vae_file, self._wanted
        device = self.session.params.device
        self._encoding_for = key
        self.status.emit(f"encoding {self._name} for {fam.display_name}…")
        self._bg.submit(lambda task: encode_source(picture, fam, key[1], root, remembered, wanted, device, task),
                        tag=("encode", key))
        self.busyChanged.emit(True)
        self.progressed.emit(0, 0, "encoding…", "")

    # -- the user's VAE ----------------------------------------------------------------------------------------
    @Slot(int)
    def _combo_chosen(self, index: int) -> None:
        key = self.vae_combo.itemData(index)
        if key is not None and tuple(key) != self._shown_pick:
            self.choose(tuple(key))

    def choose(self, key: tuple) -> None:
        """Encode again with the VAE choice ``key`` (``choice_key``, or ``APPROXIMATE``)."""
        self._wanted = key
        self._encode()

    @Slot()
    def browse_vae(self) -> None:
        start = self.settings.vae_file or self.settings.folder("checkpoint")
        path, _ = QFileDialog.getOpenFileName(self, "VAE file", start, VAE_FILTER)
        if path:
            self.use_vae_file(path)

    def use_vae_file(self, path: str) -> None:
        """Encode with this VAE file, and remember it."""
        self.settings.vae_file = path
        self.vaeFilePicked.emit(path)
        self.choose(("file", path))

    def cancel(self) -> None:
        """Stop reading or encoding; the latent that was there stays."""
        waiting, self._waiting_for_model = self._waiting_for_model, False
        if self._bg.pending():
            self._bg.cancel()
            self.status.emit("cancelling…")
        elif waiting:
            self._candidate = None
            self.status.emit(f"{self._name} was not encoded: cancelled")
            self._end()

    # -- answers ---------------------------------------------------------------------------------------------------
    @Slot(object, object)
    def _done(self, tag, value) -> None:
        if tag[0] == "read":
            if value.kind == "picture":  # a workflow fills the form only: the source stays
                self._candidate, self._wanted = value.picture, None
            self._notes = self._took(value)
            if value.kind == "picture" and not self._waiting_for_model:
                self._encode()
            self._show()
            return
        self._take(value)

    def _take(self, enc: _Encoded) -> None:
        self._result, self._made_for, self._encoding_for = enc.result, enc.key, None
        self._picture, self._candidate, self._loaded = enc.result.picture, None, enc.latent
        self._fill_combo(enc)
        self.panel.set_latent(enc.latent)
        self._extra = enc.notes
        self._show()
        res = enc.result
        line = source_line(res)
        if res.method == "approximate":
            from ..core.vae import where_a_vae_goes
            line += f"; {where_a_vae_goes(self.session.base_family(), self.settings.comfy_root or None)}"
        self.status.emit(line)

    def _fill_combo(self, enc: _Encoded) -> None:
        c = self.vae_combo
        c.blockSignals(True)
        c.clear()
        for key, label in enc.options:
            c.addItem(label, key)
            c.setItemData(c.count() - 1, label, Qt.ItemDataRole.ToolTipRole)
        keys = [k for k, _ in enc.options]
        c.setCurrentIndex(keys.index(enc.picked) if enc.picked in keys else 0)
        c.blockSignals(False)
        self._shown_pick = enc.picked

    @Slot(object, object)
    def _failed(self, tag, exc) -> None:
        self._encoding_for = self._candidate = None
        text = errors.user_message(exc)
        if tag[0] == "read":
            self._waiting_for_model = False
        self.status.emit(text)
        self.error.emit("Open picture" if tag[0] == "read" else "Encode picture", text)
        if self._shown_pick is not None:  # the row shows the VAE of the latent there
            self._wanted = self._shown_pick

    @Slot(object)
    def _cancelled(self, tag) -> None:
        self._encoding_for = self._candidate = None
        self.status.emit(f"{self._name}: {'encoding' if tag[0] == 'encode' else 'reading'} cancelled; the latent is "
                         "unchanged")

    @Slot(object, object)
    def _posted(self, _tag, payload) -> None:
        done, total = payload
        self.progressed.emit(done, total, f"encoding {done}/{total}", "")

    @Slot(object)
    def _finished(self, _tag) -> None:
        if not self._bg.pending():
            self._end()

    def _end(self) -> None:
        if not self.is_busy():
            self.busyChanged.emit(False)
            self.idle.emit()

    # -- following the form ------------------------------------------------------------------------------------
    @Slot()
    def _files_idle(self) -> None:
        """The model a ComfyUI picture named has been opened (or failed to): encode the picture now."""
        if self._waiting_for_model:
            self._waiting_for_model = False
            self._encode()

    @Slot()
    def _follow(self) -> None:
        """Another family or checkpoint: the picture is encoded again for it (another VAE may fit)."""
        if self._applying or self._waiting_for_model or self.picture_latent() is None:
            return
        key = self._key()
        if key != self._made_for and key != self._encoding_for:
            self._encode()

    @Slot(object)
    def _latent_changed(self, latent) -> None:
        if latent is self._loaded:
            return
        self._bg.drop()  # another latent was opened: it wins over a picture still being encoded
        self._picture = self._candidate = self._loaded = self._result = self._made_for = self._encoding_for = None
        self._waiting_for_model, self._notes, self._extra, self._shown_pick = False, [], [], None
        self._show()
        self._end()

    def _show(self) -> None:
        res = self.picture_latent()
        if res is not None:
            color = " style='color:#d55e00'" if res.method != "vae" else ""
            text = f"<span{color}>{_esc(source_line(res))}</span>"
            if res.method == "approximate":
                from ..core.vae import where_a_vae_goes
                text += f"<br><i>{_esc(where_a_vae_goes(self.session.base_family(), self.settings.comfy_root or None))}</i>"
            self.source_label.setText(text)
        else:
            self.source_label.setText("")
        lines = list(self._notes) + list(self._extra if res is not None else [])
        self.note_label.setText("<br>".join(_esc(n) for n in lines))
        self.source_label.setVisible(res is not None)
        self.vae_row.setVisible(res is not None)
        self.note_label.setVisible(bool(lines))
        self.setVisible(res is not None or bool(lines))

    def shutdown(self) -> None:
        self._bg.shutdown()




__all__ = ["PictureSource", "read_source", "encode_source", "source_line", "settings_lines", "choice_key",
           "APPROXIMATE"]
