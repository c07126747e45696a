"""A run parameter is added in one place: a fake one, added to ``RunParams`` alone, shows up in the form,
in ``params()`` and restore, in the settings, in the export metadata and on the command line."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from PySide6.QtWidgets import QFormLayout, QSpinBox
from safetensors import safe_open

from unsampler_gui import cli, core
from unsampler_gui.core import params

WAIT_MS = 30000


@pytest.fixture
def grain(monkeypatch):
    """``RunParams`` with one more field, ``grain``, as a developer would add it."""
    field = params.param(3, "Grain", range=(0, 9), help="a parameter only this test knows")
    fake = dataclasses.make_dataclass("RunParams", [("grain", int, field)], bases=(params.RunParams,), frozen=True)
    monkeypatch.setattr(params, "RunParams", fake)
    return fake


def _meta(path) -> dict:
    with safe_open(str(path), "pt") as f:
        return json.loads(f.metadata()["unsampler"])


def _window(qtbot, settings):
    from unsampler_gui.qt.main_window import MainWindow

    win = MainWindow(settings)
    qtbot.addWidget(win)
    return win


def test_a_new_parameter_is_everywhere(grain, qtbot, settings, tmp_path):
    win = _window(qtbot, settings)
    panel = win.panel
    # the form has its row, with its label, range, default and help
    spin = panel.widget("grain")
    assert isinstance(spin, QSpinBox) and (spin.minimum(), spin.maximum(), spin.value()) == (0, 9, 3)
    assert spin.toolTip() == "a parameter only this test knows"
    form = spin.parentWidget().layout()
    assert isinstance(form, QFormLayout)
    label = form.labelForField(spin)
    assert label is not None and label.text() == "Grain"
    # params() and set_params
    assert panel.params()["grain"] == 3 and panel.run_params().grain == 3
    panel.set_params({"grain": 7}, family=False)
    assert spin.value() == 7 and panel.params()["grain"] == 7
    spin.setValue(6)  # the user's edit reaches the parameters
    assert panel.run_params().grain == 6
    panel.set_params({"grain": 12})  # out of its range: skipped
    assert panel.run_params().grain == 6

    # the export metadata: a run made from the form writes it
    src = tmp_path / "in.latent"
    core.write_latent(src, torch.randn(1, 4, 8, 8))
    with qtbot.waitSignal(panel.latentChanged, timeout=WAIT_MS):
        panel.open_latent(str(src))
    panel.set_params({"steps": 4}, family=False)
    out = tmp_path / "grain.latent"
    core.run_unsample(panel.spec(), output=str(out))
    assert _meta(out)["grain"] == 6

    # settings: the next window starts with it
    win.close()
    win2 = _window(qtbot, settings)
    assert win2.panel.run_params().grain == 6

    # restore: opening the export browses its frames (the form untouched); using it as the input puts it back
    win2.panel.set_params({"grain": 1}, family=False)
    with qtbot.waitSignal(win2.browser.browsingChanged, timeout=WAIT_MS):
        win2.panel.open_latent(str(out))
    assert win2.store.browsing and win2.panel.run_params().grain == 1
    with qtbot.waitSignal(win2.panel.latentChanged, timeout=WAIT_MS):
        win2.browse_bar.input_button.click()
    assert win2.panel.run_params().grain == 6
    win2.close()


def test_a_new_parameter_is_a_cli_option(grain, tmp_path, capsys):
    args = cli.build_parser().parse_args(["run", "--model", "SD15", "--latent", "x", "-o", "y"])
    assert args.grain == 3  # the field's default
    src = tmp_path / "in.latent"
    core.write_latent(src, torch.randn(1, 4, 8, 8))
    out = tmp_path / "out.latent"
    assert cli.main(["run", "--model", "SD15", "--latent", str(src), "--steps", "3", "--grain", "5",
                     "-o", str(out)]) == 0
    assert _meta(out)["grain"] == 5
    assert cli.main(["run", "--model", "SD15", "--latent", str(src), "--steps", "3", "--grain", "12",
                     "-o", str(tmp_path / "no.latent")]) == 2
    assert "grain must be between 0 and 9" in capsys.readouterr().err
    assert not (tmp_path / "no.latent").exists()
