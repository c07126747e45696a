"""Model > Define family…: the form writes <config>/families/<name>.json off the GUI thread, the registry reloads,
the family list shows the new family beside the built-in ones, and its schedule is ComfyUI's."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from unsampler_gui import core
from unsampler_gui.core.families import builtin_registry, use_registry

WAIT_MS = 30000


@pytest.fixture
def config(tmp_path, monkeypatch):
    monkeypatch.setenv("UNSAMPLER_CONFIG_DIR", str(tmp_path / "config"))
    use_registry(None)
    yield tmp_path / "config"
    use_registry(None)


def _open_dialog(window, qtbot):
    from unsampler_gui.qt.family_dialog import FamilyDialog

    window.define_family_action.trigger()
    qtbot.waitUntil(lambda: bool(window.findChildren(FamilyDialog)), timeout=WAIT_MS)
    dlg = window.findChildren(FamilyDialog)[-1]
    qtbot.waitUntil(dlg.isVisible, timeout=WAIT_MS)
    return dlg


def _base(dlg, name):
    dlg.based_on.setCurrentIndex(dlg.based_on.findData(name))
    assert dlg.kind.currentData() == core.get_family(name).sampling.kind


def _save(dlg, qtbot):
    with qtbot.waitSignal(dlg.saved, timeout=WAIT_MS) as blocker:
        dlg.buttons.button(dlg.buttons.StandardButton.Save).click()
    return blocker.args


def _items(combo):
    return [(combo.itemText(i), combo.itemData(i)) for i in range(combo.count())]


def test_define_a_family_end_to_end(window, qtbot, config):
    dlg = _open_dialog(window, qtbot)
    _base(dlg, "Flux")
    dlg.name.setText("MyFlux")
    dlg.display_name.setText("My Flux finetune")
    dlg.numbers["shift"][0].setValue(2.5)
    name, path = _save(dlg, qtbot)
    assert name == "MyFlux" and path == str(config / "families" / "MyFlux.json")
    saved = json.loads((config / "families" / "MyFlux.json").read_text())
    assert saved["sampling"] == {"kind": "flux", "prediction": "CONST", "shift": 2.5}
    assert saved["latent"]["channels"] == 16 and saved["latent"]["scale_factor"] == 0.3611
    # the registry holds it, the list shows it after the built-in ones, and it is the chosen family
    fam = core.get_family("MyFlux")
    assert not fam.builtin and fam.source == path
    combo = window.panel.widget("family")
    items = _items(combo)
    assert items[-1] == ("My Flux finetune (yours)", "MyFlux")
    assert [d for _, d in items if d][:len(builtin_registry())] == [f.name for f in builtin_registry()]
    assert combo.currentData() == "MyFlux" and window.panel.base_family() == fam
    ksampler = core.ksampler_sigmas("Flux", "euler", "normal", 20)
    assert not torch.equal(core.ksampler_sigmas("MyFlux", "euler", "normal", 20), ksampler)
    want = core.ksampler_sigmas(core.get_family("Flux").with_overrides(shift=2.5), "euler", "normal", 20)
    assert torch.equal(core.ksampler_sigmas("MyFlux", "euler", "normal", 20), want)
    # the sigma plot draws the new family's schedule
    window.panel.set_params({"steps": 20, "scheduler": "normal", "sampler": "euler"})
    def drawn():
        d = window.plot.data()
        return d is not None and d.request.family.name == "MyFlux" and len(d.schedule) == len(want) and \
            bool((torch.as_tensor(d.schedule).float() == want).all())
    qtbot.waitUntil(drawn, timeout=WAIT_MS)
    status = window.status_label.text()  # "saved", or (4-channel sample latent) the mismatch that follows it
    assert "MyFlux" in status or "My Flux finetune" in status


def test_the_same_parameters_as_a_builtin_family_give_bit_identical_sigmas(window, qtbot, config):
    dlg = _open_dialog(window, qtbot)
    _base(dlg, "PlaygroundV2_5")
    dlg.name.setText("MyPlayground")
    _save(dlg, qtbot)
    mine, theirs = core.get_family("MyPlayground"), core.get_family("PlaygroundV2_5")
    assert mine.sampling == theirs.sampling and mine.latent == theirs.latent
    for scheduler in core.scheduler_names():
        a = core.ksampler_sigmas(mine, "dpm_2", scheduler, 30)
        b = core.ksampler_sigmas(theirs, "dpm_2", scheduler, 30)
        assert torch.equal(a.view(torch.int32), b.view(torch.int32)), scheduler


def test_a_family_from_the_form_fields(window, qtbot, config):
    """Kind, shift, multiplier, channels, scale and shift factor typed in: SD3's format with shift 5."""
    dlg = _open_dialog(window, qtbot)
    _base(dlg, "SD15")
    dlg.kind.setCurrentIndex(dlg.kind.findData("flow"))
    assert dlg.prediction.currentText() == "CONST" and not dlg.num_timesteps.isVisibleTo(dlg)
    dlg.numbers["shift"][0].setValue(5.0)
    dlg.numbers["multiplier"][0].setValue(1000.0)
    dlg.channels.setValue(16)
    dlg.scale_factor.setValue(1.5305)
    dlg.has_shift_factor.setChecked(True)
    dlg.shift_factor.setValue(0.0609)
    dlg.name.setText("Flow16")
    _save(dlg, qtbot)
    fam = core.get_family("flow16")
    sd3 = core.get_family("SD3")
    assert fam.latent.channels == 16 and fam.latent.rgb_factors is None and fam.model_type == "FLOW"
    assert (fam.latent.scale_factor, fam.latent.shift_factor) == (sd3.latent.scale_factor, sd3.latent.shift_factor)
    assert torch.equal(core.ksampler_sigmas(fam, "euler", "sgm_uniform", 12),
                       core.ksampler_sigmas(sd3.with_overrides(shift=5.0), "euler", "sgm_uniform", 12))


def test_a_name_that_is_taken_is_refused_in_the_form(window, qtbot, config):
    dlg = _open_dialog(window, qtbot)
    dlg.name.setText("sdxl")
    assert "already a family" in dlg.status.text()
    dlg.buttons.button(dlg.buttons.StandardButton.Save).click()
    assert not dlg.is_busy() and dlg.isVisible()
    dlg.numbers["shift"][0].setValue(1.0)
    dlg.name.setText("bad name")
    assert dlg.status.text().startswith("name:")
    assert not (config / "families").exists() or not list((config / "families").iterdir())
    dlg.reject()


def test_startup_loads_the_config_folder_and_names_a_bad_file(qtbot, config, settings, tmp_path):
    from unsampler_gui.qt import app as app_mod

    folder = config / "families"
    folder.mkdir(parents=True)
    good = dict(core.family_format.definition_of(core.get_family("SD15")), name="StartupSD", display_name="Mine")
    (folder / "good.json").write_text(json.dumps(good))
    (folder / "bad.json").write_text(json.dumps({"name": "Broken", "sampling": {"kind": "flux", "shift": 0},
                                                 "latent": {"channels": 4}}))
    win = app_mod.build_window(app_mod.parse_args([]), settings)
    qtbot.addWidget(win)
    qtbot.waitUntil(lambda: not win.panel.is_loading(), timeout=WAIT_MS)
    assert ("Mine (yours)", "StartupSD") in _items(win.panel.widget("family"))
    assert "Broken" not in core.family_names() and "SD15" in core.family_names()
    win.close()


def test_the_qt_free_config_folder_is_where_qt_keeps_the_settings(tmp_path):
    code = ("from PySide6.QtCore import QSettings; from unsampler_gui.qt.settings import ORGANIZATION, APPLICATION;"
            "from unsampler_gui.core.config_dir import config_dir; import os;"
            "q = QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANIZATION, APPLICATION);"
            "print(os.path.dirname(q.fileName())); print(config_dir())")
    env = {k: v for k, v in os.environ.items() if k != "UNSAMPLER_CONFIG_DIR"}
    env["XDG_CONFIG_HOME"] = str(tmp_path)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    qt_dir, ours = out.stdout.split()
    assert qt_dir == ours == str(tmp_path / "Unsampler")


@pytest.mark.parametrize("name", ["CogVideoX_5B", "MiniMaxH3"])
def test_new_builtin_kinds_in_the_panel(window, qtbot, name):
    """CogVideoX's V_PREDICTION_DDPM is offered as its own prediction; ModelSamplingAV's shift can be overridden."""
    panel = window.panel
    assert panel.set_family(name)
    fam = core.get_family(name)
    assert panel.widget("prediction").currentData() == fam.sampling.prediction
    panel.advanced.setChecked(True)
    assert panel.effective_family().sampling == fam.sampling
    assert panel.widget("shift").isEnabled() == fam.sampling.has_shift
    panel.advanced.setChecked(False)
