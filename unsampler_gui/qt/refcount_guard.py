"""A guard against a reference-count bug of the PySide6 6.12 abi3 wheels on CPython < 3.12.

On Python 3.10 and 3.11 these wheels return ``None`` from every void method (``setValue``,
``QPainter.save``, ...) and from an invalid QVariant, and ``True`` from ``Signal.emit``, without
taking a reference. Each call drops one reference to the singleton; after a few thousand calls
CPython aborts with "Fatal Python error: none_dealloc" (or ``bool_dealloc``). From 3.12 on these
objects are immortal and the bug is harmless.

``install()`` checks for the bug with a few harmless calls and, only if they leak, gives ``None``,
``True`` and ``False`` a reference count so large (2**40) that no program can run it down: the
same thing Python 3.12 does. It is idempotent and a no-op where the bug is absent.
"""
from __future__ import annotations

import ctypes
import sys

#: References added to each singleton when the bug is present.
PAD = 1 << 40
_installed = False


def leaks() -> bool:
    """True when PySide6 drops references to None or True (a few probe calls, no lasting effect)."""
    from PySide6.QtCore import QObject, Signal

    class _Probe(QObject):
        sig = Signal()

    o = _Probe()
    n0, t0 = sys.getrefcount(None), sys.getrefcount(True)
    for _ in range(8):
        o.setObjectName("refcount-probe")
        o.sig.emit()
    none_lost = n0 - sys.getrefcount(None)
    true_lost = t0 - sys.getrefcount(True)
    return none_lost >= 4 or true_lost >= 4


def _pad(obj) -> None:
    # CPython's object header starts with ob_refcnt (Py_ssize_t); the GIL is held here.
    ref = ctypes.c_ssize_t.from_address(id(obj))
    ref.value += PAD


def install() -> bool:
    """Apply the guard if needed. Returns True when the bug was found and the guard applied."""
    global _installed
    if _installed:
        return True
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return False
    if not leaks():
        return False
    for obj in (None, True, False):
        _pad(obj)
    _installed = True
    return True


install()
