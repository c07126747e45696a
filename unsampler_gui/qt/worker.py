"""One worker contract for everything slow (superqt / Orange3 style).

``Worker.run_in_thread(fn)`` runs ``fn(reporter)`` on its own QThread and reports through signals:

- ``started``, then any number of ``progress(done, total)`` (throttled to about 10 a second),
  ``partial(start, stop, frames)`` and ``message(text)``;
- then one of ``result(value)``, ``error(text)`` or ``cancelled()``;
- and ``finished`` always last.

Cancel is cooperative: the job polls ``reporter.is_cancelled()`` (core jobs do it once per chunk).
Starting a new job cancels the one before; every signal carries a job id inside, and whatever a
superseded job still sends is dropped. ``shutdown()`` cancels and joins every thread; it runs when
the owner closes and, as a safety net, when the application quits. No ``processEvents()`` anywhere.

``UnsampleWorker.run(spec)`` is the unsampling job (``core.run_unsample``), with an extra
``planned(plan)`` signal that arrives before the first ``partial``.

``LatestOnly`` is the light variant for quick computations that follow the form (schedules,
size estimates): a private one-thread pool, and only the newest request's answer is delivered.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Optional

from PySide6.QtCore import QCoreApplication, QObject, QThread, QThreadPool, QTimer, Signal, Slot

from .. import core
from .errors import describe

log = logging.getLogger("unsampler")

#: Minimum seconds between two progress signals (the last one always goes through).
PROGRESS_INTERVAL = 0.1
#: How long a job waits for the GUI to take in its plan before it starts anyway (seconds).
PLAN_WAIT = 1.0
#: How long the views get to take in a new plan (reset, layout, first repaint) before the job starts.
PLAN_SETTLE_MS = 60
#: How long a job waits, at most, after its first frames for the views to fill in (seconds).
FIRST_FRAMES_WAIT = 0.3
#: How often the GUI checks whether the views are done with the first frames (milliseconds).
SETTLE_POLL_MS = 10


class TaskReporter(core.Reporter):
    """The core ``Reporter`` a job sees: cancel flag, throttled progress, frames handed to the GUI thread."""

    def __init__(self, thread: "_JobThread", cancel: threading.Event):
        self._thread = thread
        self._cancel = cancel
        self._last = 0.0
        self.share_frames = False  # True when ``partial`` frames are views of the final output (no copy needed)
        self.background = True  # the job's threads yield the CPU to the window
        self.wait_first_frames = False  # pause after the first frames until the views have filled in
        self._sent_frames = False

    def is_cancelled(self) -> bool:
        return self._cancel.is_set()

    def progress(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or now - self._last >= PROGRESS_INTERVAL:
            self._last = now
            self._thread.sig_progress.emit(self._thread.job_id, int(done), int(total))

    def partial(self, start: int, stop: int, frames) -> None:
        data = frames if self.share_frames else frames.detach().to("cpu").clone()
        self._thread.sig_partial.emit(self._thread.job_id, int(start), int(stop), data)
        if not self._sent_frames:
            self._sent_frames = True
            if self.wait_first_frames:
                # The first frames make every view fill in at once (thumbnails, the viewer's image and
                # histogram, the plots): tens of milliseconds of GUI work that would otherwise compete
                # with the job's threads for the GIL and both cores, and stall the window. Wait briefly.
                self._wait(self._thread.frames_taken, FIRST_FRAMES_WAIT)

    def message(self, text: str) -> None:
        self._thread.sig_message.emit(self._thread.job_id, str(text))

    def planned(self, plan) -> None:
        """Hand the plan to the GUI and wait (briefly) until the views have taken it in, so that their
        one-off reset and layout do not compete with the job's threads for the GIL."""
        self._thread.plan_taken.clear()
        self._thread.sig_planned.emit(self._thread.job_id, plan)
        self._wait(self._thread.plan_taken, PLAN_WAIT)

    def _wait(self, event: threading.Event, seconds: float) -> None:
        """Wait until the GUI sets ``event``, the job is cancelled, or ``seconds`` have passed."""
        deadline = time.monotonic() + seconds
        while not event.wait(0.02):
            if self._cancel.is_set() or time.monotonic() > deadline:
                break


class _JobThread(QThread):
    """Runs one job. Its signals carry the job id; the ``Worker`` filters and forwards them."""

    sig_started = Signal(int)
    sig_progress = Signal(int, int, int)
    sig_partial = Signal(int, int, int, object)
    sig_message = Signal(int, str)
    sig_planned = Signal(int, object)
    sig_result = Signal(int, object)
    sig_error = Signal(int, str)
    sig_cancelled = Signal(int)

    def __init__(self, job_id: int, fn: Callable, context: str, parent: QObject):
        super().__init__(parent)
        self.job_id = job_id
        self.fn = fn
        self.context = context
        self.cancel_event = threading.Event()
        self.plan_taken = threading.Event()  # set by the GUI thread once the views have the plan
        self.frames_taken = threading.Event()  # set by the GUI thread once the views show the first frames
        self.saw_frames = False  # GUI side: the first partial has been handed on
        self.reporter = TaskReporter(self, self.cancel_event)
        self.setObjectName(f"unsampler-{context or 'job'}-{job_id}")

    def run(self) -> None:  # runs on the new thread
        self.sig_started.emit(self.job_id)
        try:
            value = self.fn(self.reporter)
        except core.Cancelled:
            log.info("%s %d cancelled", self.context or "job", self.job_id)
            self.sig_cancelled.emit(self.job_id)
        except BaseException as e:  # everything becomes a message; the traceback goes to the log
            self.sig_error.emit(self.job_id, describe(e, self.context))
        else:
            if self.cancel_event.is_set():
                self.sig_cancelled.emit(self.job_id)
            else:
                self.sig_result.emit(self.job_id, value)
        finally:
            self.fn = None  # drop references to big inputs as soon as the job is over


class Worker(QObject):
    """Runs one job at a time on a QThread (see the module docstring for the signal contract)."""

    started = Signal()
    progress = Signal(int, int)
    partial = Signal(int, int, object)
    message = Signal(str)
    result = Signal(object)
    error = Signal(str)
    cancelled = Signal()
    finished = Signal()

    def __init__(self, parent: Optional[QObject] = None, name: str = "job"):
        super().__init__(parent)
        self.name = name
        #: Returns True while the views are still busy with frames they were given (rendering
        #: thumbnails, the viewer's image); jobs that wait for their first frames to be shown ask it.
        self.views_busy: Optional[Callable[[], bool]] = None
        self._settling: list = []  # jobs waiting for the views to show their first frames
        self._settle_timer = QTimer(self)
        self._settle_timer.setInterval(SETTLE_POLL_MS)
        self._settle_timer.timeout.connect(self._poll_settled)
        self._next_id = 0
        self._current: Optional[_JobThread] = None
        self._threads: list = []
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)

    # -- public API -----------------------------------------------------------------------------
    @property
    def job_id(self) -> int:
        """The id of the newest job (0 before the first)."""
        return self._next_id

    def is_running(self) -> bool:
        """True while the newest job has not sent ``finished``."""
        return self._current is not None

    def run_in_thread(self, fn: Callable, share_frames: bool = False) -> int:
        """Run ``fn(reporter)`` on a new thread; cancel (and disown) the previous job. Returns the job id."""
        self.cancel()
        self._next_id += 1
        t = _JobThread(self._next_id, fn, self.name, self)
        t.reporter.share_frames = share_frames
        t.sig_started.connect(self._on_started)
        t.sig_progress.connect(self._on_progress)
        t.sig_partial.connect(self._on_partial)
        t.sig_message.connect(self._on_message)
        t.sig_planned.connect(self._on_planned)
        t.sig_result.connect(self._on_result)
        t.sig_error.connect(self._on_error)
        t.sig_cancelled.connect(self._on_cancelled)
        t.finished.connect(self._on_thread_finished)
        self._threads.append(t)
        self._current = t
        t.start()
        return t.job_id

    def cancel(self) -> None:
        """Ask the current job to stop at its next check; its remaining signals still arrive."""
        if self._current is not None:
            self._current.cancel_event.set()

    def shutdown(self, timeout_ms: int = -1) -> None:
        """Cancel every job and join every thread (safe to call more than once)."""
        for t in list(self._threads):
            t.cancel_event.set()
            t.frames_taken.set()
        self._settling.clear()
        self._settle_timer.stop()
        for t in list(self._threads):
            if timeout_ms < 0:
                t.wait()
            elif not t.wait(timeout_ms):
                log.warning("thread %s did not stop within %d ms", t.objectName(), timeout_ms)
                continue
            self._threads.remove(t)
            t.deleteLater()
        self._current = None

    # -- forwarding (GUI thread) ------------------------------------------------------------------
    def _is_current(self, job_id: int) -> bool:
        return self._current is not None and self._current.job_id == job_id

    @Slot(int)
    def _on_started(self, job_id: int) -> None:
        if self._is_current(job_id):
            self.started.emit()

    @Slot(int, int, int)
    def _on_progress(self, job_id: int, done: int, total: int) -> None:
        if self._is_current(job_id):
            self.progress.emit(done, total)

    @Slot(int, int, int, object)
    def _on_partial(self, job_id: int, start: int, stop: int, frames) -> None:
        t = self.sender()
        if self._is_current(job_id):
            self.partial.emit(start, stop, frames)
        if isinstance(t, _JobThread) and not t.saw_frames:
            t.saw_frames = True
            self._settling.append(t)
            if not self._settle_timer.isActive():
                self._settle_timer.start()

    def _poll_settled(self) -> None:
        """Let jobs that wait after their first frames go on once the views are idle (or they are superseded)."""
        busy = self.views_busy
        idle = busy is None or not busy()
        for t in list(self._settling):
            if idle or t.cancel_event.is_set() or not self._is_current(t.job_id):
                t.frames_taken.set()
                self._settling.remove(t)
        if not self._settling:
            self._settle_timer.stop()

    @Slot(int, str)
    def _on_message(self, job_id: int, text: str) -> None:
        if self._is_current(job_id):
            self.message.emit(text)

    @Slot(int, object)
    def _on_planned(self, job_id: int, plan) -> None:
        t = self.sender()
        if self._is_current(job_id):
            self._planned(plan)
        if isinstance(t, _JobThread):  # after the views have laid out and repainted for the new run
            QTimer.singleShot(PLAN_SETTLE_MS, t.plan_taken.set)

    def _planned(self, plan) -> None:  # overridden by UnsampleWorker
        pass

    @Slot(int, object)
    def _on_result(self, job_id: int, value) -> None:
        if self._is_current(job_id):
            self.result.emit(value)

    @Slot(int, str)
    def _on_error(self, job_id: int, text: str) -> None:
        if self._is_current(job_id):
            self.error.emit(text)

    @Slot(int)
    def _on_cancelled(self, job_id: int) -> None:
        if self._is_current(job_id):
            self.cancelled.emit()

    @Slot()
    def _on_thread_finished(self) -> None:
        t = self.sender()
        if not isinstance(t, _JobThread):
            return
        t.wait()
        if t in self._threads:
            self._threads.remove(t)
            t.deleteLater()
        if self._current is t:
            self._current = None
            self.finished.emit()


class UnsampleWorker(Worker):
    """The unsampling job on a worker thread: ``run(spec)`` -> ``planned``, partials, ``result``."""

    planned = Signal(object)

    def __init__(self, parent: Optional[QObject] = None):
        super().__init__(parent, name="unsample")

    def _planned(self, plan) -> None:
        self.planned.emit(plan)

    def run(self, spec: "core.UnsampleSpec", output: Optional[str] = None, overwrite: bool = False,
            max_memory: Optional[int] = None) -> int:
        def job(rep: TaskReporter):
            plan = core.plan_unsample(spec)
            # in-memory runs (CPU and CUDA) hand out views of the final output, which never changes
            # again; streamed runs reuse a staging buffer, so their frames are copied
            rep.share_frames = output is None
            rep.wait_first_frames = True
            rep.planned(plan)
            return core.run_unsample(plan, rep, output=output, overwrite=overwrite, max_memory=max_memory)

        return self.run_in_thread(job)


class _Bridge(QObject):
    delivered = Signal(int, object, str)


class LatestOnly(QObject):
    """Quick off-thread computations where only the newest answer matters.

    ``submit(fn)`` queues ``fn()`` on a private one-thread pool, dropping requests not yet started;
    ``ready(value)`` or ``failed(text)`` arrives for the newest request only.
    """

    ready = Signal(object)
    failed = Signal(str)

    def __init__(self, parent: Optional[QObject] = None, name: str = "compute"):
        super().__init__(parent)
        self.name = name
        self._gen = 0
        self._closed = False
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._pool.setExpiryTimeout(2000)
        self._bridge = _Bridge(self)
        self._bridge.delivered.connect(self._deliver)
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)

    def submit(self, fn: Callable) -> int:
        if self._closed:
            return self._gen
        self._gen += 1
        gen = self._gen
        self._pool.clear()  # requests that have not started yet are stale now
        bridge = self._bridge

        def call() -> None:
            if gen != self._gen:
                return
            try:
                value, err = fn(), ""
            except BaseException as e:
                value, err = None, describe(e, self.name) or "error"
            bridge.delivered.emit(gen, value, err)

        self._pool.start(call)
        return gen

    def pending(self) -> bool:
        return self._pool.activeThreadCount() > 0

    def wait(self, msecs: int = -1) -> bool:
        return self._pool.waitForDone(msecs)

    @Slot(int, object, str)
    def _deliver(self, gen: int, value, err: str) -> None:
        if gen != self._gen or self._closed:
            return
        if err:
            self.failed.emit(err)
        else:
            self.ready.emit(value)

    def shutdown(self) -> None:
        self._closed = True
        self._gen += 1
        self._pool.clear()
        self._pool.waitForDone()
