"""Value widgets that take the mouse wheel only when they have focus.

A combo box or spin box in a scrolling form would otherwise change its value when the wheel turns over
it on the way down the form (two notches over Scheduler turned simple into karras). ``guard_wheel``
gives such a widget focus only by click or Tab (never by the wheel), and hands a wheel event it gets
without focus to the scroll area it sits in (or, outside one, to its parent), so the panel scrolls instead. Every form calls it on its value widgets
(``guard_wheel_all`` for a whole dialog).
"""
from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QAbstractScrollArea, QAbstractSpinBox, QApplication, QComboBox, QWidget

#: The widgets whose value the wheel changes.
GUARDED = (QComboBox, QAbstractSpinBox)


class _WheelGuard(QObject):
    def eventFilter(self, obj, event) -> bool:  # noqa: N802 (Qt's name)
        if event.type() != QEvent.Type.Wheel or not isinstance(obj, QWidget) or obj.hasFocus():
            return False
        area = _scroll_area_of(obj)
        if area is None:
            event.ignore()  # not for this widget: Qt hands it on to the parents
            return True
        vp = area.viewport()  # the form's scroll area scrolls, as if the wheel had turned over it
        pos = vp.mapFromGlobal(event.globalPosition().toPoint())
        QApplication.sendEvent(vp, QWheelEvent(QPointF(pos), event.globalPosition(), event.pixelDelta(),
                                               event.angleDelta(), event.buttons(), event.modifiers(),
                                               event.phase(), event.inverted(), event.source()))
        event.accept()
        return True


def _scroll_area_of(w: QWidget):
    p = w.parentWidget()
    while p is not None and not isinstance(p, QAbstractScrollArea):
        p = p.parentWidget()
    return p


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
