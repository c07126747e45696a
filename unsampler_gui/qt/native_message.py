"""An error message for when Qt itself cannot show one (Qt missing or broken): the platform's own dialog.

Windows: ``MessageBoxW``; macOS: ``osascript``; Linux: ``zenity``, ``kdialog`` or ``xmessage`` when a
display is there. Returns False when no dialog could be shown (the console and the log still have it).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys


def has_display() -> bool:
    """Whether a GUI can open here: always on Windows/macOS; on Linux, X11 or Wayland, or a Qt platform chosen
    explicitly (offscreen, eglfs, ...)."""
    if not sys.platform.startswith("linux"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.environ.get("QT_QPA_PLATFORM"))


def show_native_error(title: str, text: str) -> bool:
    try:
        if sys.platform == "win32":
            import ctypes

            ctypes.windll.user32.MessageBoxW(None, text, title, 0x10)  # MB_ICONERROR
            return True
        if sys.platform == "darwin":
            script = f'display alert {_q(title)} message {_q(text)} as critical'
            return subprocess.run(["osascript", "-e", script], timeout=600).returncode == 0
        if not has_display() or os.environ.get("QT_QPA_PLATFORM") == "offscreen":
            return False
        for cmd in (["zenity", "--error", f"--title={title}", f"--text={text}"],
                    ["kdialog", "--title", title, "--error", text],
                    ["xmessage", "-center", f"{title}\n\n{text}"]):
            if shutil.which(cmd[0]):
                return subprocess.run(cmd, timeout=600).returncode in (0, 1)
    except Exception:
        return False
    return False


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
