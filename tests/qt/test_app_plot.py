"""The sigma plot redraws as parameters change, with no run, and selects frames."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, Qt
from PySide6.QtTest import QTest

from support import WAIT_MS
from unsampler_gui import core


def _wait_plot(win, qtbot, **params):
    with qtbot.waitSignal(win.plot.updated, timeout=WAIT_MS) as sig:
        win.panel.set_params(params, family="family" in params)
    return sig.args[0]


def test_parameter_change_redraws_without_run(window, qtbot):
    before = window.plot.data()
    d = _wait_plot(window, qtbot, scheduler="karras", steps=30)
    assert not window.is_running() and window.result() is None
    assert d.request.scheduler == "karras" and len(d.schedule) == 31
    assert not np.array_equal(d.schedule, before.schedule)
    want = core.ksampler_sigmas("SD15", d.request.sampler, "karras", 30).double().numpy()
    np.testing.assert_array_equal(d.schedule, want)
    x, y = window.plot.full_curve.getData()
    np.testing.assert_array_equal(y, want)
    # the frames are the node's slice, model space, low to high
    d = _wait_plot(window, qtbot, start_at_step=5, end_at_step=20)
    np.testing.assert_array_equal(
        d.frame_sigmas, core.model_space_sigmas("SD15", d.request.sampler, "karras", 30, 5, 20).double().numpy())
    sx, sy = window.plot.slice_curve.getData()
    assert list(sx) == list(range(5, 20))


def test_beta_and_family_change(window, qtbot):
    d = _wait_plot(window, qtbot, scheduler="beta", steps=12)
    assert len(d.schedule) == len(core.ksampler_sigmas("SD15", "euler", "beta", 12))
    d = _wait_plot(window, qtbot, family="Flux")
    assert d.request.family.name == "Flux"
    assert abs(d.scale_factor - core.get_family("Flux").latent.scale_factor) < 1e-12


def test_stale_requests_are_dropped(window, qtbot):
    drawn = []
    window.plot.updated.connect(lambda d: drawn.append(d.request.steps))
    for steps in (5, 6, 7, 8, 9):
        window.panel.set_params({"steps": steps}, family=False)
    qtbot.waitUntil(lambda: not window.plot.busy(), timeout=WAIT_MS)  # the newest is drawn: nothing is left
    assert drawn == [9] and window.plot.data().request.steps == 9


def _viewport_pos(plot, x, y):
    """Where the view point (x, y) of the plot is on its widget."""
    vb = plot.plot.getPlotItem().getViewBox()
    return plot.plot.mapFromScene(vb.mapViewToScene(QPointF(x, y)))


def test_click_selects_frame_and_log_axis(window, qtbot):
    d = _wait_plot(window, qtbot, steps=20)
    plot = window.plot
    # frame 0 is the lowest sigma: schedule index e-1 = 19; the nearest frame wins, clamped to the slice
    assert [plot.frame_at(x) for x in (19.2, 18.4, 0.0, 99.0)] == [0, 1, 19, 0]
    with qtbot.waitSignal(plot.frameSelected, timeout=WAIT_MS) as sig:
        QTest.mouseClick(plot.plot.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                         _viewport_pos(plot, 19.2, float(d.schedule[19])))
    assert sig.args == [0] and plot.selected_frame() == 0
    plot.set_log_y(True)
    assert plot.plot.getPlotItem().ctrl.logYCheck.isChecked()
    plot.select_frame(5)
    mx, my = plot.marker.getData()
    assert list(mx) == [14.0]


def test_compare_overlays(window, qtbot):
    with qtbot.waitSignal(window.plot.updated, timeout=WAIT_MS) as sig:
        window.plot.set_compare(["karras", "exponential"])
    d = sig.args[0]
    assert set(d.compare) == {"karras", "exponential"} - {d.request.scheduler}
    assert set(window.plot.compare_curves) == set(d.compare)


def test_hover_readout_shows_raw_sigma(window, qtbot):
    d = _wait_plot(window, qtbot, steps=20)
    vb = window.plot.plot.getPlotItem().getViewBox()  # the view fits the new schedule when it next paints
    qtbot.waitUntil(lambda: vb.viewRange()[0][1] >= len(d.schedule) - 1, timeout=WAIT_MS)
    QTest.mouseMove(window.plot.plot.viewport(), _viewport_pos(window.plot, 15.0, float(d.schedule[15])))
    qtbot.waitUntil(lambda: "step 15" in window.plot.readout.text(), timeout=WAIT_MS)
    text = window.plot.readout.text()
    sigma = float(d.schedule[15])
    assert "step 15" in text and "frame 4" in text and f"{sigma:.6g}" in text
    assert f"raw sigma {sigma / 0.18215:.6g}" in text


def test_plot_follows_palette(window, qtbot):
    from PySide6.QtGui import QColor, QPalette
    pal = window.plot.palette()
    pal.setColor(QPalette.ColorRole.Base, QColor("#101010"))
    window.plot.setPalette(pal)
    assert window.plot.plot.backgroundBrush().color().name() == "#101010"
