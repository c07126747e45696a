"""Open checkpoint: the family is detected from the header (on a worker) and the panel says why."""
from __future__ import annotations

import ckpt_factory as cf
from support import WAIT_MS


def test_open_checkpoint_shows_detection(window, qtbot, tmp_path):
    path = tmp_path / "my_sdxl.safetensors"
    cf.write_safetensors(path, cf.minimal_entries("SDXL"))
    with qtbot.waitSignal(window.panel.modelChanged, timeout=WAIT_MS):
        window.panel.open_checkpoint(str(path))
    panel = window.panel
    assert panel.family_name() == "SDXL"
    info = panel.model_info.text()
    # one line; the evidence is behind the "details" toggle (and in the tooltip)
    assert "my_sdxl.safetensors" in info and "SDXL" in info and "<br>" not in info and "•" not in info
    assert panel.details_button.isVisible() and not panel.model_details.isVisible()
    assert "why" in panel.model_details.text() and "•" in panel.model_details.text()
    panel.details_button.click()
    assert panel.model_details.isVisible()
    panel.details_button.click()
    assert not panel.model_details.isVisible()
    spec = panel.spec()
    assert spec.family.name == "SDXL" and spec.model_source == str(path)
    # picking another family by hand drops the checkpoint
    panel.set_family("SD15")
    assert panel.model_source() == "SD15" and "built-in" in panel.model_info.text()
    assert not panel.details_button.isVisible() and not panel.model_details.isVisible()


def test_dropped_checkpoint_is_detected(window, qtbot, tmp_path):
    path = tmp_path / "flux-dev.safetensors"
    cf.write_safetensors(path, cf.minimal_entries("Flux"))
    with qtbot.waitSignal(window.panel.modelChanged, timeout=WAIT_MS):
        window.open_file(str(path))
    assert window.panel.family_name() == "Flux"
    assert window.panel.base_family().sampling.kind == "flux"
    # the sample (4 channels) does not fit Flux: a clear message before any run
    qtbot.waitUntil(lambda: "16 channels" in window.panel.estimate_label.toolTip(), timeout=WAIT_MS)
    assert "does not fit" in window.panel.estimate_label.text() and "does not fit" in window.panel.fit_label.text()


def test_not_a_model_is_a_message(window, qtbot, tmp_path):
    path = tmp_path / "notes.ckpt"
    path.write_bytes(b"hello")
    with qtbot.waitSignal(window.panel.error, timeout=WAIT_MS) as sig:
        window.panel.open_checkpoint(str(path))
    assert "Traceback" not in sig.args[1] and sig.args[1]
    assert window.panel.family_name() == "SD15"


def test_drop_latent_and_checkpoint_together(window, qtbot, tmp_path):
    import torch
    from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
    from PySide6.QtGui import QDropEvent

    from unsampler_gui import core
    lat = tmp_path / "sdxl_latent.latent"
    core.write_latent(lat, torch.zeros(1, 4, 16, 16))
    ckpt = tmp_path / "sdxl.safetensors"
    cf.write_safetensors(ckpt, cf.minimal_entries("SDXL"))
    md = QMimeData()
    md.setUrls([QUrl.fromLocalFile(str(lat)), QUrl.fromLocalFile(str(ckpt))])
    ev = QDropEvent(QPoint(5, 5).toPointF(), Qt.DropAction.CopyAction, md, Qt.MouseButton.NoButton,
                    Qt.KeyboardModifier.NoModifier)
    window.dropEvent(ev)
    qtbot.waitUntil(lambda: not window.panel.is_loading(), timeout=WAIT_MS)
    assert window.panel.latent().name == "sdxl_latent.latent"
    assert window.panel.family_name() == "SDXL" and window.panel.model_source() == str(ckpt)
