"""pytest-qt fixtures for the app, and napari-style checks that no test leaves a thread or timer running.

Every test fails if, after its widgets are closed, a ``QThread`` it started is still running, a
``QThreadPool`` it started work on (any pool: the app's are all private) is still busy, or a ``QTimer``
started from Python is still active.
"""
from __future__ import annotations

import os
import traceback
import weakref

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QThread, QThreadPool, QTimer  # noqa: E402

from support import WAIT_MS  # noqa: E402


def _where() -> str:
    frames = traceback.extract_stack(limit=5)[:-2]
    return " < ".join(f"{os.path.basename(f.filename)}:{f.lineno}" for f in reversed(frames))


@pytest.fixture(autouse=True)
def _dangling_threads(monkeypatch, request):
    """Fail the test if a QThread it started is still running, or a thread pool it started work on is still
    busy, when it ends (after qtbot closed its widgets). napari's ``_dangling_qthread_pool`` pattern:
    ``QThreadPool.start`` is patched for every pool, so private pools are seen too."""
    threads = weakref.WeakKeyDictionary()  # thread -> where it was started
    pools = weakref.WeakKeyDictionary()  # pool -> where work was last started on it
    base_thread_start, base_pool_start = QThread.start, QThreadPool.start

    def thread_start(self, *args):
        threads[self] = _where()
        return base_thread_start(self, *args)

    def pool_start(self, *args):
        pools[self] = _where()
        return base_pool_start(self, *args)

    monkeypatch.setattr(QThread, "start", thread_start)
    monkeypatch.setattr(QThreadPool, "start", pool_start)
    yield
    if request.node.get_closest_marker("allow_dangling_threads"):
        return
    running, busy = [], []
    for t, where in list(threads.items()):
        try:
            if t.isRunning():
                running.append(f"{t.objectName() or type(t).__name__} started at {where}")
        except RuntimeError:  # the C++ object is gone, so is the thread
            continue
    pools.setdefault(QThreadPool.globalInstance(), "the global pool")
    for pool, where in list(pools.items()):
        try:
            n = pool.activeThreadCount()
        except RuntimeError:  # a deleted pool has joined its threads
            continue
        if n:
            owner = pool.parent()
            busy.append(f"{n} thread(s) of {owner.objectName() if owner else 'a pool'} (last started at {where})")
    if running or busy:  # pragma: no cover - only when a test leaks
        for t in list(threads):  # do not let one test's leak break the next ones
            try:
                t.wait(5000)
            except RuntimeError:
                pass
        for pool in list(pools):
            try:
                pool.waitForDone(5000)
            except RuntimeError:
                pass
        pytest.fail(f"threads left running: {running}; pools left busy: {busy}", pytrace=False)


@pytest.fixture(autouse=True)
def _dangling_qtimers(monkeypatch, request):
    """Fail the test if a QTimer started from Python (or a singleShot callback) is still pending at the end."""
    started = weakref.WeakKeyDictionary()  # timer -> where it was started (file:line)
    base_start = QTimer.start

    def start(self, *args):
        started[self] = _where()
        return base_start(self, *args)

    monkeypatch.setattr(QTimer, "start", start)
    pending = []
    base_single_shot = QTimer.singleShot

    def single_shot(*args):
        *head, target = args
        if callable(target) and not hasattr(target, "emit"):
            token = object()
            pending.append(token)

            def call():
                pending.remove(token)
                target()

            return base_single_shot(*head, call)
        return base_single_shot(*args)

    monkeypatch.setattr(QTimer, "singleShot", single_shot)
    yield
    if request.node.get_closest_marker("allow_dangling_timers"):
        return
    active = []
    for t, where in list(started.items()):
        try:
            if t.isActive():
                active.append(f"{t.objectName() or 'QTimer'} started at {where}")
        except RuntimeError:
            continue
    if active or pending:
        for t in list(started):
            try:
                t.stop()
            except RuntimeError:
                pass
        pytest.fail(f"timers left active: {active}; singleShot callbacks pending: {len(pending)}", pytrace=False)


@pytest.fixture
def settings(tmp_path):
    from unsampler_gui.qt.settings import Settings
    return Settings(str(tmp_path / "settings.ini"))


@pytest.fixture
def window(qtbot, settings):
    """The main window on the embedded default (SD15 + the sample latent), ready to run."""
    from unsampler_gui.qt.main_window import MainWindow
    win = MainWindow(settings)
    qtbot.addWidget(win)
    with qtbot.waitSignal(win.panel.latentChanged, timeout=WAIT_MS):
        assert win.open_sample()
    win.show()
    qtbot.waitUntil(lambda: not win.panel.is_loading(), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: win.plot.data() is not None, timeout=WAIT_MS)
    yield win
    win.close()


@pytest.fixture
def set_steps(qtbot):
    """``set_steps(win, n)``: set steps on the form and wait until the estimate follows."""
    def set_(win, steps: int) -> None:
        win.panel.set_params({"steps": steps}, family=False)
        qtbot.waitUntil(lambda: win.panel.estimate() is not None and win.panel.estimate().n_frames == steps,
                        timeout=WAIT_MS)
    return set_


@pytest.fixture
def run_and_wait(qtbot):
    """``run_and_wait(win)``: Run, wait for the end, return the result."""
    def run(win):
        with qtbot.waitSignal(win.runFinished, timeout=WAIT_MS):
            assert win.start_run()
        return win.result()
    return run


def pytest_configure(config):
    config.addinivalue_line("markers", "allow_dangling_threads: skip the running-thread and busy-pool check")
    config.addinivalue_line("markers", "allow_dangling_timers: skip the active-timer check")


@pytest.fixture
def store(qtbot):
    """An empty FrameStore (the views' model), shut down after the test."""
    from unsampler_gui.qt.frame_store import FrameStore

    s = FrameStore()
    yield s
    s.shutdown()


@pytest.fixture
def viewer(qtbot, store):
    """A shown ``FrameViewer`` over the ``store`` fixture."""
    from unsampler_gui.qt.frame_viewer import FrameViewer

    v = FrameViewer(store)
    qtbot.addWidget(v)
    v.resize(480, 720)
    v.show()
    qtbot.waitExposed(v)
    yield v
    v.close()
    v.shutdown()
