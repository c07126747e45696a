"""Run makes the frames; exports read back with safetensors and carry the marker and metadata."""
from __future__ import annotations

import json
import os

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from support import WAIT_MS
from unsampler_gui import core
from unsampler_gui.core.exports import ANIMATION, COMFYUI, LATENT, SHEET, SIGMAS_JSON, SIGMAS_TEXT


def _export(win, qtbot, kind, path=None, **setup):
    dlg = win.open_export(kind)
    qtbot.addWidget(dlg)
    if path is not None:
        dlg.path.setText(str(path))
    for name, value in setup.items():
        getattr(dlg, name).setValue(value) if hasattr(getattr(dlg, name), "setValue") else \
            getattr(dlg, name).setChecked(value)
    with qtbot.waitSignal(dlg.worker.finished, timeout=WAIT_MS):
        assert dlg.start_export(), dlg.status_label.text()
    return dlg


def test_run_produces_frames_and_export(window, qtbot, tmp_path, set_steps, run_and_wait):
    set_steps(window, 20)
    res = run_and_wait(window)
    assert res is not None and tuple(res.latent.shape) == (20, 4, 64, 64)
    assert not window.is_running() and window.result_is_current()
    assert window.panel.run_button.text() == "Run"
    want = core.run_unsample(window.panel.spec())
    assert torch.equal(res.latent, want.latent)  # the GUI's run is the core's run, bit for bit
    qtbot.waitUntil(lambda: window.store.sequence_inputs == window.session.inputs(), timeout=WAIT_MS)
    assert window.store.n_steps == 20 and window.store.available == 20 and window.store.is_finished
    assert torch.equal(window.store.frame(7), res.latent[7])

    out = tmp_path / "all.latent"
    dlg = _export(window, qtbot, LATENT, out)
    assert dlg.last_path == str(out)
    tensors = load_file(str(out))
    assert "latent_format_version_0" in tensors
    assert torch.equal(tensors["latent_tensor"], res.latent)
    with safe_open(str(out), "pt") as f:
        meta = json.loads(f.metadata()["unsampler"])
    assert meta["steps"] == 20 and meta["family"] == "SD15" and len(meta["sigmas"]) == 20
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".partial")]


def test_export_range_every_reversed(window, qtbot, tmp_path, set_steps, run_and_wait):
    set_steps(window, 20)
    res = run_and_wait(window)
    out = tmp_path / "part.latent"
    dlg = window.open_export(LATENT)
    qtbot.addWidget(dlg)
    dlg.path.setText(str(out))
    dlg.first.setValue(2)
    dlg.last.setValue(11)
    dlg.every.setValue(3)
    dlg.reversed.setChecked(True)
    assert dlg.positions() == [11, 8, 5, 2]
    with qtbot.waitSignal(dlg.worker.finished, timeout=WAIT_MS):
        assert dlg.start_export()
    t = load_file(str(out))["latent_tensor"]
    assert torch.equal(t, res.latent[[11, 8, 5, 2]])
    # the file exists now: a second export asks first, and a "no" keeps it
    asked = []
    dlg.confirm_overwrite = lambda p: asked.append(p) or False
    assert not dlg.start_export()
    assert asked == [str(out)]
    dlg.confirm_overwrite = lambda p: True
    dlg.first.setValue(0)
    with qtbot.waitSignal(dlg.worker.finished, timeout=WAIT_MS):
        assert dlg.start_export()
    assert load_file(str(out))["latent_tensor"].shape[0] == 4  # 11, 8, 5, 2 (0 is not on the every-3 grid from 11)
    dlg.close()


def test_export_without_run_streams(window, qtbot, tmp_path, set_steps):
    set_steps(window, 12)
    assert window.result() is None
    out = tmp_path / "streamed.latent"
    _export(window, qtbot, LATENT, out)
    t = load_file(str(out))
    want = core.run_unsample(window.panel.spec())
    assert torch.equal(t["latent_tensor"], want.latent) and "latent_format_version_0" in t


def test_export_sigmas(window, qtbot, tmp_path, set_steps):
    set_steps(window, 10)
    _export(window, qtbot, SIGMAS_JSON, tmp_path / "s.json")
    doc = json.loads((tmp_path / "s.json").read_text())
    assert len(doc["schedule"]) == 11 and len(doc["sigmas"]) == 10
    _export(window, qtbot, SIGMAS_TEXT, tmp_path / "s.txt")
    text = (tmp_path / "s.txt").read_text()
    assert "e-" not in text and len(text.split(",")) == 11


def test_export_to_comfyui(window, qtbot, tmp_path, settings, set_steps, run_and_wait):
    comfy = tmp_path / "ComfyUI"
    (comfy / "comfy").mkdir(parents=True)
    (comfy / "main.py").write_text("")
    set_steps(window, 8)
    run_and_wait(window)
    dlg = window.open_export(COMFYUI)
    qtbot.addWidget(dlg)
    dlg.comfy_root.setText(str(comfy))
    dlg.stem.setText("astronaut")
    assert "LoadLatent" in dlg.comfy_note.text()
    with qtbot.waitSignal(dlg.worker.finished, timeout=WAIT_MS):
        assert dlg.start_export()
    written = comfy / "input" / "astronaut_00001_.latent"
    assert dlg.last_path == str(written) and written.is_file()
    assert settings.comfy_root == str(comfy)
    assert load_file(str(written))["latent_tensor"].shape == (8, 4, 64, 64)


def test_export_pictures(window, qtbot, tmp_path, set_steps, run_and_wait):
    pytest.importorskip("PIL")
    set_steps(window, 10)
    run_and_wait(window)
    _export(window, qtbot, SHEET, tmp_path / "sheet.png")
    _export(window, qtbot, ANIMATION, tmp_path / "anim.webp")
    from PIL import Image
    assert Image.open(tmp_path / "sheet.png").size[0] > 0
    assert getattr(Image.open(tmp_path / "anim.webp"), "n_frames", 1) == 10


def test_export_error_is_a_message(window, qtbot, tmp_path, set_steps, run_and_wait):
    set_steps(window, 4)
    run_and_wait(window)
    dlg = window.open_export(LATENT)
    qtbot.addWidget(dlg)
    dlg.path.setText(str(tmp_path / "no" / "such" / "folder" / "x.latent"))
    with qtbot.waitSignal(dlg.worker.finished, timeout=WAIT_MS):
        assert dlg.start_export()
    assert "does not exist" in dlg.status_label.text() and "Traceback" not in dlg.status_label.text()


def test_export_to_a_folder_that_is_not_comfyui(window, qtbot, tmp_path, set_steps, run_and_wait):
    set_steps(window, 4)
    run_and_wait(window)
    dlg = window.open_export(COMFYUI)
    qtbot.addWidget(dlg)
    dlg.comfy_root.setText(str(tmp_path))
    with qtbot.waitSignal(dlg.worker.finished, timeout=WAIT_MS):
        assert dlg.start_export()
    assert "ComfyUI" in dlg.status_label.text() and not list(tmp_path.glob("*.latent"))


def test_plots_show_the_whole_run(window, qtbot, set_steps, run_and_wait):
    """After a run, the statistics plot spans every step (not an empty plot's 0..1 view)."""
    set_steps(window, 40)
    run_and_wait(window)
    curve = window.viewer.std_curve
    qtbot.waitUntil(lambda: curve.xData is not None and len(curve.xData) == 40, timeout=10000)
    vb = window.viewer.stats_plot.getPlotItem().getViewBox()
    qtbot.waitUntil(lambda: vb.viewRange()[0][1] >= 39 and vb.viewRange()[1][1] > 10, timeout=10000)


def test_another_latent_makes_the_result_stale(window, qtbot, tmp_path, set_steps, run_and_wait):
    """Currency is the inputs, not only the form: the same parameters on another latent are not the last run."""
    set_steps(window, 6)
    run_and_wait(window)
    assert window.result_is_current()
    path = tmp_path / "other.latent"
    core.write_latent(path, torch.randn(1, 4, 64, 64))
    with qtbot.waitSignal(window.panel.latentChanged, timeout=WAIT_MS):
        window.panel.open_latent(str(path))
    assert not window.result_is_current() and window.result() is not None
    dlg = window.open_export(LATENT)
    qtbot.addWidget(dlg)
    assert dlg.source.result is None and "no finished run" in dlg.source_label.text()
    dlg.close()


def test_pictures_need_no_run(window, qtbot, tmp_path, set_steps):
    """Without a run, a picture export makes just the frames it shows (the same frames a run makes)."""
    pytest.importorskip("PIL")
    set_steps(window, 10)
    assert window.result() is None
    dlg = _export(window, qtbot, ANIMATION, tmp_path / "anim.gif")
    from PIL import Image
    assert dlg.last_path == str(tmp_path / "anim.gif") and Image.open(dlg.last_path).n_frames == 10


def test_the_dialog_is_the_registry(window, qtbot):
    from unsampler_gui.core.exports import EXPORTS

    assert set(window.export_actions) == set(EXPORTS)
    dlg = window.open_export(LATENT)
    qtbot.addWidget(dlg)
    assert [dlg.kind.itemData(i) for i in range(dlg.kind.count())] == list(EXPORTS)
    for k in EXPORTS.values():
        dlg.kind.setCurrentIndex(dlg.kind.findData(k.key))
        shown = [name for (key, name), w in dlg.option_widgets.items() if dlg._options_layout.isRowVisible(w)]
        assert shown == [o.name for o in k.options]
        assert dlg.frames_box.isVisibleTo(dlg) == k.picks_frames
        assert dlg.source_label.text() == k.source_text(dlg.source)[0]
        assert dlg.path.text().endswith(k.ext) or k.destination != "file"
    dlg.close()


def test_a_run_reuses_the_estimates_plan(window, qtbot, set_steps, run_and_wait, monkeypatch):
    """The window plans the current inputs once (for the estimate); the run takes that plan, and only a
    run whose inputs changed since plans again."""
    set_steps(window, 20)
    qtbot.waitUntil(lambda: window.session.plan() is not None, timeout=WAIT_MS)
    estimate_plan = window.session.plan()
    calls = []
    real = core.plan_unsample
    monkeypatch.setattr(core, "plan_unsample", lambda spec: calls.append(spec) or real(spec))
    res = run_and_wait(window)
    assert calls == [] and res.plan is estimate_plan
    want = real(window.panel.spec())
    assert torch.equal(res.latent, core.run_unsample(want).latent)
    spec = window.panel.spec()  # a plan of other inputs is not taken: the worker plans afresh
    other = real(spec.replace(seed=spec.seed + 1))
    with qtbot.waitSignal(window.worker.finished, timeout=WAIT_MS):
        window.worker.run(spec, plan=other)
    assert len(calls) == 1 and calls[0] is spec
