"""Browse a batch file in the window: an export opened is looked at frame by frame (read from the file), its stored
parameters on the bar, the form greyed; "Use as the input" and "Back to noising" switch back; a foreign batch is
the input, with its frames a click away; a truncated file is a message."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from support import WAIT_MS
from unsampler_gui import core
from unsampler_gui.core.batch_file import BatchSequence
from unsampler_gui.core.latent_io import read_latent
from unsampler_gui.qt.frame_viewer import render_frame
from unsampler_gui.qt.thumbnail_model import ReadyRole


def _bits(t):
    return t.contiguous().view(torch.int32)


def _browsing(qtbot, win):
    qtbot.waitUntil(lambda: win.store.browsing and isinstance(win.store.sequence, BatchSequence), timeout=WAIT_MS)
    return win.store.sequence


def _noising(qtbot, win):
    qtbot.waitUntil(lambda: not win.store.browsing and win.store.sequence is not None
                    and win.store.sequence_inputs == win.session.inputs(), timeout=WAIT_MS)
    return win.store.sequence


@pytest.fixture
def export30(window, qtbot, set_steps, tmp_path):
    """An export of the form's 30-step run of a 2-item latent (written by the core, as File > Export does)."""
    two = tmp_path / "two.latent"
    core.write_latent(two, torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(3)))
    with qtbot.waitSignal(window.panel.latentChanged, timeout=WAIT_MS):
        window.panel.open_latent(str(two), as_input=True)
    window.panel.set_params({"seed": 77, "scheduler": "karras"}, family=False)
    set_steps(window, 30)
    window.panel.set_params({"start_at_step": 1}, family=False)
    live = _noising(qtbot, window)
    assert live.n_frames == 29
    path = tmp_path / "run30.latent"
    core.run_unsample(window.panel.spec(), output=str(path), max_memory=1 << 30)
    return path, live


def test_an_export_is_browsed_frame_by_frame_from_the_file(window, qtbot, export30, monkeypatch):
    path, live = export30
    params_before = window.panel.params()
    window.open_file(str(path))
    seq = _browsing(qtbot, window)
    st = window.store
    assert seq.n_frames == st.n_steps == 29 and st.batch == 2 and seq.cache.max_bytes == st.cache_bytes
    stored = read_latent(path).tensor
    for i in (28, 0, 11):
        for b in (0, 1):
            assert torch.equal(_bits(st.frame(i, b)), _bits(stored[i * 2 + b]))
            assert torch.equal(_bits(st.frame(i, b)), _bits(live.frame(i, b)))  # the frame the app showed
        want = render_frame(stored[i * 2], st.family, window.viewer.mode, window.viewer.contrast, 0)
        window.viewer.select_frame(i)
        qtbot.waitUntil(lambda: window.viewer.shown is not None and window.viewer.shown.step == i, timeout=WAIT_MS)
        np.testing.assert_array_equal(window.viewer.last_render["image"], want["image"])
    assert st.sigma(5) == pytest.approx(live.sigma(5)) and st.schedule_step(5) == live.schedule_step(5)
    # the stored parameters on the bar; the form greyed and untouched; the plot shows the stored schedule
    bar = window.browse_bar.label.text()
    assert "Browsing run30.latent: 29 frames × 2 latents" in bar
    for part in ("model SD15", "scheduler karras", "steps 30", "start 1", "seed 77", "noise independent",
                 "sigma per frame stored"):
        assert part in bar
    assert not window.inputs_dock.widget().isEnabled() and not window.run_action.isEnabled()
    assert window.panel.params() == params_before
    qtbot.waitUntil(lambda: window.plot.data() is not None and window.plot.data().n_frames == 29, timeout=WAIT_MS)
    # the grid's thumbnails and the statistics come from the file
    model = window.grid.thumbnail_model()
    window.grid.viewport().update()
    rows = window.grid.visible_rows()
    assert len(rows) > 0
    qtbot.waitUntil(lambda: all(model.index(r).data(ReadyRole) for r in rows), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: st.stats.count == 29, timeout=WAIT_MS)
    assert st.stats.series("mean", 1)[7] == pytest.approx(float(stored[15].double().mean()))
    assert seq.cache.bytes <= seq.cache.max_bytes and seq.max_read <= seq.read_bytes
    # back to noising: the form's frames again
    window.browse_bar.back_button.click()
    assert _noising(qtbot, window).n_frames == 29 and window.inputs_dock.widget().isEnabled()
    assert window.run_action.isEnabled() and not window.browse_bar.isVisible()


def test_use_as_the_input_and_browse_again(window, qtbot, export30):
    path, _ = export30
    window.open_file(str(path))
    _browsing(qtbot, window)
    with qtbot.waitSignal(window.panel.latentChanged, timeout=WAIT_MS):
        window.browse_bar.input_button.click()
    assert window.session.latent.shape == (58, 4, 16, 16) and window.session.latent.path == str(path)
    seq = _noising(qtbot, window)
    assert seq.batch == 58
    assert "it is the input to noise" in window.browse_bar.label.text()
    assert window.browse_bar.browse_button.isVisible()
    window.browse_bar.browse_button.click()
    assert _browsing(qtbot, window).batch == 2
    window.panel.set_params({"steps": 12}, family=False)  # a change of the form: back to noising
    assert _noising(qtbot, window).n_frames == 11 and window.session.latent.path == str(path)  # start 1


def test_a_foreign_batch_is_the_input_and_can_be_browsed(window, qtbot, tmp_path):
    path = tmp_path / "four.latent"
    x = torch.randn(4, 4, 16, 16)
    core.write_latent(path, x)
    with qtbot.waitSignal(window.panel.latentChanged, timeout=WAIT_MS):
        window.open_file(str(path))
    assert window.session.latent.shape == (4, 4, 16, 16)
    assert window.browse_bar.browse_button.isVisible()
    window.browse_bar.browse_button.click()
    seq = _browsing(qtbot, window)
    assert seq.n_frames == 4 and seq.batch == 1 and torch.equal(window.store.frame(3, 0), x[3])
    assert "no stored parameters" in window.browse_bar.label.text()
    window.viewer.select_frame(2)
    qtbot.waitUntil(lambda: window.viewer.shown is not None and window.viewer.shown.step == 2, timeout=WAIT_MS)
    assert "\u03c3 n/a" in window.viewer.step_label.text()  # no stored sigma: said so, not "nan"
    assert window.grid.thumbnail_model().caption(0) == ("frame 0", "\u03c3 n/a")
    with pytest.raises(core.BadParameterError, match="stores no sigmas"):
        seq.frame_at_sigma(1.0)
    with pytest.raises(core.BadParameterError, match="no stored sigmas; give a frame number"):
        window.grid.frame_for("\u03c3 3")
    assert window.grid.frame_for("3") == 3
    # the sigma plot draws no schedule (the form's would not be this file's), and says why
    assert window.plot.data() is None and len(window.plot.full_curve.getData()[0] or ()) == 0
    assert "four.latent stores no parameters" in window.plot.readout.text()
    window.browse_bar.back_button.click()  # back to noising: the form's schedule again
    qtbot.waitUntil(lambda: window.plot.data() is not None, timeout=WAIT_MS)


def test_a_truncated_batch_file_is_a_message_and_changes_nothing(window, qtbot, export30, tmp_path, monkeypatch):
    from unsampler_gui.qt import errors

    shown = []
    monkeypatch.setattr(errors, "show_error", lambda parent, title, text: shown.append(text))
    path, _ = export30
    data = path.read_bytes()
    cut = tmp_path / "cut.latent"
    cut.write_bytes(data[:len(data) // 2])
    before = window.session.inputs()
    window.open_file(str(cut))
    qtbot.waitUntil(lambda: bool(shown), timeout=WAIT_MS)
    assert "truncated" in shown[-1] and "cut.latent" in shown[-1]
    assert not window.store.browsing and window.session.inputs() == before


def test_the_frames_shown_of_a_browsed_file_are_exported(window, qtbot, export30, tmp_path):
    path, _ = export30
    window.open_file(str(path))
    seq = _browsing(qtbot, window)
    assert window.browse_bar.export_button.isVisible()
    assert not any(a.isEnabled() for a in window.export_actions.values())  # the registry's: the form's frames
    window.grid_pane.stride_spin.setValue(4)
    out = tmp_path / "every4.latent"
    with qtbot.waitSignal(window.browser._exporter.finished, timeout=WAIT_MS):
        assert window.browser.export_shown(str(out))
    assert window.status_label.text() == f"saved {out}"
    stored = read_latent(path).tensor
    want = torch.cat([stored[i * 2:(i + 1) * 2] for i in range(0, 29, 4)])
    assert torch.equal(_bits(read_latent(out).tensor), _bits(want))
    assert read_latent(out).unsampler["frames"] == list(range(0, 29, 4))
    assert seq is window.store.sequence and window.store.browsing  # still browsing
    window.browse_bar.back_button.click()
    assert all(a.isEnabled() for a in window.export_actions.values())
