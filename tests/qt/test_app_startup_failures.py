"""Start-up failures: a clear message and a log file, never a silent exit (subprocesses)."""
import os
import subprocess
import sys


def _run(code: str, tmp_path, **env_changes):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env.update(HOME=str(tmp_path), XDG_DATA_HOME=str(tmp_path / "data"), XDG_CACHE_HOME=str(tmp_path / "cache"),
               **env_changes)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


def _log_text(tmp_path) -> str:
    logs = list(tmp_path.rglob("unsampler.log"))
    assert logs, "no log file was written"
    return logs[0].read_text()


def test_no_display_is_explained(tmp_path):
    r = _run("import sys; from unsampler_gui.qt.app import main; sys.exit(main([]))", tmp_path)
    assert r.returncode == 1
    assert "no display" in r.stderr and "unsampler` command line" in r.stderr
    assert "no display" in _log_text(tmp_path)


def test_missing_qt_is_explained(tmp_path):
    code = ("import sys; sys.modules['PySide6'] = None; from unsampler_gui.qt.app import main; "
            "sys.exit(main([]))")
    r = _run(code, tmp_path, QT_QPA_PLATFORM="offscreen")
    assert r.returncode == 1
    assert "PySide6" in r.stderr and "Traceback" in r.stderr  # the console twin prints the traceback
    assert "PySide6" in _log_text(tmp_path)


def test_short_messages():
    from unsampler_gui.qt.app import StartupError, _short

    assert "pip install PySide6-Essentials" in _short(ImportError("No module named 'PySide6'"))
    assert _short(StartupError("no display: x")) == "no display: x"


def test_missing_xcb_libraries_are_named(tmp_path):
    """A library Qt's X11 plugin needs is missing (faked): the platform's dialog (a fake xmessage on PATH) and the
    log name the library and its Debian package; Qt is never started."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    said = tmp_path / "said.txt"
    fake = bin_dir / "xmessage"
    fake.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > '{said}'\n")
    fake.chmod(0o755)
    code = ("import sys, ctypes; from unsampler_gui.qt import native_message as n\n"
            "gone = {'libxcb-icccm.so.4', 'libxcb-keysyms.so.1'}\n"
            "def fake(name):\n"
            "    base = name.rsplit('/', 1)[-1]\n"
            "    if base in gone: raise OSError(base + ': cannot open shared object file: No such file or directory')\n"
            "    if base == 'libqxcb.so': raise OSError('libxcb-keysyms.so.1: cannot open shared object file')\n"
            "n._dlopen = fake\n"
            "from unsampler_gui.qt.app import main; sys.exit(main([]))")
    r = _run(code, tmp_path, DISPLAY=":99", PATH=str(bin_dir))  # only the fake dialog program
    assert r.returncode == 1, r.stderr
    shown = said.read_text()
    assert "sudo apt install libxcb-keysyms1 libxcb-icccm4" in shown
    assert "libxcb-icccm.so.4" in shown and "libxcb-cursor" not in shown
    log = _log_text(tmp_path)
    assert "Debian/Ubuntu packages: libxcb-keysyms1 libxcb-icccm4" in log


def test_xcb_check_only_when_qt_uses_xcb(monkeypatch):
    from unsampler_gui.qt import native_message as n

    calls = []
    monkeypatch.setattr(n, "_dlopen", lambda name: calls.append(name))
    for env, uses in (({"QT_QPA_PLATFORM": "offscreen", "DISPLAY": ":1"}, False), ({"DISPLAY": ":1"}, True),
                      ({"DISPLAY": ":1", "WAYLAND_DISPLAY": "wayland-0"}, False), ({"QT_QPA_PLATFORM": "xcb"}, True)):
        for k in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY"):
            monkeypatch.delenv(k, raising=False)
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        assert n.uses_xcb() is (uses and n.sys.platform.startswith("linux"))
    assert n.missing_xcb_libraries() == [] and calls[-1].endswith("libqxcb.so")  # the plugin loads: nothing missing
