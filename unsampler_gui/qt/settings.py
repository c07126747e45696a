"""What the app remembers between sessions, in QSettings: folders, the ComfyUI install, window layout,
the last parameters and the memory cap.

``Settings`` is a thin typed wrapper; tests give it a throwaway INI file so they never touch the
user's own settings.
"""
from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Optional

from PySide6.QtCore import QByteArray, QSettings

if TYPE_CHECKING:  # the parameters (and torch, under them) load when first used: the window paints before
    from ..core import params as run_params

ORGANIZATION = "Unsampler"
APPLICATION = "Unsampler"


class Settings:
    """Typed access to the app's QSettings."""

    def __init__(self, path: Optional[str] = None):
        if path is None:
            path = os.environ.get("UNSAMPLER_SETTINGS") or None
        if path:
            self.q = QSettings(os.fspath(path), QSettings.Format.IniFormat)
        else:
            self.q = QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANIZATION, APPLICATION)

    # -- plain values -------------------------------------------------------------------------
    def _str(self, key: str, default: str = "") -> str:
        v = self.q.value(key, default)
        return str(v) if v is not None else default

    def folder(self, kind: str) -> str:
        """The last folder used for ``kind`` ("latent", "checkpoint", "export"); else the ComfyUI folder's own
        (``output/latents`` or ``input``, ``models/checkpoints``); else the home folder. Choosing a ComfyUI folder
        forgets the last latent and checkpoint folders, so the dialogs start there."""
        f = self._str(f"folders/{kind}")
        if f and os.path.isdir(f):
            return f
        if self.comfy_root:
            from ..core.comfy_paths import resolve_comfy_folder
            from ..core.errors import UnsamplerError
            try:
                start = resolve_comfy_folder(self.comfy_root).start_folder(kind)
            except UnsamplerError:
                start = None
            if start is not None:
                return str(start)
        return os.path.expanduser("~")

    def set_folder(self, kind: str, path: str) -> None:
        folder = path if os.path.isdir(path) else os.path.dirname(path)
        if folder:
            self.q.setValue(f"folders/{kind}", folder)

    @property
    def comfy_root(self) -> str:
        return self._str("comfyui/root")

    @comfy_root.setter
    def comfy_root(self, path: str) -> None:
        if (path or "") != self.comfy_root:
            for kind in ("latent", "checkpoint"):
                self.q.remove(f"folders/{kind}")
        self.q.setValue("comfyui/root", path or "")

    @property
    def vae_file(self) -> str:
        """The VAE file the user picked last for encoding pictures ("" when none, or when it is gone)."""
        p = self._str("vae/file")
        return p if p and os.path.isfile(p) else ""

    @vae_file.setter
    def vae_file(self, path: str) -> None:
        self.q.setValue("vae/file", path or "")

    @property
    def memory_cap(self) -> int:
        """The most bytes an in-memory run may take (0: no cap beyond the free memory)."""
        try:
            return max(0, int(self.q.value("memory/cap_bytes", 0)))
        except (TypeError, ValueError):
            return 0

    @memory_cap.setter
    def memory_cap(self, n: int) -> None:
        self.q.setValue("memory/cap_bytes", int(max(0, n)))

    @property
    def frame_cache(self) -> int:
        """The byte budget of the live sequence's frame cache (``core.sequence.CACHE_BYTES`` by default;
        at least 16 MiB)."""
        from ..core.sequence import CACHE_BYTES
        try:
            return max(16 << 20, int(self.q.value("memory/frame_cache_bytes", CACHE_BYTES)))
        except (TypeError, ValueError):
            return CACHE_BYTES

    @frame_cache.setter
    def frame_cache(self, n: int) -> None:
        self.q.setValue("memory/frame_cache_bytes", int(max(16 << 20, n)))

    # -- window ------------------------------------------------------------------------------
    def window_geometry(self) -> Optional[QByteArray]:
        v = self.q.value("window/geometry")
        return v if isinstance(v, QByteArray) and not v.isEmpty() else None

    def window_state(self) -> Optional[QByteArray]:
        v = self.q.value("window/state")
        return v if isinstance(v, QByteArray) and not v.isEmpty() else None

    def save_window(self, geometry: QByteArray, state: QByteArray) -> None:
        self.q.setValue("window/geometry", geometry)
        self.q.setValue("window/state", state)

    # -- parameters ----------------------------------------------------------------------------
    def last_params(self) -> run_params.RunParams:
        """The run parameters of the last session; the defaults for anything missing or not valid."""
        try:
            v = json.loads(self._str("params/last", "{}"))
        except json.JSONDecodeError:
            v = {}
        from ..core import params as run_params
        return run_params.from_dict(v)

    def set_last_params(self, params: run_params.RunParams) -> None:
        from ..core import params as run_params
        self.q.setValue("params/last", json.dumps(run_params.to_dict(params)))

    def family_choices(self) -> dict:
        """The family the user chose last for latents of each channel count (``core.session.fit_key``)."""
        try:
            v = json.loads(self._str("latent/family_choices", "{}"))
        except json.JSONDecodeError:
            return {}
        return {str(k): str(n) for k, n in v.items() if isinstance(n, str)} if isinstance(v, dict) else {}

    def set_family_choices(self, choices: dict) -> None:
        self.q.setValue("latent/family_choices", json.dumps(dict(choices)))

    # -- recent files, and what was open last -------------------------------------------------------
    RECENT_MAX = 10

    def recent_files(self) -> list:
        """The files opened lately, newest first (those that still exist)."""
        try:
            v = json.loads(self._str("files/recent", "[]"))
        except json.JSONDecodeError:
            v = []
        return [p for p in v if isinstance(p, str) and os.path.exists(p)][:self.RECENT_MAX] if isinstance(v, list) \
            else []

    def add_recent(self, path: str) -> None:
        path = os.path.abspath(path)
        files = [path] + [p for p in self.recent_files() if p != path]
        self.q.setValue("files/recent", json.dumps(files[:self.RECENT_MAX]))

    def clear_recent(self) -> None:
        self.q.setValue("files/recent", "[]")

    def last_file(self, kind: str) -> str:
        """The ``latent`` or ``checkpoint`` open when the app was last closed, if it still exists; else ""."""
        p = self._str(f"files/last_{kind}")
        return p if p and os.path.exists(p) else ""

    def set_last_file(self, kind: str, path: str) -> None:
        self.q.setValue(f"files/last_{kind}", path or "")

    def sync(self) -> None:
        self.q.sync()
