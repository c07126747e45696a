"""The live sequence in the window: the frames shown follow the form with no Run, equal the exported frames,
fill their statistics, stay within the budget, and are browsed with a stride and jumps."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from support import WAIT_MS
from unsampler_gui import core
from unsampler_gui.core import session as session_mod
from unsampler_gui.core.stats import frame_stats
from unsampler_gui.qt.frame_viewer import render_frame
from unsampler_gui.qt.thumbnail_model import FrameRole, ReadyRole


def _current(qtbot, win):
    qtbot.waitUntil(lambda: win.store.sequence is not None and win.store.sequence_inputs == win.session.inputs(),
                    timeout=WAIT_MS)
    return win.store.sequence


def _shown(qtbot, viewer, frame):
    viewer.select_frame(frame)
    qtbot.waitUntil(lambda: viewer.shown is not None and viewer.shown == viewer.wanted and viewer.shown.step == frame,
                    timeout=WAIT_MS)
    return viewer.last_render


@pytest.mark.parametrize("noise", ["independent", "trajectory"])
def test_the_form_is_what_is_shown_without_a_run(window, qtbot, set_steps, noise):
    window.panel.set_params({"noise": noise, "seed": 5}, family=False)
    set_steps(window, 30)
    seq = _current(qtbot, window)
    assert window.result() is None and seq.n_frames == 30
    full = core.run_unsample(window.panel.spec()).latent  # what an export of the form makes
    st = window.store
    for i in (29, 0, 17):
        assert torch.equal(st.frame(i), full[i])
        want = render_frame(full[i], st.family, window.viewer.mode, window.viewer.contrast, 0)
        np.testing.assert_array_equal(_shown(qtbot, window.viewer, i)["image"], want["image"])
    # the statistics fill in, off the GUI thread, and equal the export's
    qtbot.waitUntil(lambda: st.stats.count == 30, timeout=WAIT_MS)
    ref = frame_stats(full)
    np.testing.assert_array_equal(st.stats.series("std"), ref.std)
    assert st.expected is not None and st.expected["std"].shape == (30, 1)
    assert window.viewer.expected_std_curve.xData is not None


def test_a_change_redraws_the_visible_thumbnails(window, qtbot, set_steps):
    set_steps(window, 12)
    _current(qtbot, window)
    grid = window.grid
    model = grid.thumbnail_model()
    grid.viewport().update()
    qtbot.waitUntil(lambda: model.index(3).data(ReadyRole), timeout=WAIT_MS)
    before = model.cache.get(3).copy()
    window.panel.set_params({"seed": 1234}, family=False)
    seq = _current(qtbot, window)
    assert seq.plan.spec.seed == 1234
    grid.viewport().update()
    qtbot.waitUntil(lambda: model.index(3).data(ReadyRole), timeout=WAIT_MS)
    assert model.cache.get(3) != before  # new noise: a new picture, with no Run


def test_stride_and_jumps_over_many_frames(window, qtbot, set_steps):
    set_steps(window, 10000)
    seq = _current(qtbot, window)
    grid, model = window.grid, window.grid.thumbnail_model()
    assert model.stride == 25 and model.row_count() == 400  # automatic: the whole sequence at a glance
    assert model.index(2).data(FrameRole) == 50
    got = []
    window.viewer.frameSelected.connect(got.append)
    window.grid_pane.goto_edit.setText("\u03c3 3.0")
    window.grid_pane.goto_edit.returnPressed.emit()
    want = int(np.argmin(np.abs(seq.sigmas - 3.0)))
    assert grid.current_frame() == want and window.viewer.current_frame() == want
    window.grid_pane.goto_edit.setText("1234")
    window.grid_pane.goto_edit.returnPressed.emit()
    assert window.viewer.current_frame() == 1234 and grid.current_frame() == 1234
    window.grid_pane.goto_edit.setText("nonsense")
    window.grid_pane.goto_edit.returnPressed.emit()
    assert "neither a frame number nor a sigma" in window.grid_pane.info.text()
    window.grid_pane.stride_spin.setValue(100)
    assert model.row_count() == 100 and grid.current_frame() == 1200
    seq_bytes = seq.cache.bytes + seq.keyframe_bytes
    assert seq_bytes <= seq.cache.max_bytes + (192 << 20)


def test_run_over_the_budget_is_refused_and_quiet_for_run_flag(window, qtbot, set_steps, monkeypatch):
    set_steps(window, 50)
    monkeypatch.setattr(session_mod, "RUN_BUDGET", 1000)
    errors = []
    window.runner.error.connect(lambda *a: errors.append(a))
    assert not window.runner.start(quiet=True)
    assert "in-memory budget" in window.status_label.text() and not errors
    assert not window.start_run() and errors  # asked by the user: also a message box
    assert _current(qtbot, window).n_frames == 50  # the frames are on screen all the same


@pytest.mark.parametrize("budget", [None, 1000])
def test_command_line_latent_model_steps_run(qtbot, tmp_path, settings, monkeypatch, budget):
    """``unsampler-gui LATENT --model M --steps N --run``: the sequence is shown; the run stays within the budget."""
    from unsampler_gui.qt import app as app_mod
    if budget is not None:
        monkeypatch.setattr(session_mod, "RUN_BUDGET", budget)
    path = tmp_path / "x.latent"
    core.write_latent(path, torch.randn(2, 4, 16, 16))
    win = app_mod.build_window(app_mod.parse_args([str(path), "--model", "SDXL", "--steps", "60", "--run"]),
                               settings)
    qtbot.addWidget(win)
    errors = []
    win.runner.error.connect(lambda *a: errors.append(a))
    win.run_when_ready()  # what main() does for --run
    seq = _current(qtbot, win)
    assert seq.n_frames == 60 and seq.batch == 2 and win.panel.family_name() == "SDXL"
    if budget is None:
        qtbot.waitUntil(lambda: win.result() is not None and not win.is_running(), timeout=WAIT_MS)
        assert torch.equal(win.result().latent[59 * 2 + 1], win.store.frame(59, 1))
    else:
        qtbot.waitUntil(lambda: "in-memory budget" in win.status_label.text(), timeout=WAIT_MS)
        assert win.result() is None and not errors
    win.close()


def test_a_batch_too_big_for_the_cache_shows_why_not_frames(window, qtbot, tmp_path, set_steps):
    """A big batch opened as the input (say an export): its frames would not fit the cache; the window says so."""
    set_steps(window, 10)
    _current(qtbot, window)
    window.store.cache_bytes = 10 * 4 * 4 * 64 * 64  # room for 5 latents of [4, 64, 64] a frame, at most
    path = tmp_path / "batch.latent"
    core.write_latent(path, torch.randn(6, 4, 64, 64))
    failed = []
    window.store.sequenceFailed.connect(failed.append)
    with qtbot.waitSignal(window.panel.latentChanged, timeout=WAIT_MS):
        window.panel.open_latent(str(path), as_input=True)  # as the input (else it is browsed)
    qtbot.waitUntil(lambda: bool(failed), timeout=WAIT_MS)
    assert "6 latents" in failed[-1] and window.store.sequence is None and window.store.n_steps == 0
    assert "over half the frame cache" in window.status_label.text()


def test_the_frame_cache_budget_is_a_setting(qtbot, settings):
    from unsampler_gui.core.sequence import CACHE_BYTES
    from unsampler_gui.qt.main_window import MainWindow
    assert settings.frame_cache == CACHE_BYTES
    settings.frame_cache = 64 << 20
    settings.q.setValue("memory/cap_bytes", 0)
    win = MainWindow(settings)
    qtbot.addWidget(win)
    with qtbot.waitSignal(win.panel.latentChanged, timeout=WAIT_MS):
        assert win.open_sample()
    seq = _current(qtbot, win)
    assert win.store.cache_bytes == seq.cache.max_bytes == 64 << 20
    settings.q.setValue("memory/frame_cache_bytes", "lots")  # a bad value in the file: the default
    assert settings.frame_cache == CACHE_BYTES
    win.close()


def test_the_frame_cache_size_from_the_menu_applies_at_once_and_is_saved(window, qtbot, set_steps, settings):
    from unsampler_gui.qt.main_window import MainWindow
    set_steps(window, 40)
    seq = _current(qtbot, window)
    seq.frames(list(range(40)))  # 40 frames of [1, 4, 64, 64]: 2.6 MB in the cache
    assert seq.cache.bytes == 40 * seq.plan.step_bytes
    assert window.frame_cache_action.text() == "&Frame cache size…"
    window.frame_cache_action.trigger()
    dlg = window.frame_cache_dialog
    assert "MiB" in dlg.labelText() and dlg.intValue() == 256 and dlg.intMinimum() == 16
    dlg.setIntValue(16)
    dlg.accept()
    assert settings.frame_cache == 16 << 20 and window.store.cache_bytes == 16 << 20
    assert seq.cache.max_bytes == 16 << 20  # the cache shown, at once
    seq.cache.resize(seq.plan.step_bytes * 3)  # a budget under what is held: the oldest frames go at once
    assert seq.cache.bytes == 3 * seq.plan.step_bytes and len(seq.cache) == 3  # (the views touch frames too)
    window.panel.set_params({"seed": 99}, family=False)  # the next sequence has the new budget
    qtbot.waitUntil(lambda: window.store.sequence is not seq and window.store.sequence is not None, timeout=WAIT_MS)
    assert window.store.sequence.cache.max_bytes == 16 << 20
    window.set_frame_cache(1)  # below the least: the least
    assert settings.frame_cache == 16 << 20
    again = MainWindow(settings)  # saved: a new window starts with it
    qtbot.addWidget(again)
    assert again.store.cache_bytes == 16 << 20
    again.close()
