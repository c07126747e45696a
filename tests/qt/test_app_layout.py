"""The window on small screens, the wheel over forms, and the export dialog's layout."""
from __future__ import annotations

import os

import pytest
from PySide6.QtCore import QPoint, QPointF, QRect, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication

from support import WAIT_MS
from unsampler_gui.core.exports import COMFYUI, LATENT, SIGMAS_JSON
from unsampler_gui.qt.main_window import DEFAULT_SIZE, MainWindow, fit_to_screen


def _wheel(widget, notches: int = -2) -> None:
    """Turn the wheel over the middle of ``widget`` (down: negative), as the system sends it."""
    pos = QPointF(widget.width() / 2, widget.height() / 2)
    ev = QWheelEvent(pos, QPointF(widget.mapToGlobal(pos.toPoint())), QPoint(0, 0), QPoint(0, 120 * notches),
                     Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, ev)


def _value(w):
    return w.currentIndex() if hasattr(w, "currentIndex") else w.value()


@pytest.fixture
def small(window, qtbot):
    """The window at 1024x600: the form has to scroll."""
    window.resize(1024, 600)
    qtbot.waitUntil(lambda: window.inputs_scroll.verticalScrollBar().maximum() > 0, timeout=WAIT_MS)
    return window


@pytest.mark.parametrize("name", ["scheduler", "steps", "seed", "sampler"])
def test_the_wheel_scrolls_the_form_and_leaves_unfocused_values(small, qtbot, name):
    w = small.panel.widget(name)
    bar = small.inputs_scroll.verticalScrollBar()
    bar.setValue(0)
    qtbot.waitUntil(w.isVisible, timeout=WAIT_MS)
    before, params = _value(w), small.panel.params()
    assert not w.hasFocus() and w.focusPolicy() == Qt.FocusPolicy.StrongFocus  # the wheel never gives focus
    _wheel(w)
    assert _value(w) == before and small.panel.params() == params
    assert bar.value() > 0  # the panel scrolled instead
    assert not w.hasFocus()


def test_a_focused_value_takes_the_wheel(small, qtbot):
    small.activateWindow()
    qtbot.waitUntil(small.isActiveWindow, timeout=WAIT_MS)
    combo = small.panel.widget("scheduler")
    combo.setFocus()
    qtbot.waitUntil(combo.hasFocus, timeout=WAIT_MS)
    before = combo.currentIndex()
    _wheel(combo, -1)
    assert combo.currentIndex() == before + 1
    assert small.panel.params()["scheduler"] == combo.currentData()


def test_dialog_values_ignore_the_unfocused_wheel(window, qtbot, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QAbstractSpinBox, QComboBox

    from unsampler_gui.qt.family_dialog import FamilyDialog
    dlg = window.open_export(LATENT)
    qtbot.addWidget(dlg)
    fam = FamilyDialog(parent=window)
    qtbot.addWidget(fam)
    for d in (dlg, fam):
        widgets = d.findChildren(QComboBox) + d.findChildren(QAbstractSpinBox)
        assert widgets
        for w in widgets:
            if not isinstance(w, (QComboBox, QAbstractSpinBox)) or not w.isEnabled():
                continue
            before = _value(w)
            _wheel(w, 1)
            _wheel(w, -1)
            assert _value(w) == before, w.objectName() or type(w).__name__
    fam.close()
    dlg.close()


def test_the_window_fits_small_screens():
    assert fit_to_screen(QRect(100, 50, 1500, 950), QRect(0, 0, 1280, 720)) == QRect(0, 0, 1280, 720)
    assert fit_to_screen(QRect(900, 500, 800, 500), QRect(0, 0, 1024, 600)) == QRect(224, 100, 800, 500)
    assert fit_to_screen(QRect(10, 20, 700, 400), QRect(0, 0, 1024, 600)) == QRect(10, 20, 700, 400)


def test_the_window_works_at_1024x600(window, qtbot):
    hint = window.minimumSizeHint()
    assert hint.width() <= 1024 and hint.height() <= 560, hint  # 600 less a title bar
    window.resize(1024, 600)
    qtbot.waitUntil(lambda: window.size().height() <= 600, timeout=WAIT_MS)
    # Run and the status bar stay in view, whatever the form's scroll position
    for w in (window.panel.run_button, window.panel.estimate_label, window.statusBar(), window.viewer.slider):
        qtbot.waitUntil(w.isVisible, timeout=WAIT_MS)
        top_left = w.mapTo(window, QPoint(0, 0))
        assert QRect(QPoint(0, 0), window.size()).contains(QRect(top_left, w.size())), w
    window.inputs_scroll.verticalScrollBar().setValue(0)
    assert not window.panel.run_button.visibleRegion().isEmpty()


def test_the_viewer_readout_is_whole_at_1024x600(window, qtbot):
    """The frame's statistics line wraps in a narrow viewer: none of it is cut off at the right."""
    window.resize(1024, 600)
    lab = window.viewer.stats_label
    qtbot.waitUntil(lambda: lab.text().startswith("mean"), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: lab.height() >= lab.heightForWidth(lab.width()), timeout=WAIT_MS)
    needed = lab.fontMetrics().boundingRect(lab.contentsRect(), int(Qt.TextFlag.TextWordWrap), lab.text())
    assert needed.width() <= lab.contentsRect().width() and needed.height() <= lab.contentsRect().height()


def test_a_geometry_saved_on_a_bigger_screen_is_fitted(qtbot, settings, monkeypatch):
    big = MainWindow(settings)
    qtbot.addWidget(big)
    monkeypatch.setattr(MainWindow, "available_geometry", lambda self: QRect(0, 0, 1920, 1200))
    big.setGeometry(QRect(300, 200, 1700, 1100))
    big.close()  # saves the geometry
    monkeypatch.setattr(MainWindow, "available_geometry", lambda self: QRect(0, 0, 1024, 600))
    win = MainWindow(settings)
    qtbot.addWidget(win)
    assert QRect(0, 0, 1024, 600).contains(win.geometry()), win.geometry()
    assert win.sizeHint().width() <= 1024 and win.sizeHint().height() <= 600
    win.close()


def test_the_default_size_is_fitted(qtbot, settings, monkeypatch):
    monkeypatch.setattr(MainWindow, "available_geometry", lambda self: QRect(0, 0, 1280, 720))
    win = MainWindow(settings)
    qtbot.addWidget(win)
    # a first start on a small screen opens maximised, and its normal size fits the screen too
    assert win.windowState() & Qt.WindowState.WindowMaximized
    assert win.width() <= 1280 and win.height() <= 720 - 32 and win.width() >= 1200
    # and it lies below room for a title bar: un-maximised, the frame is on the screen, title bar included
    assert win.geometry().top() >= 32 and win.geometry().bottom() <= 719, win.geometry()
    win.close()


def test_the_default_size_on_a_big_screen(qtbot, settings, monkeypatch):
    monkeypatch.setattr(MainWindow, "available_geometry", lambda self: QRect(0, 0, 1920, 1200))
    win = MainWindow(settings)
    qtbot.addWidget(win)
    assert not win.windowState() & Qt.WindowState.WindowMaximized and win.size() == DEFAULT_SIZE
    win.close()


def test_the_checkpoint_line_and_form_do_not_jump(window, qtbot, tmp_path):
    """The rows below the latent stay put when the latent's note lines come and go."""
    import torch

    from unsampler_gui import core
    steps = window.panel.widget("steps")
    y0 = steps.mapTo(window.panel, QPoint(0, 0)).y()
    path = tmp_path / "plain.latent"
    core.write_latent(path, torch.zeros(1, 4, 8, 8))  # no sample label: fewer lines than the sample
    with qtbot.waitSignal(window.panel.latentChanged, timeout=WAIT_MS):
        window.panel.open_latent(str(path))
    qtbot.waitUntil(lambda: window.panel.estimate() is not None, timeout=WAIT_MS)
    QApplication.processEvents()
    assert steps.mapTo(window.panel, QPoint(0, 0)).y() == y0


# -- the export dialog --------------------------------------------------------------------------------------
def test_export_dialog_controls_and_help_are_whole(window, qtbot):
    qtbot.waitUntil(lambda: window.panel.estimate() is not None, timeout=WAIT_MS)  # the frames are known
    for kind in (LATENT, COMFYUI):
        dlg = window.open_export(kind)
        qtbot.addWidget(dlg)
        qtbot.waitUntil(dlg.isVisible, timeout=WAIT_MS)
        for w in (dlg.first, dlg.last, dlg.every, dlg.kind):
            assert w.height() >= w.sizeHint().height(), (kind, w, w.height())
        for lab in (dlg.source_label, dlg.comfy_note):
            if lab.isVisible():
                assert lab.height() >= lab.heightForWidth(lab.width()), (kind, lab.text())
        if kind == COMFYUI:  # an error line appears: the help text above it is still whole
            dlg.comfy_root.setText("")
            assert not dlg.start_export() and "ComfyUI folder" in dlg.status_label.text()
            QApplication.processEvents()
            for lab in (dlg.comfy_note, dlg.status_label):
                assert lab.height() >= lab.heightForWidth(lab.width()), lab.text()
        dlg.close()


def test_export_dialog_keeps_its_size_and_drops_another_kinds_line(window, qtbot, tmp_path, set_steps):
    set_steps(window, 6)
    dlg = window.open_export(LATENT)
    qtbot.addWidget(dlg)
    qtbot.waitUntil(dlg.isVisible, timeout=WAIT_MS)
    dlg.path.setText(str(tmp_path / "a.latent"))
    size, button = dlg.size(), dlg.export_button.mapTo(dlg, QPoint(0, 0))
    with qtbot.waitSignal(dlg.worker.finished, timeout=WAIT_MS):
        assert dlg.start_export()
    QApplication.processEvents()
    assert dlg.status_label.text().startswith("saved") and dlg.size() == size
    assert dlg.export_button.mapTo(dlg, QPoint(0, 0)) == button  # the buttons do not move under the mouse
    dlg.kind.setCurrentIndex(dlg.kind.findData(SIGMAS_JSON))
    assert dlg.status_label.text() == ""  # the saved line was about the other kind
    dlg.close()


def test_a_folder_that_failed_is_not_the_next_default(window, qtbot, tmp_path, settings, set_steps):
    set_steps(window, 4)
    good = tmp_path / "good"
    good.mkdir()
    dlg = window.open_export(LATENT)
    qtbot.addWidget(dlg)
    dlg.path.setText(str(good / "a.latent"))
    with qtbot.waitSignal(dlg.worker.finished, timeout=WAIT_MS):
        assert dlg.start_export()
    assert settings.folder("export") == str(good)
    bad = tmp_path / "locked"
    bad.mkdir()
    os.chmod(bad, 0o500)
    try:
        if os.access(bad, os.W_OK):  # root writes anywhere: a missing folder fails the same way
            bad = tmp_path / "no" / "such"
        dlg.path.setText(str(bad / "b.latent"))
        with qtbot.waitSignal(dlg.worker.finished, timeout=WAIT_MS):
            assert dlg.start_export()
        assert dlg.last_path == str(good / "a.latent") and "saved" not in dlg.status_label.text()
        assert settings.folder("export") == str(good)
    finally:
        os.chmod(tmp_path / "locked", 0o700)
    dlg.close()
