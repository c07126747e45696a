"""An error message for when Qt itself cannot show one (Qt missing or broken): the platform's own dialog.

Windows: ``MessageBoxW``; macOS: ``osascript``; Linux: ``zenity``, ``kdialog`` or ``xmessage`` when a
display is there. Returns False when no dialog could be shown (the console and the log still have it).

Also the check, before Qt loads its X11 platform plugin, that the system libraries the plugin needs are there
(``missing_xcb_libraries``): without them Qt aborts the process with a hint that often names the wrong library.
"""
from __future__ import annotations

import ctypes
import os
import re
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


#: What Qt 6.11's X11 platform plugin (``libqxcb.so`` and ``libQt6XcbQpa.so.6``) links against, outside Qt
#: (``objdump -p``, NEEDED), with the Debian/Ubuntu package that holds each library, in loading order.
XCB_LIBRARIES = (
    ("libxcb.so.1", "libxcb1"), ("libX11.so.6", "libx11-6"), ("libX11-xcb.so.1", "libx11-xcb1"),
    ("libxcb-util.so.1", "libxcb-util1"), ("libxcb-render.so.0", "libxcb-render0"),
    ("libxcb-shm.so.0", "libxcb-shm0"), ("libxcb-xfixes.so.0", "libxcb-xfixes0"),
    ("libxcb-shape.so.0", "libxcb-shape0"), ("libxcb-sync.so.1", "libxcb-sync1"),
    ("libxcb-randr.so.0", "libxcb-randr0"), ("libxcb-xkb.so.1", "libxcb-xkb1"),
    ("libxcb-render-util.so.0", "libxcb-render-util0"), ("libxcb-image.so.0", "libxcb-image0"),
    ("libxcb-keysyms.so.1", "libxcb-keysyms1"), ("libxcb-icccm.so.4", "libxcb-icccm4"),
    ("libxcb-cursor.so.0", "libxcb-cursor0"), ("libxkbcommon.so.0", "libxkbcommon0"),
    ("libxkbcommon-x11.so.0", "libxkbcommon-x11-0"), ("libGL.so.1", "libgl1"),
    ("libglib-2.0.so.0", "libglib2.0-0"), ("libgthread-2.0.so.0", "libglib2.0-0"),
)
XCB_PACKAGES = dict(XCB_LIBRARIES)


def _dlopen(name: str) -> None:
    """Load a shared library the way Qt will (raises OSError naming the library that is not there)."""
    ctypes.CDLL(name)


def _missing_name(err: OSError, asked: str) -> str:
    """The library a loader error names (``libxcb-util.so.1: cannot open shared object file``), or ``asked``."""
    m = re.match(r"\s*(\S+?\.so[.\d]*):", str(err))
    return os.path.basename(m.group(1)) if m else asked


def uses_xcb() -> bool:
    """Whether Qt will load its X11 plugin: Linux, an X display, and no other platform chosen (a Wayland session
    uses Qt's Wayland plugin first)."""
    if not sys.platform.startswith("linux"):
        return False
    chosen = os.environ.get("QT_QPA_PLATFORM", "").split(";")[0].split(":")[0].strip()
    if chosen:
        return chosen == "xcb"
    return bool(os.environ.get("DISPLAY")) and not os.environ.get("WAYLAND_DISPLAY")


def xcb_plugin() -> "str | None":
    """PySide6's ``libqxcb.so``, found without loading Qt."""
    import importlib.util

    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    for base in spec.submodule_search_locations:
        p = os.path.join(base, "Qt", "plugins", "platforms", "libqxcb.so")
        if os.path.isfile(p):
            return p
    return None


def missing_xcb_libraries() -> list:
    """The libraries Qt's X11 plugin needs that cannot be loaded, ``[(library, debian package)]``; empty when the
    plugin loads (or is not used). The plugin itself is loaded first (its own paths find a bundle's copies); only
    when that fails is each library tried, so that all of them are named, not the first."""
    if not uses_xcb():
        return []
    plugin = xcb_plugin()
    if plugin is None:
        return []
    try:
        _dlopen(plugin)
        return []
    except OSError as e:
        first = _missing_name(e, "")
    missing = []
    for lib, _pkg in XCB_LIBRARIES:
        try:
            _dlopen(lib)
        except OSError as e:
            name = _missing_name(e, lib)
            if name not in missing:
                missing.append(name)
    if first and first not in missing and not first.startswith(("libQt6", "libqxcb")):
        missing.append(first)
    return [(lib, XCB_PACKAGES.get(lib, "")) for lib in missing]


def xcb_message(missing) -> str:
    """One paragraph naming the missing libraries and the command that installs them."""
    libs = ", ".join(lib for lib, _ in missing)
    pkgs = " ".join(dict.fromkeys(p for _, p in missing if p))
    text = f"Qt's X11 (xcb) platform plugin cannot load: the system libraries {libs} are missing."
    if pkgs:
        text += f" On Debian or Ubuntu install them with:\n\nsudo apt install {pkgs}\n\n"
    text += "(Other systems: install the packages that provide these files.) Then start Unsampler again."
    return text
