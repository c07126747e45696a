"""Everyday conveniences (issue 15): shortcuts wherever the focus is, undo/redo and reset of the form, copying
the sigmas, recent files and the files restored on start, the log file without a file manager, the shortcut list,
and the open dialogs starting in the ComfyUI folder."""
from __future__ import annotations

import json

import torch
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtTest import QTest

from support import WAIT_MS
from unsampler_gui import core
from unsampler_gui.core import params as run_params
from unsampler_gui.core.latent_io import write_latent
from unsampler_gui.core.sigma_format import manual_sigmas_text
from unsampler_gui.qt import errors


def _focus(qtbot, w):
    w.setFocus(Qt.FocusReason.OtherFocusReason)
    qtbot.waitUntil(lambda: w.hasFocus() or (w.focusProxy() is not None and w.focusProxy().hasFocus()),
                    timeout=WAIT_MS)


def test_ctrl_e_works_from_a_spin_box(qtbot, window):
    spin = window.panel.widget("steps")
    window.activateWindow()
    _focus(qtbot, spin)
    assert window._export is None
    QTest.keyClick(spin, Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)
    assert window._export is not None and window._export.isVisible()
    window._export.reject()


def test_space_plays_from_the_grid_but_presses_a_panel_button(qtbot, window):
    toggles = []
    window.viewer.play_button.toggled.connect(toggles.append)
    _focus(qtbot, window.grid)
    QTest.keyClick(window.grid, Qt.Key.Key_Space)
    assert toggles and toggles[0] is True  # Play was asked for (no frames yet: it stops again)
    toggles.clear()
    box = window.panel.advanced
    _focus(qtbot, box)
    was = box.isChecked()
    QTest.keyClick(box, Qt.Key.Key_Space)
    assert toggles == [] and box.isChecked() != was


def test_undo_redo_and_reset_to_defaults(qtbot, window):
    ex = window.extras
    window.panel.set_params({"steps": 30}, family=False)
    window.panel.set_params({"scheduler": "karras"}, family=False)
    assert window.panel.params()["steps"] == 30 and window.panel.params()["scheduler"] == "karras"
    assert ex.undo_action.isEnabled() and not ex.redo_action.isEnabled()
    ex.undo_action.trigger()
    assert window.panel.params()["scheduler"] != "karras" and window.panel.params()["steps"] == 30
    ex.undo_action.trigger()
    assert window.panel.params()["steps"] == 10000
    assert ex.redo_action.isEnabled()
    ex.redo_action.trigger()
    ex.redo_action.trigger()
    assert window.panel.params()["steps"] == 30 and window.panel.params()["scheduler"] == "karras"
    assert not ex.redo_action.isEnabled()
    # a change after an undo drops the redo
    ex.undo_action.trigger()
    window.panel.set_params({"seed": 7}, family=False)
    assert not ex.redo_action.isEnabled()
    ex.reset_action.trigger()
    p, d = window.panel.params(), run_params.to_dict(run_params.default())
    assert p["family"] == "SD15"  # the model stays
    assert all(p[k] == v for k, v in d.items() if k != "family")
    ex.undo_action.trigger()
    assert window.panel.params()["seed"] == 7


def test_copy_sigmas(qtbot, window, set_steps):
    set_steps(window, 30)
    text = window.extras.copy_sigmas(False)
    plan = core.plan_unsample(window.panel.spec())
    assert text == manual_sigmas_text(plan.schedule.tolist()) == QGuiApplication.clipboard().text()
    assert text.endswith(", 0") and text.count(",") == 30
    window.extras.copy_json_action.trigger()
    doc = json.loads(QGuiApplication.clipboard().text())
    assert len(doc["sigmas"]) == 30 and "copied the sigmas as JSON" in window.status_label.text()


def test_recent_files_and_the_latent_restored_on_start(qtbot, window, settings, tmp_path):
    lat = tmp_path / "mine.latent"
    write_latent(lat, torch.randn(1, 4, 16, 16))
    with qtbot.waitSignal(window.panel.latentChanged, timeout=WAIT_MS):
        window.open_file(str(lat))
    assert settings.recent_files() == [str(lat)] and settings.last_file("latent") == str(lat)
    window.extras._fill_recent()
    acts = [a for a in window.extras.recent_menu.actions() if a.toolTip() == str(lat)]
    assert acts and "mine.latent" in acts[0].text()
    with qtbot.waitSignal(window.panel.latentChanged, timeout=WAIT_MS):
        window.open_sample()
    assert settings.last_file("latent") == ""  # the sample is not a file to restore
    with qtbot.waitSignal(window.panel.latentChanged, timeout=WAIT_MS):
        acts[0].trigger()
    assert window.panel.latent().path == str(lat)
    window.close()

    from unsampler_gui.qt.app import build_window, parse_args
    win2 = build_window(parse_args([]), settings)
    qtbot.addWidget(win2)
    qtbot.waitUntil(lambda: win2.panel.latent() is not None and win2.panel.latent().path == str(lat),
                    timeout=WAIT_MS)
    win2.close()
    lat.unlink()  # gone: the next start opens the sample
    win3 = build_window(parse_args([]), settings)
    qtbot.addWidget(win3)
    qtbot.waitUntil(lambda: win3.panel.latent() is not None, timeout=WAIT_MS)
    assert win3.panel.latent().is_sample and settings.recent_files() == []
    win3.close()


def test_show_log_file_without_a_file_manager(qtbot, window, monkeypatch, tmp_path):
    monkeypatch.setattr(errors, "LOG_PATH", str(tmp_path / "unsampler.log"))
    opened = []
    from unsampler_gui.qt import actions
    monkeypatch.setattr(actions.QDesktopServices, "openUrl", lambda url: opened.append(url) or False)
    window.show_log()
    box = window.extras.log_box
    assert str(tmp_path / "unsampler.log") in box.text() and box.isVisible()
    copy = next(b for b in box.buttons() if b.text() == "Copy path")
    copy.click()
    assert QGuiApplication.clipboard().text() == str(tmp_path / "unsampler.log") and box.isVisible()
    folder = next(b for b in box.buttons() if b.text() == "Open folder")
    folder.click()
    assert opened and "No file manager" in box.informativeText() and box.isVisible()
    box.close()


def test_keyboard_shortcuts_list(qtbot, window):
    rows = dict((what, keys) for keys, what in window.extras.shortcut_rows())
    assert rows["Run"] == "Ctrl+R" and rows["Play / pause"] == "Space" and "Undo" in rows
    assert any("Export" in w and k == "Ctrl+E" for w, k in rows.items())
    assert any(k == "B" for k in rows.values()) and any("Home" in k for k in rows.values())
    dlg = window.extras.show_shortcuts()
    from PySide6.QtWidgets import QTableWidget
    table = dlg.findChild(QTableWidget)
    assert dlg.isVisible() and table.rowCount() == len(window.extras.shortcut_rows())
    assert any(table.item(r, 0).text() == "Ctrl+E" for r in range(table.rowCount()))
    dlg.reject()


def test_open_dialogs_start_in_the_comfyui_folder(settings, tmp_path):
    root = tmp_path / "ComfyUI"
    for name in ("input", "output/latents", "models/checkpoints", "user", "custom_nodes"):
        (root / name).mkdir(parents=True)
    settings.set_folder("latent", str(tmp_path))
    settings.comfy_root = str(root)  # choosing the folder forgets the last ones
    assert settings.folder("latent") == str(root / "output" / "latents")
    assert settings.folder("checkpoint") == str(root / "models" / "checkpoints")
    settings.set_folder("latent", str(tmp_path))  # a folder the user went to since wins
    assert settings.folder("latent") == str(tmp_path)


def test_contact_sheet_shows_the_viewers_batch_item(qtbot, window, set_steps, run_and_wait, tmp_path):
    lat = tmp_path / "two.latent"
    write_latent(lat, torch.randn(2, 4, 8, 8))
    with qtbot.waitSignal(window.panel.latentChanged, timeout=WAIT_MS):
        window.open_file(str(lat))
    set_steps(window, 6)
    run_and_wait(window)
    window.viewer.set_batch_item(1)
    assert window.viewer.batch_item == 1
    dlg = window.open_export("contact_sheet")
    assert dlg.option_widgets[("contact_sheet", "item")].value() == 1
    assert dlg.options()["item"] == 1
    dlg.reject()


def test_settings_comfyui_folder_takes_a_desktop_user_folder(qtbot, window, monkeypatch, tmp_path):
    from PySide6.QtWidgets import QFileDialog

    user = tmp_path / "ComfyUI"
    for name in ("input", "output", "models/checkpoints", "user", "custom_nodes"):
        (user / name).mkdir(parents=True)
    shown = []
    monkeypatch.setattr(window, "show_error", lambda title, text: shown.append(text))
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda *a, **k: str(tmp_path)))
    window.choose_comfy_folder()  # a plain folder is refused, with what is accepted
    assert shown and "Desktop's user folder" in shown[0] and window.settings.comfy_root == ""
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda *a, **k: str(user)))
    window.choose_comfy_folder()
    assert window.settings.comfy_root == str(user) and len(shown) == 1
    assert window.settings.folder("checkpoint") == str(user / "models" / "checkpoints")


def test_the_checkpoint_is_remembered_and_restored(qtbot, window, settings, tmp_path):
    import ckpt_factory as cf

    path = tmp_path / "my_sdxl.safetensors"
    cf.write_safetensors(path, cf.minimal_entries("SDXL"))
    with qtbot.waitSignal(window.panel.modelChanged, timeout=WAIT_MS):
        window.panel.open_checkpoint(str(path))
    assert settings.last_file("checkpoint") == str(path) and str(path) in settings.recent_files()
    window.close()
    from unsampler_gui.qt.app import build_window, parse_args
    win2 = build_window(parse_args([]), settings)
    qtbot.addWidget(win2)
    qtbot.waitUntil(lambda: win2.panel.model_source() == str(path), timeout=WAIT_MS)
    assert win2.panel.family_name() == "SDXL"
    win2.panel.set_family("SD15")  # a built-in family chosen by hand: nothing to restore next time
    assert settings.last_file("checkpoint") == ""
    win2.close()
