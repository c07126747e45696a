"""The one state of the decoded previews, shared by the viewer and the thumbnails: which decoders there are
for the frames shown, which one the viewer uses, and whether the thumbnails are decoded with TAESD.

``PreviewDecoders`` finds the decoders (``core.vae.previews.preview_options``: headers only, on a worker
thread, newest wins) for the store's family, the checkpoint in use, the ComfyUI folder and a file the user
picked; ``optionsChanged`` when they are known. The viewer's mode is latent2rgb until a TAESD is found;
then TAESD, unless the user chose a mode. A mode that is not available cannot be chosen. The decoders
themselves are loaded on first use, on a pool thread, once (``shelf``, a ``DecoderShelf``).
"""
from __future__ import annotations

import os
from typing import Optional

from PySide6.QtCore import QObject, QSignalBlocker, Signal
from PySide6.QtGui import QAction

from ..core.vae import previews as vp
from ..core.vae.previews import LATENT2RGB, MODES, TAESD, VAE, DecoderOption, DecoderShelf
from .background import Background


def _unknown(reason: str) -> dict:
    return {LATENT2RGB: DecoderOption(LATENT2RGB), TAESD: DecoderOption(TAESD, None, reason),
            VAE: DecoderOption(VAE, None, reason)}


class PreviewDecoders(QObject):
    optionsChanged = Signal()
    modeChanged = Signal(str)
    thumbnailsChanged = Signal(bool)  # TAESD thumbnails on or off (and available)

    def __init__(self, parent: Optional[QObject] = None, device: str = "auto"):
        super().__init__(parent)
        self.shelf = DecoderShelf(device)
        self._family = None
        self._checkpoint: Optional[str] = None
        self._comfy_root = ""
        self._user_file: Optional[str] = None
        self._options = _unknown("no frames yet: open a latent")
        self._chosen: Optional[str] = None  # the mode the user chose (None: the default)
        self._mode = LATENT2RGB
        self._thumbs = False
        self._finder = Background(self, threads=1, name="preview-decoders", latest_only=True)
        self._finder.done.connect(self._on_found)
        self._finder.failed.connect(self._on_find_failed)

    # -- context --------------------------------------------------------------------------------
    @property
    def family(self):
        return self._family

    @property
    def user_file(self) -> Optional[str]:
        return self._user_file

    def set_context(self, **changes) -> None:
        """Change ``family``, ``checkpoint`` (a path or None), ``comfy_root`` or ``user_file``; the decoders are
        looked for again when anything changed."""
        cur = {"family": self._family, "checkpoint": self._checkpoint, "comfy_root": self._comfy_root,
               "user_file": self._user_file}
        new = dict(cur, **changes)
        if new["checkpoint"] is not None and not os.path.exists(str(new["checkpoint"])):
            new["checkpoint"] = None  # a family name, not a file
        same_family = (getattr(new["family"], "name", new["family"]) == getattr(cur["family"], "name", cur["family"])
                       and new["family"] is not None)
        if same_family and all(new[k] == cur[k] for k in ("checkpoint", "comfy_root", "user_file")):
            return
        self._family, self._checkpoint = new["family"], new["checkpoint"]
        self._comfy_root, self._user_file = new["comfy_root"] or "", new["user_file"]
        if not same_family and new["family"] is not None:  # the old family's decoders must not decode these frames
            self._apply(_unknown("looking for the decoders…"), keep=False)
        self.refresh()

    def refresh(self) -> None:
        """Look for the decoders again (a worker reads the files' headers)."""
        fam = self._family
        if fam is None:
            self._finder.drop()
            self._apply(_unknown("no frames yet: open a latent"), keep=False)
            return
        args = (fam, self._checkpoint, self._comfy_root or None, self._user_file)

        def find(_task):
            from ..core.vae.previews import preview_options

            return preview_options(args[0], checkpoint=args[1], comfy_root=args[2], user_file=args[3])

        self._finder.submit(find, args)

    def _on_found(self, _args, options: dict) -> None:
        self._apply(options)

    def _on_find_failed(self, _args, exc) -> None:
        from .errors import user_message

        self._apply(_unknown(f"the decoders could not be looked for: {user_message(exc)}"), keep=False)

    def _apply(self, options: dict, keep: bool = True) -> None:
        self._options = options
        if keep:  # forget the loaded decoders no longer offered
            self.shelf.keep(o.choice for o in options.values() if o.choice is not None)
        self.optionsChanged.emit()
        self._settle_mode()
        if self._thumbs and not self.available(TAESD):
            self._thumbs = False
        self.thumbnailsChanged.emit(self.thumbnails_on)

    # -- options --------------------------------------------------------------------------------
    def option(self, mode: str) -> DecoderOption:
        return self._options[mode]

    def available(self, mode: str) -> bool:
        return self._options[mode].available

    def busy(self) -> bool:
        """True while the decoders are being looked for."""
        return self._finder.pending()

    # -- the viewer's mode ----------------------------------------------------------------------
    @property
    def mode(self) -> str:
        return self._mode

    def set_mode(self, mode: str) -> bool:
        """The user's choice of mode; False (nothing changes) when it is not available."""
        if mode not in MODES or not self.available(mode):
            return False
        self._chosen = mode
        self._settle_mode()
        return True

    def _settle_mode(self) -> None:
        if self._chosen is not None and self.available(self._chosen):
            mode = self._chosen
        else:
            mode = TAESD if self.available(TAESD) else LATENT2RGB
        if mode != self._mode:
            self._mode = mode
            self.modeChanged.emit(mode)

    # -- thumbnails -----------------------------------------------------------------------------
    @property
    def thumbnails_on(self) -> bool:
        return self._thumbs and self.available(TAESD)

    def set_thumbnails(self, on: bool) -> bool:
        """Decode the thumbnails with TAESD (False when there is no TAESD)."""
        on = bool(on) and self.available(TAESD)
        if on != self._thumbs:
            self._thumbs = on
            self.thumbnailsChanged.emit(on)
        return on

    def thumbnail_decoder(self):
        """``(token, decode)`` for the thumbnails: ``decode(frames, time_index, cancel)`` -> uint8 ``[N, H, W, 3]``,
        called on a pool thread; ``(None, None)`` when the thumbnails are not decoded."""
        if not self.thumbnails_on or self._family is None:
            return None, None
        choice, family, shelf = self.option(TAESD).choice, self._family, self.shelf

        def decode(frames, time_index, cancel):
            return vp.decode_frames(shelf.get(choice, family), frames, time_index, cancel=cancel)

        return (choice, getattr(family, "name", family)), decode

    # -- threads --------------------------------------------------------------------------------
    def wait(self, msecs: int = -1) -> bool:
        return self._finder.wait(msecs)

    def shutdown(self) -> None:
        self._finder.shutdown()


def bind_thumbnails_action(action: QAction, decoders: PreviewDecoders) -> QAction:
    """Make ``action`` the checkable "TAESD thumbnails" option of ``decoders``: enabled when there is a TAESD, its
    tooltip saying which, or what to add where."""
    action.setCheckable(True)

    def follow(*_):
        opt = decoders.option(TAESD)
        action.setEnabled(opt.available)
        with QSignalBlocker(action):
            action.setChecked(decoders.thumbnails_on)
        tip = (f"Decode the thumbnails with {opt.label} (latent2rgb until each is in)" if opt.available
               else f"TAESD thumbnails are not available: {opt.reason}")
        action.setToolTip(tip)
        action.setStatusTip(tip)

    decoders.optionsChanged.connect(follow)
    decoders.thumbnailsChanged.connect(follow)
    action.toggled.connect(decoders.set_thumbnails)
    follow()
    return action
