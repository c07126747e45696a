"""The Qt binding must not leak references: PySide6 6.12.0 on Python 3.11 drops a reference to None
on every call of a method returning nothing, and the app aborts after a few thousand calls."""
import sys

from PySide6.QtCore import QObject


def test_void_calls_keep_none_alive(qapp):
    o = QObject()
    before = sys.getrefcount(None)
    for _ in range(2000):
        o.setObjectName("probe")
    assert sys.getrefcount(None) - before > -100, "this PySide6 build leaks references (see packaging/constraints.txt)"
