"""Value widgets that take the mouse wheel only when they have focus.

A combo box or spin box in a scrolling form would otherwise change its value when the wheel turns over
it on the way down the form (two notches over Scheduler turned simple into karras). ``guard_wheel``
gives such a widget focus only by click or Tab (never by the wheel), and passes a wheel event it gets
without focus on to its parent, so the panel scrolls instead. Every form calls it on its value widgets
(``guard_wheel_all`` for a whole dialog).
"""
from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QAbstractSpinBox, QComboBox, QWidget

#: The widgets whose value the wheel changes.
GUARDED = (QComboBox, QAbstractSpinBox)


class _WheelGuard(QObject):
    def eventFilter(self, obj, event) -> bool:  # noqa: N802 (Qt's name)
        if event.type() == QEvent.Type.Wheel and isinstance(obj, QWidget) and not obj.hasFocus():
            event.ignore()  # not for this widget: Qt hands it to the parent (the scroll area scrolls)
            return True
        return False


_GUARD = None


def guard_wheel(*widgets: QWidget) -> None:
    """Let these widgets take the wheel only while they have focus (and never take focus from it)."""
    global _GUARD
    if _GUARD is None:
        _GUARD = _WheelGuard()
    for w in widgets:
        w.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        w.installEventFilter(_GUARD)


def guard_wheel_all(root: QWidget) -> None:
    """``guard_wheel`` on every combo box and spin box under ``root``."""
    for cls in GUARDED:
        guard_wheel(*root.findChildren(cls))


__all__ = ["guard_wheel", "guard_wheel_all", "GUARDED"]
