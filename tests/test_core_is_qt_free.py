"""The core never imports Qt: every module of ``unsampler_gui.core`` loads in a process without it."""
from __future__ import annotations

import subprocess
import sys

QT_PACKAGES = ("PySide6", "shiboken6", "pyqtgraph")


def test_no_core_module_imports_qt():
    code = ("import importlib, pkgutil, sys, unsampler_gui.core as core\n"
            "names = sorted(m.name for m in pkgutil.walk_packages(core.__path__, 'unsampler_gui.core.'))\n"
            "for name in names + ['unsampler_gui.cli', 'unsampler_gui.cli_pictures']:\n"
            "    importlib.import_module(name)\n"
            f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {QT_PACKAGES!r})\n"
            "print(' '.join(names)); print(bad)\n"
            "sys.exit(1 if bad else 0)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    imported = set(r.stdout.splitlines()[0].split())
    # every module was imported, not just the package: the subpackages and the heavy ones too
    assert {"unsampler_gui.core.detect", "unsampler_gui.core.export", "unsampler_gui.core.pictures"} <= imported
