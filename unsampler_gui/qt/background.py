"""The window's one background mechanism: a private thread pool, newest-wins by generation, cancellable.

``Background.submit(fn, tag)`` runs ``fn(task)`` on the pool. Its answer comes back on the owner's
thread as exactly one of ``done(tag, value)``, ``failed(tag, exc)`` or ``cancelled(tag)``, then
``finished(tag)``. While it runs, ``task.post(payload)`` sends ``posted(tag, payload)`` (progress,
partial results) and ``task.is_cancelled()`` says when to stop early.

**Generations.** A task belongs to the pool's generation at the time it was submitted, and only the
current generation is answered: whatever an older task still sends is dropped unseen.

- ``drop()`` starts a new generation. Queued tasks are removed, running ones see ``is_cancelled()``.
- With ``latest_only=True`` every ``submit`` starts a new generation, so only the newest request is
  answered (the schedule, the estimate, the viewer's preview, the run).
- ``cancel()`` asks the current generation's tasks to stop; their answers still come (``cancelled``).

**Errors travel as objects.** ``failed`` carries the exception itself; the edge words it with
``errors.user_message`` (or reacts to its type). Its traceback is written to the log on the pool
thread and then dropped, so that a failed task's inputs are freed.

Only plain Python values, numpy arrays, CPU tensors and QImages cross. ``shutdown()`` drops what has
not started and joins what has; it runs when the application quits too, so no task outlives the window.
"""
from __future__ import annotations

from typing import Callable, Optional

from PySide6.QtCore import QCoreApplication, QObject, QRunnable, Qt, QThreadPool, Signal, Slot

from ..core.errors import Cancelled
from .errors import log_exception

_DONE, _FAILED, _CANCELLED, _POSTED = range(4)


class Task:
    """What a background function is given: ``is_cancelled()`` to stop early, ``post(payload)`` to report."""

    __slots__ = ("_owner", "generation", "tag", "_cancel", "__weakref__")

    def __init__(self, owner: "Background", generation: int, tag):
        self._owner = owner
        self.generation = generation
        self.tag = tag
        self._cancel = False  # set on the owner's thread by ``Background.cancel``

    def is_cancelled(self) -> bool:
        """True once the task was cancelled, superseded by a newer generation, or its pool shut down."""
        return self._cancel or self._owner._is_stale(self)

    def post(self, payload) -> None:
        """Send ``posted(tag, payload)`` to the owner's thread (dropped if the task is superseded by then)."""
        self._owner._send(self, _POSTED, payload)


class _Run(QRunnable):
    def __init__(self, task: Task, fn: Callable):
        super().__init__()
        self.setAutoDelete(True)
        self._task, self._fn = task, fn

    def run(self) -> None:  # on a pool thread
        task, fn = self._task, self._fn
        self._fn = None
        owner = task._owner
        if owner._is_stale(task):
            return  # superseded before it started: its answer would be dropped anyway
        try:
            value = fn(task)
        except Cancelled:
            kind, payload = _CANCELLED, None
        except BaseException as e:  # reported, never raised on a pool thread
            log_exception(e, owner.objectName())
            kind, payload = _FAILED, e.with_traceback(None)
        else:
            kind, payload = (_CANCELLED, None) if task.is_cancelled() else (_DONE, value)
        value = fn = None
        owner._send(task, kind, payload)


class Background(QObject):
    """A small thread pool owned by one object; answers are delivered by queued signals, newest generation only."""

    done = Signal(object, object)  # tag, value
    failed = Signal(object, object)  # tag, exception
    cancelled = Signal(object)  # tag
    finished = Signal(object)  # tag; after done, failed or cancelled
    posted = Signal(object, object)  # tag, payload
    _answer = Signal(object, int, object)  # task, kind, payload (from the pool threads)

    def __init__(self, parent: Optional[QObject] = None, threads: int = 1, name: str = "background",
                 latest_only: bool = False):
        super().__init__(parent)
        self.setObjectName(name)
        self.latest_only = latest_only
        self._closed = False
        self._generation = 0
        self._live: set = set()  # tasks of the current generation not yet finished (owner's thread)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(max(1, int(threads)))
        self._pool.setExpiryTimeout(2000)
        self._answer.connect(self._deliver, Qt.ConnectionType.QueuedConnection)
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)

    # -- public API -----------------------------------------------------------------------------
    @property
    def generation(self) -> int:
        """The current generation: tasks submitted now carry it; answers of older ones are dropped."""
        return self._generation

    @property
    def closed(self) -> bool:
        return self._closed

    def submit(self, fn: Callable, tag=None) -> Task:
        """Run ``fn(task)`` on the pool (with ``latest_only``, superseding every task before it)."""
        if self.latest_only:
            self.drop()
        task = Task(self, self._generation, tag)
        if not self._closed:
            self._live.add(task)
            self._pool.start(_Run(task, fn))
        return task

    def drop(self) -> None:
        """Start a new generation: queued tasks are removed, running ones are cancelled and their answers dropped."""
        self._pool.clear()
        self._generation += 1
        self._live.clear()

    def cancel(self) -> None:
        """Ask the current generation's tasks to stop at their next check; their answers still arrive."""
        for task in self._live:
            task._cancel = True

    def pending(self) -> bool:
        """True while a task of the current generation has not sent ``finished`` yet."""
        return bool(self._live)

    def idle(self) -> bool:
        """True when no task runs on the pool, superseded ones included."""
        return self._pool.activeThreadCount() == 0

    def wait(self, msecs: int = -1) -> bool:
        """Wait until every started task has returned (True when idle); their answers are still to be delivered."""
        return self._pool.waitForDone(msecs)

    def shutdown(self) -> None:
        """Stop taking work, drop queued tasks and join the running ones (safe to call more than once)."""
        self._closed = True
        self.drop()
        self._pool.waitForDone()

    # -- the pool's side ------------------------------------------------------------------------
    def _is_stale(self, task: Task) -> bool:  # read from pool threads: plain attribute reads
        return self._closed or task.generation != self._generation

    def _send(self, task: Task, kind: int, payload) -> None:
        if self._is_stale(task):
            return
        try:
            self._answer.emit(task, kind, payload)
        except RuntimeError:  # the owner was deleted meanwhile
            pass

    @Slot(object, int, object)
    def _deliver(self, task: Task, kind: int, payload) -> None:
        if self._is_stale(task):
            return
        if kind == _POSTED:
            self.posted.emit(task.tag, payload)
            return
        if kind == _DONE:
            self.done.emit(task.tag, payload)
        elif kind == _FAILED:
            self.failed.emit(task.tag, payload)
        else:
            self.cancelled.emit(task.tag)
        self._live.discard(task)
        if not self._is_stale(task):  # a slot above may have started a newer generation: then it is over
            self.finished.emit(task.tag)


def ideal_threads(cap: int = 4) -> int:
    """Threads for preview work: half the cores (the unsampling job uses the rest), 1..cap."""
    return max(1, min(cap, QThreadPool.globalInstance().maxThreadCount() // 2))
