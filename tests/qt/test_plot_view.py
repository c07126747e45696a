"""The sigma plot's view follows the schedule: it fits every new schedule unless the user zoomed on purpose
(with Fit and a double-click as the way back), and no hover or selection marker is stale or part of the fit."""
from __future__ import annotations

from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from support import WAIT_MS
from unsampler_gui import core
from unsampler_gui.qt.sigma_plot import ScheduleRequest, SigmaPlot


def _request(steps: int, scheduler: str = "simple") -> ScheduleRequest:
    return ScheduleRequest(family=core.get_family("SD15"), sampler="euler", scheduler=scheduler, steps=steps,
                           start_at_step=0, end_at_step=10000)


def _show(plot, qtbot, steps: int, scheduler: str = "simple"):
    with qtbot.waitSignal(plot.updated, timeout=WAIT_MS) as sig:
        plot.set_request(_request(steps, scheduler))
    return sig.args[0]


def _x_range(plot):
    vb = plot.plot.getPlotItem().getViewBox()
    return vb.viewRange()[0]


def _pos(plot, x, y) -> QPoint:
    vb = plot.plot.getPlotItem().getViewBox()
    return plot.plot.mapFromScene(vb.mapViewToScene(QPointF(x, y)))


def _wheel(plot, pos: QPoint, notches: int) -> None:
    vp = plot.plot.viewport()
    ev = QWheelEvent(QPointF(pos), QPointF(vp.mapToGlobal(pos)), QPoint(0, 0), QPoint(0, 120 * notches),
                     Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(vp, ev)


def _plot(qtbot) -> SigmaPlot:
    plot = SigmaPlot()
    qtbot.addWidget(plot)
    plot.resize(700, 300)
    plot.show()
    qtbot.waitExposed(plot)
    return plot


def test_a_new_schedule_is_fitted_and_the_old_hover_marker_goes(qtbot):
    plot = _plot(qtbot)
    d = _show(plot, qtbot, 10000)
    qtbot.waitUntil(lambda: _x_range(plot)[1] > 9000, timeout=WAIT_MS)
    # hover near step 4000, then select a frame: markers of this schedule
    QTest.mouseMove(plot.plot.viewport(), _pos(plot, 4000.0, float(d.schedule[4000])))
    qtbot.waitUntil(lambda: len(plot.hover.getData()[0] or []) == 1, timeout=WAIT_MS)
    plot.select_frame(9000)
    d = _show(plot, qtbot, 30)
    x0, x1 = _x_range(plot)
    assert x1 < 40 and x0 > -10, (x0, x1)  # the 30-step curve fills the view, not a sliver at 0
    hx, _ = plot.hover.getData()
    assert hx is None or len(hx) == 0  # no stale hover marker
    assert plot.selected_frame() is None and not plot.marker_line.isVisible()
    assert not plot.user_zoomed() and not plot.fit_button.isEnabled()


def test_markers_are_not_part_of_the_fit(qtbot):
    plot = _plot(qtbot)
    _show(plot, qtbot, 20)
    plot.hover.setData([5000.0], [100.0])  # wherever a marker is, the view fits the schedule
    plot.marker.setData([-3000.0], [50.0])
    plot.fit_view()
    x0, x1 = _x_range(plot)
    (y0, y1) = plot.plot.getPlotItem().getViewBox().viewRange()[1]
    assert -5 < x0 and x1 < 30 and y1 < 20, (x0, x1, y1)


def test_a_zoom_on_purpose_is_kept_until_fit_or_double_click(qtbot):
    plot = _plot(qtbot)
    d = _show(plot, qtbot, 40)
    full = _x_range(plot)
    _wheel(plot, _pos(plot, 10.0, float(d.schedule[10])), 3)  # zoom in with the wheel
    qtbot.waitUntil(lambda: plot.user_zoomed(), timeout=WAIT_MS)
    zoomed = _x_range(plot)
    assert zoomed[1] - zoomed[0] < full[1] - full[0] and plot.fit_button.isEnabled()
    _show(plot, qtbot, 35, "karras")  # a new schedule keeps the user's view
    assert plot.user_zoomed() and _x_range(plot) == zoomed
    plot.fit_button.click()  # the way back
    x0, x1 = _x_range(plot)
    assert not plot.user_zoomed() and x1 >= 34 and x1 < 45 and not plot.fit_button.isEnabled()
    # zoomed again, a double-click fits too
    _wheel(plot, _pos(plot, 10.0, 1.0), 3)
    qtbot.waitUntil(lambda: plot.user_zoomed(), timeout=WAIT_MS)
    at, vp, left, none = _pos(plot, 10.0, 1.0), plot.plot.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    QTest.mousePress(vp, left, none, at)  # a double-click as the system sends it: press, release, double-click, release
    QTest.mouseRelease(vp, left, none, at)
    QTest.mouseDClick(vp, left, none, at)
    QTest.mouseRelease(vp, left, none, at)
    qtbot.waitUntil(lambda: not plot.user_zoomed(), timeout=WAIT_MS)


def test_a_zoom_that_shows_none_of_the_new_schedule_is_not_kept(qtbot):
    plot = _plot(qtbot)
    d = _show(plot, qtbot, 10000)
    _wheel(plot, _pos(plot, 8000.0, float(d.schedule[8000])), 5)
    qtbot.waitUntil(lambda: plot.user_zoomed() and _x_range(plot)[0] > 100, timeout=WAIT_MS)
    _show(plot, qtbot, 30)
    assert _x_range(plot)[1] < 40 and not plot.user_zoomed()


def test_the_hover_marker_goes_when_the_mouse_leaves(qtbot):
    plot = _plot(qtbot)
    d = _show(plot, qtbot, 20)
    QTest.mouseMove(plot.plot.viewport(), _pos(plot, 10.0, float(d.schedule[10])))
    qtbot.waitUntil(lambda: "step 10" in plot.readout.text(), timeout=WAIT_MS)
    from PySide6.QtCore import QEvent
    QApplication.sendEvent(plot.plot.viewport(), QEvent(QEvent.Type.Leave))
    hx, _ = plot.hover.getData()
    assert (hx is None or len(hx) == 0) and "frames" in plot.readout.text()
