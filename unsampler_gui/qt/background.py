"""A private thread pool whose answers come back to the GUI thread as signals.

``Background.submit(fn, tag)`` runs ``fn()`` on the pool; ``done(tag, value)`` or ``failed(tag, text)``
arrives on the owner's thread. Only plain Python values, numpy arrays, CPU tensors and QImages
cross. ``shutdown()`` drops what has not started and joins what has; it runs when the application
quits too, so no task outlives the window.
"""
from __future__ import annotations

import logging
import weakref
from typing import Callable, Optional

from PySide6.QtCore import QCoreApplication, QObject, QRunnable, QThreadPool, Signal


log = logging.getLogger("unsampler")

#: Every live Background (tests check that none is left busy).
_live: "weakref.WeakSet" = weakref.WeakSet()


def live_pools() -> list:
    """The Background objects that still exist (for tests' dangling-thread checks)."""
    out = []
    for b in list(_live):
        try:
            b.objectName()
        except RuntimeError:  # the C++ side is gone
            continue
        out.append(b)
    return out


class _Call(QRunnable):
    def __init__(self, owner: "Background", fn: Callable, tag):
        super().__init__()
        self.setAutoDelete(True)
        self._owner, self._fn, self._tag = owner, fn, tag

    def run(self) -> None:  # on a pool thread
        owner = self._owner
        if owner._closed:
            return
        try:
            value, err = self._fn(), None
        except Exception as e:  # reported, never raised on a pool thread
            log.debug("background task %r failed", self._tag, exc_info=True)
            value, err = None, str(e) or type(e).__name__
        if owner._closed:
            return
        try:
            if err is None:
                owner.done.emit(self._tag, value)
            else:
                owner.failed.emit(self._tag, err)
        except RuntimeError:  # the owner was deleted meanwhile
            pass


class Background(QObject):
    """A small thread pool owned by one object; results are delivered by queued signals."""

    done = Signal(object, object)
    failed = Signal(object, str)

    def __init__(self, parent: Optional[QObject] = None, threads: int = 1, name: str = "background"):
        super().__init__(parent)
        self.setObjectName(name)
        self._closed = False
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(max(1, int(threads)))
        self._pool.setExpiryTimeout(2000)
        _live.add(self)
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)

    @property
    def pool(self) -> QThreadPool:
        return self._pool

    def submit(self, fn: Callable, tag=None) -> None:
        if not self._closed:
            self._pool.start(_Call(self, fn, tag))

    def start(self, runnable: QRunnable) -> None:
        """Run a prepared QRunnable (one that emits its own signals) on this pool."""
        if not self._closed:
            self._pool.start(runnable)

    def clear(self) -> None:
        """Drop the tasks that have not started."""
        self._pool.clear()

    def busy(self) -> bool:
        return self._pool.activeThreadCount() > 0

    def wait(self, msecs: int = -1) -> bool:
        """Wait until every started task has finished (True when idle)."""
        return self._pool.waitForDone(msecs)

    @property
    def closed(self) -> bool:
        return self._closed

    def shutdown(self) -> None:
        """Stop taking work, drop queued tasks and join the running ones."""
        self._closed = True
        self._pool.clear()
        self._pool.waitForDone()


def ideal_threads(cap: int = 4) -> int:
    """Threads for preview work: half the cores (the unsampling job uses the rest), 1..cap."""
    return max(1, min(cap, QThreadPool.globalInstance().maxThreadCount() // 2))
