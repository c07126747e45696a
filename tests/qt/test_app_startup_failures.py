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
