"""The viewer's decoded previews: the decoders in its display choice, TAESD after latent2rgb, the full VAE on demand.

``ViewerDecode`` attaches to a ``FrameViewer`` (as ``ViewerTools`` does) and to the window's one
``PreviewDecoders`` state. The viewer shows latent2rgb at once; in TAESD mode the frame on screen is then
decoded on a pool thread (newest wins: a frame left before its decode is done is cancelled between the
network's stages and never shown) and swapped in when it arrives. "Decode with VAE" decodes the frame on
screen with the full VAE, on another pool thread, with progress (``vaeProgress``) and ``cancel_vae``;
moving to another frame, or a change of the inputs that makes new frames, supersedes it. Decoded pictures
are kept in a byte-bounded cache per decoder and frame. ``source_label`` says which decoder made what is
shown. Decoded pictures replace the RGB preview only (a single channel is shown as it is).
"""
from __future__ import annotations

from typing import Optional

import torch
from PySide6.QtCore import QObject, QSignalBlocker, Qt, Signal
from PySide6.QtGui import QStandardItem
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QToolButton, QWidget

from ..core import preview
from ..core.devices import cuda_available
from ..core.errors import Cancelled
from ..core.sequence import FrameCache
from ..core.vae import previews as vp
from . import errors
from .background import Background
from .picture_source import VAE_FILTER
from .preview_decoders import PreviewDecoders

#: Bytes of decoded pictures the viewer keeps (a 512x512 picture is 768 KiB; 1024x1024, 3 MiB).
CACHE_BYTES = 96 << 20
WORDS = {vp.LATENT2RGB: "latent2rgb", vp.TAESD: "TAESD", vp.VAE: "full VAE"}
RGB_LABELS = {vp.LATENT2RGB: "RGB (latent2rgb)", vp.TAESD: "RGB (TAESD)", vp.VAE: "RGB (full VAE)"}
#: The display choice's item role holding its decoder mode (RGB items only).
DECODER_ROLE = Qt.ItemDataRole.UserRole + 1


class ViewerDecode(QObject):
    decoded = Signal(str)  # a decoded picture of this mode is on screen (tests, status)
    vaeBusy = Signal(bool)  # a full-VAE decode started / ended
    vaeProgress = Signal(int, int)  # done, total (0, 0 while the VAE is loading)
    status = Signal(str)

    def __init__(self, viewer, decoders: PreviewDecoders) -> None:
        """The decoders join the viewer's display choice (``install_modes``); the label and "Decode with VAE" sit
        over the image's top-left corner. Choosing a file is ``browse`` (the window's View menu)."""
        super().__init__(viewer)
        self.viewer, self.decoders = viewer, decoders
        self.cache = FrameCache(CACHE_BYTES)
        self._taesd = Background(self, threads=1, name="viewer-taesd", latest_only=True)
        self._taesd.done.connect(self._on_decoded)
        self._taesd.failed.connect(lambda tag, exc: self._on_failed(vp.TAESD, exc))
        self._vae = Background(self, threads=1, name="viewer-vae", latest_only=True)
        self._vae.done.connect(self._on_decoded)
        self._vae.failed.connect(lambda tag, exc: self._on_failed(vp.VAE, exc))
        self._vae.cancelled.connect(lambda tag: self.status.emit("decoding with the full VAE was cancelled"))
        self._vae.posted.connect(lambda tag, p: self.vaeProgress.emit(*p))
        self._vae.finished.connect(lambda tag: self._vae_over())
        self._vae_key: Optional[tuple] = None
        self._taesd_tag: Optional[tuple] = None  # the newest TAESD decode asked for
        self.shown_mode = vp.LATENT2RGB
        self.shown_picture = None  # the decoded uint8 [H, W, 3] on screen, or None

        self.combo = viewer.mode_combo  # the decoders are RGB modes of the viewer's own display choice
        self.vae_button = QToolButton()
        self.vae_button.setText("Decode with VAE")
        self.source_label = QLabel()
        self.source_label.setTextFormat(Qt.TextFormat.PlainText)
        # over the image's top-left corner: the label and the button take no room from the viewer's toolbars
        self.overlay = QWidget(viewer.image_view)
        self.overlay.setObjectName("decodeOverlay")
        self.overlay.setStyleSheet("QLabel { background: rgba(0, 0, 0, 150); color: white; padding: 1px 4px; "
                                   "border-radius: 3px; }")
        row = QHBoxLayout(self.overlay)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(4)
        row.addWidget(self.source_label)
        row.addWidget(self.vae_button)
        self.overlay.move(4, 4)
        self.combo.currentIndexChanged.connect(self._combo_chosen)
        self.vae_button.clicked.connect(self.decode_with_vae)
        decoders.optionsChanged.connect(self._fill)
        decoders.modeChanged.connect(self._mode_changed)
        viewer.rendered.connect(self._on_rendered)
        viewer.store.reset.connect(self._on_reset)
        viewer.displayChanged.connect(lambda *_: self._apply())
        viewer.play_button.toggled.connect(lambda on: None if on else self._apply())
        self._label()

    # -- the display choice ------------------------------------------------------------------------
    def install_modes(self) -> None:
        """Add "RGB (TAESD)" and "RGB (full VAE)" after the viewer's "RGB (latent2rgb)" (the viewer calls it
        whenever it fills its display choice); the decoder mode's item becomes current if RGB was."""
        combo, model = self.combo, self.combo.model()
        with QSignalBlocker(combo):
            if combo.count() == 0 or combo.itemData(0) != preview.RGB:
                return
            model.item(0).setData(vp.LATENT2RGB, DECODER_ROLE)
            for i, mode in enumerate((vp.TAESD, vp.VAE), start=1):
                combo.insertItem(i, RGB_LABELS[mode], preview.RGB)
                model.item(i).setData(mode, DECODER_ROLE)
            if combo.currentIndex() == 0:
                combo.setCurrentIndex(vp.MODES.index(self.decoders.mode))
        self._fill()

    def item(self, mode: str) -> Optional[QStandardItem]:
        """The display choice's item of a decoder mode."""
        it = self.combo.model().item(vp.MODES.index(mode))
        return it if it is not None and it.data(DECODER_ROLE) == mode else None

    def _fill(self) -> None:
        d = self.decoders
        if self.item(vp.VAE) is None:
            return
        for mode in vp.MODES:
            opt = d.option(mode)
            it = self.item(mode)
            it.setEnabled(opt.available)
            tip = (opt.label if opt.choice is not None else "ComfyUI's latent2rgb preview") if opt.available else (
                f"{vp.MODE_LABELS[mode]} is not available: {opt.reason}")
            it.setToolTip(tip)
        self._select(d.mode)
        vae = d.option(vp.VAE)
        self.vae_button.setEnabled(vae.available)
        self.vae_button.setToolTip(f"Decode the frame shown with {vae.label} (off the window's thread; Cancel in "
                                   "the status bar)" if vae.available else f"No full VAE: {vae.reason}")
        self._apply()

    def _select(self, mode: str) -> None:
        """Show the decoder mode in the display choice, when an RGB mode is shown."""
        if self.combo.currentData() == preview.RGB and self.combo.currentIndex() != vp.MODES.index(mode):
            with QSignalBlocker(self.combo):  # still RGB: the viewer has nothing to make again
                self.combo.setCurrentIndex(vp.MODES.index(mode))

    def _combo_chosen(self, index: int) -> None:
        it = self.combo.model().item(index)
        mode = it.data(DECODER_ROLE) if it is not None else None
        if mode is None:
            return  # a single channel: the decoder mode stays for when RGB comes back
        if not self.decoders.set_mode(mode):
            self._select(self.decoders.mode)

    def _mode_changed(self, mode: str) -> None:
        self._select(mode)
        self._apply()

    def pick_file(self, path: str) -> None:
        """Use ``path`` (a VAE, a checkpoint or a TAESD decoder) for the previews."""
        self.decoders.set_context(user_file=path or None)

    def browse(self) -> None:
        """Ask for a VAE, checkpoint or TAESD decoder file for the previews."""
        path, _ = QFileDialog.getOpenFileName(self.viewer, "VAE or TAESD decoder for previews", "", VAE_FILTER)
        if path:
            self.pick_file(path)

    # -- what is shown ------------------------------------------------------------------------------
    def frame_key(self) -> Optional[tuple]:
        """(generation, step, item, time index) of the RGB preview on screen, None when none is."""
        key = self.viewer.shown
        if key is None or key != self.viewer.wanted or key.mode != preview.RGB:
            return None
        return key.generation, key.step, key.item, key.time_index

    def _label(self, text: str = "") -> None:
        self.source_label.setText(text or f"shown: {WORDS[self.shown_mode]}")
        self.overlay.adjustSize()

    def _on_rendered(self, _step: int) -> None:  # the viewer put latent2rgb on screen
        self.shown_mode, self.shown_picture = vp.LATENT2RGB, None
        self._apply()

    def _on_reset(self) -> None:
        self._taesd.drop()
        self._stop_vae()
        self.decoders.set_context(family=self.viewer.store.family)

    def _apply(self) -> None:
        """Show the decoded picture of the frame on screen for the current mode (cached, or decoded now)."""
        key = self.frame_key()
        if self._vae_key is not None and self._vae_key != key:
            self._stop_vae()
        if key is None:
            self._taesd.drop()
            self._label()
            return
        mode = self.decoders.mode
        if mode == vp.LATENT2RGB:
            self._taesd.drop()
            if self.shown_mode != vp.LATENT2RGB:
                self.viewer.rerender()
            self._label()
            return
        choice = self.decoders.option(mode).choice
        if choice is None:
            return
        cached = self.cache.get((choice,) + key)
        if cached is not None:
            self._taesd.drop()
            self._show(mode, cached.numpy())
            return
        if self.shown_mode != vp.LATENT2RGB:
            self.viewer.rerender()  # another decoder's picture: back to latent2rgb until this one is in
            return
        if mode == vp.TAESD:
            if self.viewer.play_button.isChecked() and not cuda_available():  # ~1 s a CPU frame: decode when paused
                self._taesd.drop()
                self._label("shown: latent2rgb (TAESD when paused)")
                return
            self._label("shown: latent2rgb (TAESD decoding…)")
            if self._taesd_tag != (choice,) + key or not self._taesd.pending():  # not already on its way
                self._taesd_tag = (choice,) + key
                self._submit(self._taesd, vp.TAESD, choice, key)
        elif self._vae_key is None:
            self._taesd.drop()
            self._label("shown: latent2rgb (Decode with VAE to see the full VAE's)")

    def _submit(self, pool: Background, mode: str, choice, key: tuple, progress: bool = False) -> None:
        st = self.viewer.store
        get = st.getter(key[1], key[2])  # called on the pool thread: a sequence's frame is made there
        family, shelf, t = st.family, self.decoders.shelf, key[3]

        def work(task):
            frame = get()
            if task.is_cancelled():
                raise Cancelled("superseded")
            if progress and not shelf.loaded(choice, family):
                task.post((0, 0))
            vae = shelf.get(choice, family)
            report = (lambda d, n: task.post((d, n))) if progress else None
            return mode, vp.decode_frame(vae, frame, t, cancel=task.is_cancelled, progress=report)

        pool.submit(work, (choice,) + key)

    def _on_decoded(self, tag: tuple, answer) -> None:
        mode, img = answer
        self.cache.put(tag, torch.from_numpy(img))
        if tag[1:] == self.frame_key() and self.decoders.mode == mode and tag[0] == self.decoders.option(mode).choice:
            self._show(mode, img)

    def _show(self, mode: str, img) -> None:
        self.viewer.show_picture(img)
        self.shown_mode, self.shown_picture = mode, img
        self._label()
        self.source_label.setToolTip(self.decoders.option(mode).label)
        self.decoded.emit(mode)

    def _on_failed(self, mode: str, exc) -> None:
        text = f"{vp.MODE_LABELS[mode]} preview failed: {errors.user_message(exc)}"
        self._label(f"shown: latent2rgb ({vp.MODE_LABELS[mode]} failed)")
        self.source_label.setToolTip(text)
        self.status.emit(text)

    # -- the full VAE ------------------------------------------------------------------------------
    def decode_with_vae(self) -> bool:
        """Decode the frame on screen with the full VAE (the mode becomes "Full VAE"); False when it cannot."""
        opt = self.decoders.option(vp.VAE)
        if not opt.available:
            self.status.emit(f"no full VAE: {opt.reason}")
            return False
        self.decoders.set_mode(vp.VAE)
        key = self.frame_key()
        if key is None:
            self.status.emit("no RGB frame on screen to decode")
            return False
        if (opt.choice,) + key in self.cache or self._vae_key == key:
            return True
        self._vae_key = key
        self._label("shown: latent2rgb (decoding with the full VAE…)")
        self.vaeBusy.emit(True)
        self.vaeProgress.emit(0, 0)
        self._submit(self._vae, vp.VAE, opt.choice, key, progress=True)
        return True

    def vae_busy(self) -> bool:
        return self._vae_key is not None

    def cancel_vae(self) -> None:
        """Stop the full-VAE decode at its next stage (its ``cancelled`` answer still comes)."""
        self._vae.cancel()

    def _stop_vae(self) -> None:  # superseded: its answer is dropped
        if self._vae_key is not None:
            self._vae.drop()
            self._vae_over()

    def _vae_over(self) -> None:
        if self._vae_key is not None:
            self._vae_key = None
            self.vaeBusy.emit(False)
            if self.shown_mode == vp.LATENT2RGB and self.frame_key() is not None:
                self._label()

    # -- threads ------------------------------------------------------------------------------------
    def busy(self) -> bool:
        return self._taesd.pending() or self._vae.pending()

    def wait(self, msecs: int = -1) -> bool:
        return self._taesd.wait(msecs) and self._vae.wait(msecs)

    def shutdown(self) -> None:
        self._taesd.shutdown()
        self._vae.shutdown()
