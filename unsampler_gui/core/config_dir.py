"""The app's configuration folder, without Qt.

The app keeps its settings with ``QSettings(IniFormat, UserScope, "Unsampler", "Unsampler")``
(``qt/settings.py``), i.e. in ``<config>/Unsampler.ini``. ``<config>`` is, as Qt computes it:

- ``$UNSAMPLER_CONFIG_DIR`` when set (tests, portable installs; Qt does not read it);
- Windows: ``%APPDATA%\\Unsampler``;
- elsewhere (Linux, macOS): ``$XDG_CONFIG_HOME/Unsampler``, or ``~/.config/Unsampler``.

User families live in ``<config>/families/*.json``.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

#: The organisation name Qt puts in the settings path (``qt.settings.ORGANIZATION``).
ORGANIZATION = "Unsampler"


def config_dir() -> Path:
    """The folder that holds the app's settings file (it may not exist yet)."""
    override = os.environ.get("UNSAMPLER_CONFIG_DIR")
    if override:
        return Path(override).expanduser()
    if sys.platform.startswith("win"):
        base = os.environ.get("APPDATA") or os.path.join(os.path.expanduser("~"), "AppData", "Roaming")
    else:
        xdg = os.environ.get("XDG_CONFIG_HOME")
        base = xdg if xdg and os.path.isabs(xdg) else os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / ORGANIZATION


def families_dir() -> Path:
    """``<config>/families``: user family definitions, one or more per ``*.json`` file."""
    return config_dir() / "families"
