"""FrameViewer: preview, histogram and statistics values, the statistics plot, keys, play, grid link."""
import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from unsampler_gui.core import preview
from unsampler_gui.core.stats import frame_stats
from unsampler_gui.qt.frame_viewer import HIST_BINS
from unsampler_gui.qt.thumbnail_grid import ThumbnailGrid, link
from support import WAIT_MS
from views_helpers import fake_plan, feed, shown as _shown, finish, settle


def test_first_frame_is_shown_when_frames_arrive(qtbot, store, viewer):
    assert viewer.current_frame() == -1
    with qtbot.waitSignal(viewer.rendered, timeout=WAIT_MS) as sig:
        feed(store, fake_plan(300), chunk=100)
    assert sig.args == [0] and viewer.current_frame() == 0
    assert viewer.slider.maximum() == 299
    assert viewer.last_render["image"].shape == (8, 8, 3)


def test_stats_and_histogram_values(qtbot, store, viewer):
    plan = fake_plan(500)
    out = feed(store, plan, chunk=128)
    viewer.select_frame(137)
    r = _shown(qtbot, viewer, 137)
    frame = out[137].double()
    s = r["stats"]
    assert s["mean"] == pytest.approx(float(frame.mean()), rel=1e-9)
    assert s["std"] == pytest.approx(float(frame.std(correction=0)), rel=1e-9)
    assert s["min"] == pytest.approx(float(frame.min())) and s["max"] == pytest.approx(float(frame.max()))
    counts, edges = r["hist"]
    ref_counts, ref_edges = np.histogram(out[137].numpy(), bins=HIST_BINS)
    np.testing.assert_array_equal(counts, ref_counts)
    np.testing.assert_allclose(edges, ref_edges, atol=1e-5)
    assert f"{s['mean']:.4g}" in viewer.stats_label.text()
    # frame 137 is the 138th latent from low noise; its schedule step counts from high noise
    assert "frame 137 of 500" in viewer.step_label.text()
    assert "step 362 " in viewer.step_label.text() and int(plan.schedule_index[137]) == 362
    hx, hy = viewer.hist_curve.getData()
    np.testing.assert_array_equal(hy, ref_counts)
    # the ComfyUI range preview is the core's latent2rgb
    expected = preview.render(out[137], store.family, contrast="fixed")
    np.testing.assert_array_equal(r["image"], expected)
    # one channel: histogram and picture of that channel
    viewer.set_display(mode=3, contrast="auto")
    r = _shown(qtbot, viewer, 137)
    np.testing.assert_array_equal(r["hist"][0], np.histogram(out[137, 3].numpy(), bins=HIST_BINS)[0])
    np.testing.assert_array_equal(r["image"], preview.render(out[137], store.family, mode=3, contrast="auto"))
    # shared contrast: step 0's range
    viewer.set_display(contrast="shared")
    r = _shown(qtbot, viewer, 137)
    assert r["range"] == pytest.approx(preview.reference_range(out[0], store.family, 3))


def test_per_step_statistics_plot(qtbot, store, viewer):
    plan = fake_plan(2000)
    out = feed(store, plan, chunk=256)
    settle(qtbot, store)
    # xData/yData: the curves' data (getData() gives what is drawn, downsampled to the plot's width)
    qtbot.waitUntil(lambda: viewer.mean_curve.xData is not None and len(viewer.mean_curve.xData) == 2000,
                    timeout=WAIT_MS)
    x, mean = viewer.mean_curve.xData, viewer.mean_curve.yData
    std = viewer.std_curve.yData
    ref = frame_stats(out)
    np.testing.assert_array_equal(x, np.arange(2000))
    np.testing.assert_allclose(mean, ref.mean)
    np.testing.assert_allclose(std, ref.std)
    sy = viewer.sigma_curve.yData
    # the plot shows all of it (a view range stuck at the empty plot's 0..1 once hid the curves)
    qtbot.waitUntil(lambda: viewer.stats_plot.getPlotItem().getViewBox().viewRange()[0][1] >= 1999, timeout=WAIT_MS)
    np.testing.assert_allclose(sy, plan.model_sigmas.double().numpy())
    viewer.select_frame(1234)
    assert viewer.step_line.value() == 1234
    _shown(qtbot, viewer, 1234)


def test_keys_and_selection_signal(qtbot, store, viewer):
    feed(store, fake_plan(100), chunk=50)
    got = []
    viewer.frameSelected.connect(got.append)
    viewer.setFocus()
    QTest.keyClick(viewer, Qt.Key.Key_Right)
    QTest.keyClick(viewer, Qt.Key.Key_Right)
    assert viewer.current_frame() == 2
    QTest.keyClick(viewer, Qt.Key.Key_End)
    assert viewer.current_frame() == 99
    QTest.keyClick(viewer, Qt.Key.Key_Right)  # clamped at the end: no change, no signal
    QTest.keyClick(viewer, Qt.Key.Key_Home)
    QTest.keyClick(viewer, Qt.Key.Key_Left)
    assert got == [1, 2, 99, 0]
    viewer.select_frame(50)
    assert viewer.slider.value() == 50
    viewer.slider.setValue(60)
    assert viewer.current_frame() == 60 and got[-1] == 60
    _shown(qtbot, viewer, 60)


def test_play_advances_and_stops_on_hide_and_close(qtbot, store, viewer):
    plan = fake_plan(40)
    out = feed(store, plan, chunk=40)
    finish(store, plan, out)
    viewer.fps_spin.setValue(60)
    viewer.play()
    assert viewer.is_playing()
    qtbot.waitUntil(lambda: viewer.current_frame() >= 5, timeout=WAIT_MS)
    viewer.hide()
    assert not viewer.is_playing() and not viewer.play_button.isChecked()
    viewer.show()
    QTest.keyClick(viewer, Qt.Key.Key_Space)
    assert viewer.is_playing()
    viewer.close()
    assert not viewer.is_playing()
    settle(qtbot, viewer)


def test_play_wraps_only_when_the_run_is_finished(qtbot, store, viewer):
    plan = fake_plan(10)
    out = feed(store, plan, chunk=10)
    viewer.select_frame(9)
    for _ in range(3):
        viewer.advance()  # what the play timer does at each tick
    assert viewer.current_frame() == 9  # still running: wait at the last frame in
    finish(store, plan, out)
    viewer.advance()
    assert viewer.current_frame() == 0  # the run is complete: wrap around
    viewer.fps_spin.setValue(60)
    viewer.play()
    qtbot.waitUntil(lambda: viewer.current_frame() >= 2, timeout=WAIT_MS)
    viewer.stop()
    assert not viewer.is_playing()
    settle(qtbot, viewer)


def test_new_run_resets_and_stops(qtbot, store, viewer):
    plan = fake_plan(30)
    out = feed(store, plan, chunk=30)
    finish(store, plan, out)
    _shown(qtbot, viewer, 0)
    viewer.play()
    feed(store, fake_plan(20, batch=2, family="WAN21_T2V", spatial=(4, 6)), chunk=5)
    assert not viewer.is_playing()
    assert viewer.item_spin.isVisibleTo(viewer) and viewer.time_spin.isVisibleTo(viewer)
    assert viewer.mode_combo.count() == 3 + 16  # RGB through latent2rgb, TAESD, the full VAE; 16 channels
    r = _shown(qtbot, viewer, 0)
    assert r["image"].shape == (4, 6, 3)


def test_grid_and_viewer_linked(qtbot, store, viewer):
    grid = ThumbnailGrid(store, thumb_size=32)
    qtbot.addWidget(grid)
    grid.resize(400, 300)
    grid.show()
    link(grid, viewer)
    plan = fake_plan(1000, batch=2)
    out = feed(store, plan, chunk=200)
    grid_got, viewer_got = [], []
    grid.frameSelected.connect(grid_got.append)
    viewer.frameSelected.connect(viewer_got.append)
    grid.select_frame(321)
    assert grid_got[-1] == 321 and viewer.current_frame() == 321
    viewer.select_frame(654)
    assert grid.current_frame() == 654 and viewer_got[-1] == 654
    grid.setFocus()
    QTest.keyClick(grid, Qt.Key.Key_Right)
    assert viewer.current_frame() == 655
    viewer.set_batch_item(1)
    assert grid.thumbnail_model().settings.item == 1
    viewer.set_display(mode=2, contrast="auto")
    s = grid.thumbnail_model().settings
    assert s.mode == 2 and s.contrast == "auto"
    r = _shown(qtbot, viewer, 655)
    np.testing.assert_array_equal(r["image"], preview.render(out[655 * 2 + 1], store.family, 2, "auto"))
    grid.viewport().repaint()
    grid.thumbnail_model().flush()
    settle(qtbot, grid.thumbnail_model(), viewer)
    grid.close()
    grid.shutdown()
