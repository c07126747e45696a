"""Typing into a field of the form: a value is taken on Enter (or the arrow keys); the first at once, and the ones
that follow it quickly once the typing pauses (one new sequence, not one a value); a run or an export takes what
was typed first. Edits from code, or from a field without the focus, are taken at once."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from support import WAIT_MS
from unsampler_gui.qt import param_panel


def _focused_steps(window, qtbot, monkeypatch):
    monkeypatch.setattr(param_panel, "TYPING_SETTLE_MS", 60_000)  # every value "quick": no race with the clock
    window.panel._typed.setInterval(60_000)
    spin = window.panel.widget("steps")
    window.activateWindow()
    spin.setFocus()
    qtbot.waitUntil(spin.hasFocus, timeout=WAIT_MS)
    return spin


def _type(spin, value) -> None:
    spin.lineEdit().selectAll()
    QTest.keyClicks(spin.lineEdit(), str(value))
    QTest.keyClick(spin.lineEdit(), Qt.Key.Key_Return)


def test_values_typed_quickly_are_taken_once_the_typing_pauses(window, qtbot, monkeypatch):
    spin = _focused_steps(window, qtbot, monkeypatch)
    changes = []
    window.panel.changed.connect(lambda: changes.append(window.session.params.steps))
    for v in (7, 70, 700, 7000):
        _type(spin, v)
    QTest.keyClick(spin.lineEdit(), Qt.Key.Key_Up)  # an arrow key too
    assert spin.value() == 7001
    assert changes == [7] and window.session.params.steps == 7 and window.panel.edits_pending()
    window.panel._typed.setInterval(1)  # the pause
    window.panel._typed.start()
    qtbot.waitUntil(lambda: not window.panel.edits_pending(), timeout=WAIT_MS)
    assert changes == [7, 7001] and window.session.params.steps == 7001
    qtbot.waitUntil(lambda: window.store.sequence is not None and window.store.sequence.n_frames == 7001,
                    timeout=WAIT_MS)


def test_a_run_and_an_export_take_what_was_typed(window, qtbot, monkeypatch):
    spin = _focused_steps(window, qtbot, monkeypatch)
    _type(spin, 3)
    _type(spin, 30)
    assert window.session.params.steps == 3 and window.panel.edits_pending()
    dlg = window.open_export()
    assert window.session.params.steps == 30 and not window.panel.edits_pending()
    dlg.reject()
    spin.setFocus()
    _type(spin, 31)
    _type(spin, 32)
    assert window.session.params.steps == 31 and window.panel.edits_pending()
    with qtbot.waitSignal(window.runFinished, timeout=WAIT_MS):
        assert window.start_run()
    assert window.result().plan.n_steps == 32


def test_edits_from_code_or_an_unfocused_field_are_taken_at_once(window, qtbot):
    changes = []
    window.panel.changed.connect(lambda: changes.append(window.session.params.steps))
    spin = window.panel.widget("steps")
    window.grid.setFocus()
    spin.setValue(7)
    spin.setValue(8)
    window.panel.set_params({"steps": 9}, family=False)
    assert changes == [7, 8, 9] and not window.panel.edits_pending()
