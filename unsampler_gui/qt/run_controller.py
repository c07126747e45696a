"""The session's run on the ``UnsampleWorker``: a thin Qt adapter.

``core.session.Session`` decides (can this run? is the result current? what is the ETA?); this object
starts the worker when the session says so, hands the worker's answers to the session, and tells the
window what to show through its signals. It holds no state of its own. The frames on screen never
depend on a run (they are the live sequence of the current inputs, ``FrameStore.follow``): a run makes
the whole batch in memory, within the budget, for the exports that read it; cancelling it loses nothing.
"""
from __future__ import annotations

import time
from typing import Callable, Optional

from PySide6.QtCore import QObject, Signal, Slot

from .. import core
from ..core.session import Session
from . import errors
from .worker import UnsampleWorker


class RunController(QObject):
    busyChanged = Signal(bool)  # a run started (True) or ended (False)
    status = Signal(str)
    error = Signal(str, str)  # title, message
    planned = Signal(object)  # the run's Plan, before its first frames
    progressed = Signal(int, int, str, str)  # done, total, progress text, ETA text
    resultReady = Signal(object)  # the UnsampleResult, kept by the session
    discarded = Signal()  # the run failed or was cancelled: nothing of it is kept
    finished = Signal()  # the run ended (result, error or cancel), after the signals above

    def __init__(self, session: Session, worker: UnsampleWorker, is_loading: Callable[[], bool],
                 parent: Optional[QObject] = None):
        super().__init__(parent)
        self.session = session
        self.worker = worker
        self._is_loading = is_loading
        self._quiet = False  # the run waiting for the files was asked for by --run
        worker.started.connect(self._started)
        worker.planned.connect(self._planned)
        worker.progress.connect(self._progress)
        worker.result.connect(self._result)
        worker.error.connect(errors.worded(self._error))
        worker.cancelled.connect(self._cancelled)
        worker.finished.connect(self._finished)

    # -- asked by the user ----------------------------------------------------------------------------
    @Slot()
    def start(self, quiet: bool = False) -> bool:
        """Start a run of the current inputs (cancelling one in progress); after the files being read.
        ``quiet``: a run that cannot start only says why on the status line (``--run``: the frames are on
        screen anyway, through the live sequence)."""
        if self._is_loading():
            self.session.run_pending = True
            self._quiet = quiet
            self.status.emit("waiting for the file to load…")
            return False
        try:
            spec = self.session.begin_run()
        except core.UnsamplerError as e:
            self.status.emit(str(e))
            if not quiet:
                self.error.emit("Run", str(e))
            return False
        self.worker.run(spec, plan=self.session.plan())  # the estimate's plan, when it is of these inputs
        return True

    @Slot()
    def cancel(self) -> None:
        if self.worker.is_running():
            self.worker.cancel()
            self.status.emit("cancelling…")

    def run_when_ready(self) -> None:
        """Run as soon as the files being opened have arrived."""
        if self._is_loading():
            self.session.run_pending = True
            self._quiet = True
        else:
            self.start(quiet=True)

    @Slot()
    def files_idle(self) -> None:
        """No file is being read any more: start the run that was waiting for it."""
        if self.session.take_pending():
            self.start(quiet=self._quiet)


    def is_running(self) -> bool:
        return self.worker.is_running()

    # -- answers of the worker --------------------------------------------------------------------------
    @Slot()
    def _started(self) -> None:
        self.session.run_started(time.monotonic())
        self.busyChanged.emit(True)
        self.status.emit("running…")

    @Slot(object)
    def _planned(self, plan) -> None:
        self.planned.emit(plan)
        self.progressed.emit(0, len(plan.positions), "", "")
        self.status.emit(f"running: {plan.describe()} on {plan.device.type}")

    @Slot(int, int)
    def _progress(self, done: int, total: int) -> None:
        text, eta = self.session.progress(done, total, time.monotonic())
        self.progressed.emit(done, total, text, eta)

    @Slot(object)
    def _result(self, result) -> None:
        text = self.session.finish_run(result)
        self.resultReady.emit(result)
        self.status.emit(text)

    @Slot(str)
    def _error(self, text: str) -> None:
        self.session.end_run()
        self.discarded.emit()
        self.status.emit(text)
        self.error.emit("Run", text)

    @Slot()
    def _cancelled(self) -> None:
        self.session.end_run()
        self.discarded.emit()
        self.status.emit("run cancelled: the frames shown are unchanged (they need no run)")

    @Slot()
    def _finished(self) -> None:
        self.busyChanged.emit(False)
        self.finished.emit()
