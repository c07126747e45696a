"""One worker contract for everything slow (superqt / Orange3 style), on the window's ``Background`` pool.

``Worker.run_in_thread(fn)`` runs ``fn(reporter)`` off the GUI thread and reports through signals:

- ``started``, then any number of ``progress(done, total)`` (throttled to about 10 a second),
  ``planned(plan)``, ``partial(start, stop, frames)`` and ``message(text)``;
- then one of ``result(value)``, ``error(exc)`` or ``cancelled()``;
- and ``finished`` always last.

``error`` carries the exception object (its traceback is already in the log): the receiver words it
with ``errors.user_message``, or reacts to its type. Cancel is cooperative: the job polls
``reporter.is_cancelled()`` (core jobs do it once per chunk). Each job is a new generation of the
worker's pool: starting one cancels the one before, whatever a superseded job still sends is dropped,
and the new job starts as soon as the old one has stopped. ``shutdown()`` cancels and joins; it runs
when the owner closes and, as a safety net, when the application quits. No ``processEvents()`` anywhere.

``UnsampleWorker.run(spec)`` is the unsampling job (``core.run_unsample``); ``planned`` arrives before
the first ``partial``.

**Pacing** is a declared part of the interface, off unless a ``Pacing`` is given. A paced job holds
after its plan until ``plan_ack()`` is called, and after its first frames until ``first_frames_ack()``,
each for at most the pacing's bound. The window connects them to its ``FrameStore``, which knows when
its views have caught up: the worker knows nothing of the views.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional

from PySide6.QtCore import QObject, Signal, Slot

from .. import core
from .background import Background, Task

log = logging.getLogger("unsampler")

#: Minimum seconds between two progress signals (the last one always goes through).
PROGRESS_INTERVAL = 0.1


@dataclass(frozen=True)
class Pacing:
    """How long a paced job holds for the GUI, at most (seconds).

    After its plan, until ``plan_ack()``: the views reset and lay out for the new run. After its first
    frames, until ``first_frames_ack()``: every view fills in at once (thumbnails, the viewer's image and
    histogram, the plots), tens of milliseconds of GUI work that would otherwise compete with the job's
    threads for the GIL and the cores, and stall the window.
    """

    plan_wait: float = 1.0
    first_frames_wait: float = 0.3


class _Gates:
    """The acknowledgements a paced job waits for (set on the GUI thread, waited on by the job)."""

    def __init__(self):
        self.plan = threading.Event()
        self.frames = threading.Event()


class TaskReporter(core.Reporter):
    """The core ``Reporter`` a job sees: cancel, throttled progress, frames and the plan sent to the GUI thread."""

    background = True  # the job's threads yield the CPU to the window

    def __init__(self, task: Task, share_frames: bool = False, pacing: Optional[Pacing] = None,
                 gates: Optional[_Gates] = None):
        self._task = task
        self._last = 0.0
        self._share_frames = share_frames  # True when ``partial`` frames are views of the final output
        self._pacing = pacing
        self._gates = gates or _Gates()
        self._sent_frames = False

    def is_cancelled(self) -> bool:
        return self._task.is_cancelled()

    def progress(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or now - self._last >= PROGRESS_INTERVAL:
            self._last = now
            self._task.post(("progress", int(done), int(total)))

    def partial(self, start: int, stop: int, frames) -> None:
        data = frames if self._share_frames else frames.detach().to("cpu").clone()
        first = not self._sent_frames
        self._sent_frames = True
        if first:
            self._gates.frames.clear()
        self._task.post(("partial", int(start), int(stop), data))
        if first and self._pacing is not None:
            self._wait(self._gates.frames, self._pacing.first_frames_wait)

    def message(self, text: str) -> None:
        self._task.post(("message", str(text)))

    def planned(self, plan) -> None:
        """Hand the plan to the GUI; a paced job then holds (briefly) until ``plan_ack()``."""
        self._gates.plan.clear()
        self._task.post(("planned", plan))
        if self._pacing is not None:
            self._wait(self._gates.plan, self._pacing.plan_wait)

    def _wait(self, event: threading.Event, seconds: float) -> None:
        """Wait until the GUI sets ``event``, the job is cancelled, or ``seconds`` have passed."""
        deadline = time.monotonic() + seconds
        while not event.wait(0.02):
            if self.is_cancelled() or time.monotonic() > deadline:
                break


class Worker(QObject):
    """Runs one job at a time off the GUI thread (see the module docstring for the signal contract)."""

    started = Signal()
    progress = Signal(int, int)
    planned = Signal(object)
    partial = Signal(int, int, object)
    message = Signal(str)
    result = Signal(object)
    error = Signal(object)
    cancelled = Signal()
    finished = Signal()

    def __init__(self, parent: Optional[QObject] = None, name: str = "job", pacing: Optional[Pacing] = None):
        super().__init__(parent)
        self.name = name
        self.pacing = pacing
        self._gates = _Gates()  # the newest job's
        self._pool = Background(self, threads=1, name=name, latest_only=True)
        self._pool.posted.connect(self._on_posted)
        self._pool.done.connect(self._on_done)
        self._pool.failed.connect(self._on_failed)
        self._pool.cancelled.connect(self._on_cancelled)
        self._pool.finished.connect(self._on_finished)
        self._notes = {"started": self.started, "progress": self.progress, "planned": self.planned,
                       "partial": self.partial, "message": self.message}

    # -- public API -----------------------------------------------------------------------------
    @property
    def job_id(self) -> int:
        """The id of the newest job (0 before the first)."""
        return self._pool.generation

    def is_running(self) -> bool:
        """True while the newest job has not sent ``finished``."""
        return self._pool.pending()

    def is_idle(self) -> bool:
        """True when no job of this worker is on a thread, superseded ones included."""
        return self._pool.idle()

    def run_in_thread(self, fn: Callable, share_frames: bool = False) -> int:
        """Run ``fn(reporter)``, superseding the previous job. Returns the job id.

        ``share_frames``: the job's ``partial`` frames are final (views of its output) and need no copy.
        """
        gates = self._gates = _Gates()
        pacing = self.pacing

        def job(task: Task):
            rep = TaskReporter(task, share_frames, pacing, gates)
            task.post(("started",))
            return fn(rep)

        return self._pool.submit(job).generation

    def cancel(self) -> None:
        """Ask the current job to stop at its next check; its remaining signals still arrive."""
        self._pool.cancel()

    def shutdown(self) -> None:
        """Cancel every job and join its thread (safe to call more than once)."""
        self._pool.shutdown()

    @Slot()
    def plan_ack(self) -> None:
        """The GUI has taken in the newest job's plan: a paced job goes on."""
        self._gates.plan.set()

    @Slot()
    def first_frames_ack(self) -> None:
        """The GUI shows the newest job's first frames: a paced job goes on."""
        self._gates.frames.set()

    # -- forwarding (GUI thread; the pool drops what superseded jobs send) -------------------------
    @Slot(object, object)
    def _on_posted(self, _tag, note: tuple) -> None:
        self._notes[note[0]].emit(*note[1:])

    @Slot(object, object)
    def _on_done(self, _tag, value) -> None:
        self.result.emit(value)

    @Slot(object, object)
    def _on_failed(self, _tag, exc) -> None:
        self.error.emit(exc)

    @Slot(object)
    def _on_cancelled(self, _tag) -> None:
        log.info("%s %d cancelled", self.name, self.job_id)
        self.cancelled.emit()

    @Slot(object)
    def _on_finished(self, _tag) -> None:
        self.finished.emit()


class UnsampleWorker(Worker):
    """The unsampling job off the GUI thread: ``run(spec)`` -> ``planned``, partials, ``result``."""

    def __init__(self, parent: Optional[QObject] = None, pacing: Optional[Pacing] = None):
        super().__init__(parent, name="unsample", pacing=pacing)

    def run(self, spec: "core.UnsampleSpec", output: Optional[str] = None, overwrite: bool = False,
            max_memory: Optional[int] = None, plan: Optional["core.Plan"] = None) -> int:
        """``plan``: the plan of ``spec`` when the caller has it already (the session's, made for the
        estimate); else the job plans it."""
        if plan is not None and plan.spec is not spec and not _same_run(plan.spec, spec):
            plan = None  # made for other inputs: plan afresh

        def job(rep: TaskReporter):
            made = plan if plan is not None else core.plan_unsample(spec)
            rep.planned(made)  # run_unsample does not announce a plan it is handed
            return core.run_unsample(made, rep, output=output, overwrite=overwrite, max_memory=max_memory)

        # in-memory runs (CPU and CUDA) hand out views of the final output, which never changes again;
        # streamed runs reuse a staging buffer, so their frames are copied
        return self.run_in_thread(job, share_frames=output is None)


def _same_run(a: "core.UnsampleSpec", b: "core.UnsampleSpec") -> bool:
    """Two specs of the same run: the very same latent, an equal family and equal parameters."""
    fields = ("frames", "device", "chunk_frames", "threads", "source_name", "source_sha256")
    return (a.latent is b.latent and a.family == b.family and a.params() == b.params()
            and all(getattr(a, f) == getattr(b, f) for f in fields))
