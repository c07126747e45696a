"""The desktop app: PySide6 + pyqtgraph adapters on top of the Qt-free ``unsampler_gui.core``.

Nothing in ``core`` imports this package. Every widget takes its model in ``__init__``; the main
window only composes them. Work (files, numbers, pictures) runs on worker threads (``worker.py``).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

#: The bundled sample latent's description, as the latent panel shows it.
SAMPLE_LABEL = "sample: astronaut (least-squares inverse of latent_rgb_factors, not a VAE encoding)"


def resource_dirs() -> list:
    """Where bundled resources may be: a frozen bundle, the installed package, or the source checkout."""
    here = Path(__file__).resolve().parent.parent  # unsampler_gui/
    dirs = []
    env = os.environ.get("UNSAMPLER_RESOURCES")
    if env:
        dirs.append(Path(env))
    meipass = getattr(sys, "_MEIPASS", None)
    if meipass:
        dirs.append(Path(meipass) / "resources")
    dirs += [here / "resources", here.parent / "resources", Path(sys.prefix) / "share" / "unsampler" / "resources"]
    return dirs


def resource_path(*parts: str) -> Optional[Path]:
    """The first existing ``<resources>/<parts...>``, or None (resources are optional)."""
    for d in resource_dirs():
        p = d.joinpath(*parts)
        if p.exists():
            return p
    return None
