"""The start in two steps: the window paints before torch loads, then its contents are built and the files open."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from support import WAIT_MS
from unsampler_gui.qt.main_window import MainWindow

CHILD = r"""
import builtins, json, sys, threading
from PySide6.QtCore import QEvent, QObject, QTimer
from unsampler_gui.qt import app as app_mod, main_window

seen = {}
show = main_window.MainWindow.show
torch_on_main = []  # imports of torch by the GUI thread (each one waits for torch to load)
_import = builtins.__import__


def watched_import(name, *args, **kwargs):
    if name.split(".")[0] == "torch" and threading.current_thread() is threading.main_thread():
        torch_on_main.append(name)
    return _import(name, *args, **kwargs)


builtins.__import__ = watched_import


class Probe(QObject):
    def eventFilter(self, obj, ev):
        if ev.type() == QEvent.Type.Paint and "paint" not in seen:
            seen["paint"] = {"torch_on_main": list(torch_on_main), "ready": obj.is_ready(),
                             "heavy": [m for m in ("diffusers", "transformers", "scipy") if m in sys.modules]}
        return False


def probed_show(win):
    win._probe = Probe(win)
    win.installEventFilter(win._probe)

    def check():
        if win.is_ready() and win.plot.data() is not None and not win.panel.is_loading():
            seen["ready"] = {"latent": win.panel.latent().name, "title": win.windowTitle(),
                             "menus": [a.text() for a in win.menuBar().actions()], "torch": "torch" in sys.modules}
            win.close()
        else:
            QTimer.singleShot(20, check)

    QTimer.singleShot(20, check)
    show(win)


main_window.MainWindow.show = probed_show
code = app_mod.main([])
print(json.dumps({"code": code, **seen}))
"""


def _env(tmp_path):
    return dict(os.environ, QT_QPA_PLATFORM="offscreen", UNSAMPLER_SETTINGS=str(tmp_path / "s.ini"),
                HOME=str(tmp_path), XDG_DATA_HOME=str(tmp_path / "data"))


def test_the_window_paints_before_torch_loads_and_is_then_whole(tmp_path):
    """The real start (``app.main``): the first paint waits for no import of torch (it loads on a thread) and shows
    the frame, not the contents; then the form, the plot and the sample come, with the menus, and torch is there."""
    r = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=180, env=_env(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["code"] == 0
    assert out["paint"] == {"torch_on_main": [], "ready": False, "heavy": []}
    assert out["ready"]["latent"] == "sample.latent" and out["ready"]["torch"]
    assert out["ready"]["title"] == "sample.latent \u2014 Unsampler"
    assert {"&File", "&Run", "&Help"} <= set(out["ready"]["menus"])


def test_a_deferred_window_is_built_after_its_first_paint(qtbot, settings, run_and_wait, set_steps):
    win = MainWindow(settings, deferred=True)
    qtbot.addWidget(win)
    calls = []
    win.when_ready(lambda: calls.append(win.panel))
    assert not win.is_ready() and not calls and not hasattr(win, "panel")
    assert win.centralWidget() is win.starting_label
    with qtbot.waitSignal(win.ready, timeout=WAIT_MS):
        win.show()
    assert win.is_ready() and calls == [win.panel]
    assert win.centralWidget().isAncestorOf(win.grid_pane)  # the grid (under the browse bar) replaced the frame
    later = []
    win.when_ready(lambda: later.append(1))  # once ready: at once
    assert later == [1]
    with qtbot.waitSignal(win.panel.latentChanged, timeout=WAIT_MS):
        assert win.open_sample()
    qtbot.waitUntil(lambda: not win.panel.is_loading() and win.plot.data() is not None, timeout=WAIT_MS)
    set_steps(win, 5)
    assert run_and_wait(win).latent.shape[0] == 5
    win.close()


def test_a_deferred_window_has_the_docks_of_a_direct_one(qtbot, tmp_path):
    from unsampler_gui.qt.settings import Settings

    sizes = []
    for i, deferred in enumerate((False, True)):
        win = MainWindow(Settings(str(tmp_path / f"s{i}.ini")), deferred=deferred)
        qtbot.addWidget(win)
        win.show()
        qtbot.waitUntil(win.is_ready, timeout=WAIT_MS)
        docks = lambda: (win.inputs_dock.width(), win.viewer_dock.width(), win.sigma_dock.height())  # noqa: E731
        if deferred:  # its dock sizes are set once the docks are placed (offscreen, the heights differ a little)
            qtbot.waitUntil(lambda: all(abs(a - b) <= 16 for a, b in zip(docks(), sizes[0])), timeout=WAIT_MS)
        sizes.append(docks())
        win.close()
    assert sizes[0][:2] == sizes[1][:2]  # the widths: the same (a deferred start once gave the form 800 px)


def test_closing_while_starting_keeps_no_settings(qtbot, settings):
    win = MainWindow(settings, deferred=True)
    qtbot.addWidget(win)
    win.close()  # before it was shown: nothing was built, nothing of this session is kept
    assert not win.is_ready()
    assert settings.window_geometry() is None and settings.window_state() is None
    win.show()  # a closed window never builds
    qtbot.waitExposed(win)
    assert not win.is_ready()
    win.close()


def test_a_failed_build_is_reported(qtbot, settings, monkeypatch):
    def boom(self):
        raise RuntimeError("no widgets for you")

    monkeypatch.setattr(MainWindow, "_build", boom)
    win = MainWindow(settings, deferred=True)
    qtbot.addWidget(win)
    with qtbot.waitSignal(win.startFailed, timeout=WAIT_MS) as sig:
        win.show()
    assert "no widgets for you" in str(sig.args[0])
    assert not win.is_ready()
    win.close()
    with pytest.raises(RuntimeError, match="no widgets"):
        MainWindow(settings)  # built at once: the error reaches the caller


def test_a_failed_deferred_start_exits_with_the_message(tmp_path):
    """A failure after the first paint is a start-up failure as before: the log, the console, a box, exit 1."""
    code = ("import sys\n"
            "from PySide6.QtWidgets import QMessageBox\n"
            "from unsampler_gui.qt import app, main_window\n"
            "shown = []\n"
            "QMessageBox.exec = lambda self: shown.append(self.text()) or 0\n"
            "def boom(self): raise RuntimeError('no widgets for you')\n"
            "main_window.MainWindow._build = boom\n"
            "code = app.main([])\n"
            "print('BOX:', shown)\n"
            "sys.exit(code)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, env=_env(tmp_path))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "no widgets for you" in r.stderr and "Traceback" in r.stderr
    assert "BOX:" in r.stdout and "no widgets for you" in r.stdout
    logs = list((tmp_path / "data").rglob("unsampler.log")) + list(tmp_path.rglob(".cache/unsampler/*.log"))
    assert logs and "no widgets for you" in logs[0].read_text()
