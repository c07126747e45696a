"""Cancel and close during a run: a consistent state, no thread left, no partial file."""
from __future__ import annotations

import os
import threading

import pytest
import torch

from support import WAIT_MS
from unsampler_gui import core
from unsampler_gui.core import unsample as unsample_mod
from unsampler_gui.qt import worker as worker_mod


@pytest.fixture
def slow_run(monkeypatch):
    """Make every run hold after its first chunk until it is cancelled (so "mid-run" is certain)."""
    real = core.run_unsample
    held = threading.Event()

    class Holding(core.Reporter):
        def __init__(self, rep):
            self.rep = rep

        def is_cancelled(self):
            return self.rep.is_cancelled()

        def progress(self, done, total):
            self.rep.progress(done, total)
            held.set()
            for _ in range(1000):
                if self.rep.is_cancelled():
                    break
                threading.Event().wait(0.01)

        def partial(self, start, stop, frames):
            self.rep.partial(start, stop, frames)

        def message(self, text):
            self.rep.message(text)

    def run(job, reporter=None, **kw):  # the worker hands in its plan; this re-plans with small chunks
        spec = job.spec if isinstance(job, core.Plan) else job
        return real(spec.replace(chunk_frames=4), Holding(reporter), **kw)

    monkeypatch.setattr(worker_mod.core, "run_unsample", run)  # the window's runs
    monkeypatch.setattr(unsample_mod, "run_unsample", run)  # the exports' runs (core.exports)
    return held


def test_cancel_mid_run_leaves_consistent_state(window, qtbot, slow_run, set_steps, run_and_wait, monkeypatch):
    set_steps(window, 40)
    with qtbot.waitSignal(window.worker.progress, timeout=WAIT_MS):
        assert window.start_run()
    assert window.is_running() and window.panel.run_button.text() == "Cancel"
    with qtbot.waitSignal(window.runFinished, timeout=WAIT_MS):
        window.panel.run_button.click()  # Run became Cancel
    assert not window.is_running() and window.result() is None
    assert "cancelled" in window.status_label.text()
    assert window.panel.run_button.text() == "Run" and not window.progress.isVisible()
    # nothing is lost: the frames on screen are the live sequence of the form, which needs no run
    qtbot.waitUntil(lambda: window.store.sequence_inputs == window.session.inputs(), timeout=WAIT_MS)
    assert window.store.n_steps == 40 and window.store.available == 40
    monkeypatch.undo()
    full = core.run_unsample(window.panel.spec()).latent
    assert torch.equal(window.store.frame(39), full[39])
    # and the next run works
    set_steps(window, 8)
    res = run_and_wait(window)
    assert res.latent.shape[0] == 8 and window.result() is res
    qtbot.waitUntil(lambda: window.store.sequence_inputs == window.session.inputs(), timeout=WAIT_MS)
    assert window.store.n_steps == 8 and torch.equal(window.store.frame(5), res.latent[5])


def test_new_run_supersedes_old(window, qtbot, slow_run, set_steps):
    set_steps(window, 40)
    with qtbot.waitSignal(window.worker.progress, timeout=WAIT_MS):
        window.start_run()
    first_job = window.worker.job_id
    set_steps(window, 8)
    results = []
    window.worker.result.connect(results.append)
    # the second run also holds after its first chunk; cancel it once it is there
    with qtbot.waitSignal(window.worker.progress, timeout=WAIT_MS):
        window.start_run()
    assert window.worker.job_id == first_job + 1
    with qtbot.waitSignal(window.runFinished, timeout=WAIT_MS):
        window.cancel_run()
    assert results == []  # nothing of the superseded run came through
    qtbot.waitUntil(window.worker.is_idle, timeout=WAIT_MS)  # the superseded job stopped too


def test_close_during_run_leaves_no_thread(qtbot, settings, slow_run, set_steps):
    from unsampler_gui.qt.main_window import MainWindow
    win = MainWindow(settings)
    qtbot.addWidget(win)
    with qtbot.waitSignal(win.panel.latentChanged, timeout=WAIT_MS):
        win.open_sample()
    set_steps(win, 40)
    with qtbot.waitSignal(win.worker.progress, timeout=WAIT_MS):
        win.start_run()
    assert win.is_running()
    win.close()
    assert win.worker.is_idle() and not win.worker.is_running()


def test_close_during_streamed_export_leaves_no_file(window, qtbot, tmp_path, slow_run, set_steps):
    from unsampler_gui.core.exports import LATENT
    set_steps(window, 40)
    dlg = window.open_export(LATENT)
    qtbot.addWidget(dlg)
    out = tmp_path / "never.latent"
    dlg.path.setText(str(out))
    with qtbot.waitSignal(dlg.worker.progress, timeout=WAIT_MS):
        assert dlg.start_export()
    window.close()  # closes the dialog's export too
    assert dlg.worker.is_idle()
    assert os.listdir(tmp_path) == ["settings.ini"] or not [p for p in os.listdir(tmp_path)
                                                           if p.endswith((".latent", ".partial"))]
