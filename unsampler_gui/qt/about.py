"""The About box's text: versions of everything that matters for a bug report, and the licences."""
from __future__ import annotations

import platform
import sys
from importlib import metadata

from .. import __version__
from . import errors

#: Licences of what the app ships with or runs on.
LICENCES = (
    ("Unsampler", "MIT"), ("PySide6 / Qt", "LGPL-3.0"), ("pyqtgraph", "MIT"), ("PyTorch", "BSD-3-Clause"),
    ("NumPy", "BSD-3-Clause"), ("SciPy", "BSD-3-Clause"), ("Pillow", "MIT-CMU (HPND)"),
    ("safetensors", "Apache-2.0"),
)


def _dist_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def versions() -> dict:
    """Versions and the CUDA state, as plain strings (no GPU work: torch is already imported by the core)."""
    import torch
    from PySide6 import QtCore, __version__ as pyside_version

    try:
        cuda = (f"yes, {torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda})" if torch.cuda.is_available()
                else f"no ({'CPU build of torch' if torch.version.cuda is None else 'no usable device'})")
    except Exception as e:  # a broken driver is a fact to report, not a crash
        cuda = f"no ({e})"
    return {"Unsampler": __version__, "Python": f"{platform.python_version()} ({sys.platform})",
            "torch": torch.__version__, "CUDA": cuda, "Qt": QtCore.qVersion(), "PySide6": pyside_version,
            "pyqtgraph": _dist_version("pyqtgraph"), "numpy": _dist_version("numpy")}


def about_html() -> str:
    rows = "".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in versions().items())
    lic = ", ".join(f"{name}: {lic}" for name, lic in LICENCES)
    return (f"<b>Unsampler {__version__}</b><br>ComfyUI's BatchUnsampler on the desktop: exact noise schedules "
            "and progressively noised latents, without ComfyUI or model weights.<br><br>"
            f"<table>{rows}</table><br><small>Licences: {lic}.<br>Sample picture: NASA, public domain."
            f"<br>Log file: {errors.LOG_PATH or 'none'}</small>")
