"""Bad latents in the window: NaN/Inf asks first, broken files are a message, never a traceback."""
from __future__ import annotations

import torch

from support import WAIT_MS
from unsampler_gui.core.latent_io import write_latent


def _nan_latent(tmp_path):
    x = torch.randn(1, 4, 8, 8)
    x[0, 1, 2, 3] = float("nan")
    x[0, 2, 0, 0] = float("inf")
    p = tmp_path / "nan.latent"
    write_latent(p, x)
    return p


def test_nan_latent_refused_when_the_user_says_no(window, qtbot, tmp_path, monkeypatch):
    asked = []
    monkeypatch.setattr(window.panel, "confirm_nonfinite", lambda text: asked.append(text) or False)
    before = window.panel.latent()
    window.panel.open_latent(str(_nan_latent(tmp_path)))
    qtbot.waitUntil(lambda: bool(asked), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: not window.panel.is_loading(), timeout=WAIT_MS)
    assert "2 NaN/Inf values" in asked[0]
    assert window.panel.latent() is before  # nothing changed


def test_nan_latent_zeroed_when_the_user_agrees(window, qtbot, tmp_path, monkeypatch):
    monkeypatch.setattr(window.panel, "confirm_nonfinite", lambda text: True)
    with qtbot.waitSignal(window.panel.latentChanged, timeout=WAIT_MS):
        window.panel.open_latent(str(_nan_latent(tmp_path)))
    t = window.panel.latent().tensor
    assert torch.isfinite(t).all() and t[0, 1, 2, 3] == 0 and t[0, 2, 0, 0] == 0


def test_corrupt_latent_is_a_message(window, qtbot, tmp_path, monkeypatch):
    shown = []
    from unsampler_gui.qt import errors

    monkeypatch.setattr(errors, "show_error", lambda parent, title, text: shown.append(text))
    p = tmp_path / "broken.latent"
    p.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    window.panel.open_latent(str(p))
    qtbot.waitUntil(lambda: bool(shown), timeout=WAIT_MS)
    assert "broken.latent" in shown[0] and "Traceback" not in shown[0]


def test_about_names_versions_and_licences(window):
    from unsampler_gui.qt.about import about_html

    html = about_html()
    for word in ("Unsampler", "torch", "CUDA", "Qt", "PySide6", "LGPL", "MIT"):
        assert word in html


def test_opening_an_export_restores_its_parameters(window, qtbot, tmp_path):
    from unsampler_gui import core
    from unsampler_gui.core.export import export_latent

    spec = core.UnsampleSpec(family=core.get_family("SDXL"), latent=torch.randn(1, 4, 8, 8), sampler="dpm_2",
                             scheduler="karras", steps=30, start_at_step=3, end_at_step=20, seed=77,
                             noise="trajectory", formula="legacy", normalize=True)
    path = export_latent(core.run_unsample(spec), tmp_path / "export.latent")
    # an export holds a batch (17 frames): it is browsed first, its parameters on the bar
    with qtbot.waitSignal(window.browser.browsingChanged, timeout=WAIT_MS):
        window.panel.open_latent(str(path))
    assert "sampler dpm_2, scheduler karras, steps 30, start 3, end 20, seed 77" in window.browse_bar.label.text()
    with qtbot.waitSignal(window.panel.latentChanged, timeout=WAIT_MS):
        window.browse_bar.input_button.click()  # as the input: its parameters come back to the form
    p = window.panel.params()
    assert window.panel.family_name() == "SDXL"
    assert (p["sampler"], p["scheduler"], p["steps"], p["start_at_step"], p["end_at_step"], p["seed"],
            p["noise"], p["formula"], p["normalize"]) == ("dpm_2", "karras", 30, 3, 20, 77, "trajectory", "legacy",
                                                         True)
