"""The window opens on the embedded default (SD15 + the bundled sample) and follows the form."""
from __future__ import annotations

import torch
from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QDropEvent

from support import WAIT_MS
from unsampler_gui import core
from unsampler_gui.qt import SAMPLE_LABEL


def test_opens_on_sd15_and_sample(window):
    p = window.panel.params()
    assert p["family"] == "SD15"
    assert (p["steps"], p["start_at_step"], p["end_at_step"]) == (10000, 0, 10000)
    assert p["sampler"] == core.sampler_names()[0] and p["scheduler"] in core.scheduler_names()
    lat = window.panel.latent()
    assert lat.is_sample and lat.shape == (1, 4, 64, 64)
    assert SAMPLE_LABEL.split(" (")[0] in window.panel.latent_info.text()
    assert window.windowTitle() == "sample.latent — Unsampler"
    spec = window.panel.spec()
    assert isinstance(spec, core.UnsampleSpec) and spec.family.name == "SD15" and spec.steps == 10000
    assert spec.source_name == "sample.latent" and len(spec.source_sha256) == 64
    # the schedule is drawn with no run
    d = window.plot.data()
    assert d.n_frames == 10000 and not window.is_running() and window.result() is None


def test_estimate_line(window, qtbot):
    qtbot.waitUntil(lambda: window.panel.estimate() is not None, timeout=WAIT_MS)
    est = window.panel.estimate()
    assert est.n_frames == 10000 and est.out_bytes == 10000 * 4 * 4 * 64 * 64
    assert "10000 latents" in window.panel.estimate_label.text()


def test_cuda_item_follows_availability(window):
    device = window.panel.widget("device")
    item = device.model().item(device.findData("cuda"))
    assert item.isEnabled() == core.devices.cuda_available()


def test_overrides_apply_to_spec(window, qtbot):
    panel = window.panel
    panel.set_params({"family": "Flux", "overrides": True, "shift": 3.0})
    fam = panel.effective_family()
    assert fam.name == "Flux" and fam.sampling.shift == 3.0
    # the sample is 4-channel: a Flux spec is refused with a clear message, not a crash
    qtbot.waitUntil(lambda: "Flux" in panel.estimate_label.toolTip(), timeout=WAIT_MS)
    assert "16 channels" in panel.estimate_label.toolTip() and "cannot run" in panel.estimate_label.text()


def test_empty_slice_is_a_message(window, qtbot):
    window.panel.set_params({"steps": 20, "start_at_step": 30, "end_at_step": 40}, family=False)
    qtbot.waitUntil(lambda: "nothing to do" in window.panel.estimate_label.text(), timeout=WAIT_MS)
    shown = []
    window.show_error = lambda title, text: shown.append(text)
    assert not window.start_run()
    assert shown and "nothing to do" in shown[0] and not window.is_running()


def test_drop_a_latent(window, qtbot, tmp_path):
    path = tmp_path / "dropped.latent"
    core.write_latent(path, torch.zeros(2, 4, 8, 8))
    md = QMimeData()
    md.setUrls([QUrl.fromLocalFile(str(path))])
    ev = QDropEvent(QPoint(10, 10).toPointF(), Qt.DropAction.CopyAction, md, Qt.MouseButton.NoButton,
                    Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(window.panel.latentChanged, timeout=WAIT_MS):
        window.dropEvent(ev)
    assert window.panel.latent().shape == (2, 4, 8, 8)
    assert window.windowTitle() == "dropped.latent — Unsampler"


def test_bad_latent_is_a_message(window, qtbot, tmp_path):
    bad = tmp_path / "bad.latent"
    bad.write_bytes(b"not a safetensors file at all")
    with qtbot.waitSignal(window.panel.error, timeout=WAIT_MS) as sig:
        window.panel.open_latent(str(bad))
    title, text = sig.args
    assert "Traceback" not in text and text
    assert window.panel.latent().is_sample  # the previous latent is kept


def _open(window, qtbot, path):
    with qtbot.waitSignal(window.panel.latentChanged, timeout=WAIT_MS):
        window.panel.open_latent(str(path))


def test_a_latent_never_switches_the_family_silently(window, qtbot, tmp_path, settings):
    """A 16-channel latent on SD1.5: the family stays, the mismatch shows beside the latent with the families
    that take it; the user's choice is used, remembered (in the settings too) and used for the next one."""
    from unsampler_gui.qt.main_window import MainWindow
    path = tmp_path / "flux.latent"
    core.write_latent(path, torch.zeros(1, 16, 8, 8))
    panel = window.panel
    assert "fits" in panel.fit_label.text() and not panel.fit_row.isVisible()
    _open(window, qtbot, path)
    assert panel.family_name() == "SD15"
    assert "does not fit" in panel.fit_label.text() and panel.fit_row.isVisible()
    offered = [panel.fit_choice.itemData(i) for i in range(panel.fit_choice.count())]
    assert "Flux" in offered and "SD3" in offered
    panel.fit_choice.setCurrentIndex(offered.index("Flux"))
    panel.fit_button.click()
    assert panel.family_name() == "Flux" and not panel.fit_row.isVisible() and "fits" in panel.fit_label.text()
    assert settings.family_choices() == {"16ch-4d": "Flux"}
    # a new window on SD1.5 takes the remembered choice for the next 16-channel latent, and says so
    window.close()
    win = MainWindow(settings)
    qtbot.addWidget(win)
    win.panel.set_family("SD15")
    with qtbot.waitSignal(win.panel.status, timeout=WAIT_MS,
                          check_params_cb=lambda t: "your last choice" in t):
        win.panel.open_latent(str(path))
    assert win.panel.family_name() == "Flux"
    win.close()


def test_a_latent_that_does_not_fit_the_checkpoint_shows_at_once(window, qtbot, tmp_path):
    import ckpt_factory as cf
    ckpt = tmp_path / "sdxl.safetensors"
    cf.write_safetensors(ckpt, cf.minimal_entries("SDXL"))
    with qtbot.waitSignal(window.panel.modelChanged, timeout=WAIT_MS):
        window.panel.open_checkpoint(str(ckpt))
    path = tmp_path / "flux.latent"
    core.write_latent(path, torch.zeros(1, 16, 8, 8))
    _open(window, qtbot, path)
    panel = window.panel
    assert panel.family_name() == "SDXL" and panel.model_source() == str(ckpt)
    assert "checkpoint" in panel.fit_label.text() and "does not fit" in panel.fit_label.text()
    assert panel.fit_row.isVisible()


def test_settings_remember_parameters(qtbot, settings):
    from unsampler_gui.qt.main_window import MainWindow
    win = MainWindow(settings)
    qtbot.addWidget(win)
    win.panel.set_params({"sampler": "dpm_2", "scheduler": "karras", "steps": 33, "seed": 7}, family=False)
    win.close()
    win2 = MainWindow(settings)
    qtbot.addWidget(win2)
    p = win2.panel.params()
    assert (p["sampler"], p["scheduler"], p["steps"], p["seed"]) == ("dpm_2", "karras", 33, 7)
    win2.close()


def test_grid_follows_the_viewer_display(window):
    """Choosing a channel in the viewer makes the thumbnails show that channel too."""
    window.viewer.displayChanged.emit(2, "auto")
    s = window.grid.thumbnail_model().settings
    assert s.mode == 2 and s.contrast == "auto"
