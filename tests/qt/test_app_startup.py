"""Start-up: the smoke test, arguments, the log file (that the core never imports Qt: test_core_is_qt_free.py)."""
from __future__ import annotations

import os
import subprocess
import sys

from unsampler_gui.qt import app as app_mod


def test_smoke_test_exits_zero(tmp_path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", UNSAMPLER_SETTINGS=str(tmp_path / "s.ini"),
               HOME=str(tmp_path), XDG_DATA_HOME=str(tmp_path / "data"))
    r = subprocess.run([sys.executable, "-m", "unsampler_gui", "--smoke-test"], capture_output=True, text=True,
                       timeout=180, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Traceback" not in r.stderr


def test_startup_error_is_reported(tmp_path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", UNSAMPLER_SETTINGS=str(tmp_path / "s.ini"),
               HOME=str(tmp_path), XDG_DATA_HOME=str(tmp_path / "data"))
    code = ("import sys; from unsampler_gui.qt import app, main_window\n"
            "def boom(*a, **k): raise RuntimeError('no display for you')\n"
            "main_window.MainWindow.__init__ = boom\n"
            "sys.exit(app.main(['--smoke-test']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, env=env)
    assert r.returncode == 1
    assert "no display for you" in r.stderr and "Traceback" in r.stderr  # the console gets the traceback
    logs = list((tmp_path / "data").rglob("unsampler.log")) + list(tmp_path.rglob(".cache/unsampler/*.log"))
    assert logs and "no display for you" in logs[0].read_text()


def test_parse_args():
    a = app_mod.parse_args(["x.latent", "--model", "SDXL", "--run"])
    assert (a.latent, a.model, a.run, a.smoke_test) == ("x.latent", "SDXL", True, False)
    a = app_mod.parse_args([])
    assert a.latent is None and a.model is None and not a.run


def test_build_window_with_model_and_latent(qtbot, tmp_path, settings):
    import torch
    from unsampler_gui import core
    path = tmp_path / "x.latent"
    core.write_latent(path, torch.zeros(1, 4, 16, 16))
    win = app_mod.build_window(app_mod.parse_args([str(path), "--model", "SDXL"]), settings)
    qtbot.addWidget(win)
    qtbot.waitUntil(lambda: win.panel.latent() is not None, timeout=30000)
    assert win.panel.family_name() == "SDXL" and win.panel.latent().shape == (1, 4, 16, 16)
    win.close()


def test_icon_loads(qapp):
    icon = app_mod.app_icon()
    assert not icon.isNull()


def test_the_start_never_loads_diffusers(tmp_path):
    """A fake diffusers (and transformers) on the path notes any import: the start (the smoke test's path through
    main, the window, the sample) must not import them."""
    marker = tmp_path / "imported.txt"
    for name in ("diffusers", "transformers"):
        pkg = tmp_path / "site" / name
        pkg.mkdir(parents=True)
        (pkg / "__init__.py").write_text(f"open({str(marker)!r}, 'a').write({name!r} + '\\n')\n")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", UNSAMPLER_SETTINGS=str(tmp_path / "s.ini"),
               HOME=str(tmp_path), XDG_DATA_HOME=str(tmp_path / "data"),
               PYTHONPATH=os.pathsep.join([str(tmp_path / "site")] + [p for p in sys.path if p]))
    r = subprocess.run([sys.executable, "-c", "import diffusers, os; os.remove(%r)" % str(marker)], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr  # the fake is what an import finds
    r = subprocess.run([sys.executable, "-m", "unsampler_gui", "--smoke-test"], capture_output=True, text=True,
                       timeout=180, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert not marker.exists(), marker.read_text()
