"""Short and empty plots: tick labels that never pile up, and empty plots that say what will come."""
from __future__ import annotations

import pytest
from PySide6.QtGui import QImage, QPainter

from support import WAIT_MS
from unsampler_gui.qt.plot_axes import SparseAxis, labels_between, nicer
from views_helpers import fake_plan, feed, settle, shown


def _label_rects(axis):
    """The rectangles of the tick labels ``axis`` draws now (pyqtgraph's own draw specs)."""
    img = QImage(10, 10, QImage.Format.Format_ARGB32)
    p = QPainter(img)
    try:
        specs = axis.generateDrawSpecs(p)
    finally:
        p.end()
    return [] if specs is None else [rect for rect, _flags, _text in specs[2]]


def _assert_apart(axis, what):
    rects = _label_rects(axis)
    for i, a in enumerate(rects):
        for b in rects[i + 1:]:
            assert not a.intersects(b), (what, [r.getRect() for r in rects])
    return rects


def test_nicer_spacings():
    assert [nicer(x) for x in (1, 2, 5, 10, 0.2, 25, 40)] == [2, 5, 10, 20, 0.5, 50, 50]
    assert [labels_between(lo, hi, 5) for lo, hi in ((0, 14.6), (-11.2, 7.3), (1, 4), (0, 5))] == [3, 4, 0, 2]


@pytest.mark.parametrize("size", [30, 45, 60, 90, 150, 400])
def test_a_sparse_axis_leaves_each_label_room(qapp, size):
    axis = SparseAxis("left")
    for lo, hi in ((0, 1), (0, 80), (-11.2, 7.3), (0.03, 14.6), (0, 10000)):
        spacing = axis.tickSpacing(lo, hi, size)[0][0]
        assert spacing * size / (hi - lo) >= axis.label_pitch(), (lo, hi, size, spacing)  # labels apart
        assert labels_between(lo, hi, spacing) >= 1
        if size >= 4 * axis.label_pitch():
            assert labels_between(lo, hi, spacing) >= 2  # and not sparser than needed


@pytest.mark.parametrize("height", [720, 520, 400])
def test_the_viewers_plots_never_pile_their_labels(qtbot, store, viewer, height):
    viewer.resize(480, height)
    plan = fake_plan(60)
    feed(store, plan, chunk=30)
    settle(qtbot, store)
    viewer.select_frame(10)
    shown(qtbot, viewer, 10)
    qtbot.waitUntil(lambda: viewer.mean_curve.xData is not None and len(viewer.mean_curve.xData) == 60,
                    timeout=WAIT_MS)
    pi = viewer.stats_plot.getPlotItem()
    for name in ("left", "right"):
        rects = _assert_apart(pi.getAxis(name), name)
        assert len(rects) >= 1  # the values are there
    _assert_apart(viewer.hist_plot.getPlotItem().getAxis("bottom"), "histogram")


def test_the_sigma_plot_at_its_lowest_never_piles_its_labels(qtbot):
    from unsampler_gui.qt.sigma_plot import SigmaPlot

    plot = SigmaPlot()
    qtbot.addWidget(plot)
    plot.resize(600, 60)  # no lower than its minimum: the plot itself keeps its minimum height
    plot.show()
    qtbot.waitExposed(plot)
    assert plot.plot.height() == plot.plot.minimumHeight()
    vb = plot.plot.getPlotItem().getViewBox()
    vb.setRange(yRange=(0, 14.6))  # SD1.5's sigmas, with the auto-range's padding
    axis = plot.plot.getPlotItem().getAxis("left")
    qtbot.waitUntil(lambda: axis.height() > 0 and len(_label_rects(axis)) > 0, timeout=WAIT_MS)
    rects = _assert_apart(axis, "sigma")
    assert len(rects) >= 2
    plot.shutdown()


def test_empty_plots_say_what_will_come(qtbot, store, viewer):
    assert viewer.plots_empty() == {"hist": True, "stats": True}
    assert "no frame yet" in viewer.hist_plot.getPlotItem().titleLabel.text
    assert "no frames yet" in viewer.stats_plot.getPlotItem().titleLabel.text
    assert _label_rects(viewer.stats_plot.getPlotItem().getAxis("left")) == []  # no made-up 0..1 values
    assert not viewer.step_line.isVisible()
    plan = fake_plan(20)
    feed(store, plan, chunk=20)
    settle(qtbot, store)
    qtbot.waitUntil(lambda: not viewer.plots_empty()["stats"], timeout=WAIT_MS)
    viewer.select_frame(3)
    shown(qtbot, viewer, 3)
    assert viewer.plots_empty() == {"hist": False, "stats": False}
    assert "histogram, all channels" in viewer.hist_plot.getPlotItem().titleLabel.text
    assert "mean" in viewer.stats_plot.getPlotItem().titleLabel.text
    store.clear()
    qtbot.waitUntil(lambda: viewer.plots_empty() == {"hist": True, "stats": True}, timeout=WAIT_MS)
