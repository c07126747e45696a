"""The worker contract: signal order, cancel, superseded jobs, errors without tracebacks, joins."""
from __future__ import annotations

import threading

import torch

from unsampler_gui import core
from unsampler_gui.qt.worker import LatestOnly, UnsampleWorker, Worker

WAIT_MS = 30000


def _record(w):
    log = []
    w.started.connect(lambda: log.append("started"))
    w.progress.connect(lambda d, t: log.append(("progress", d, t)))
    w.partial.connect(lambda a, b, f: log.append(("partial", a, b)))
    w.result.connect(lambda v: log.append(("result", v)))
    w.error.connect(lambda t: log.append(("error", t)))
    w.cancelled.connect(lambda: log.append("cancelled"))
    w.finished.connect(lambda: log.append("finished"))
    return log


def test_signal_order(qtbot):
    w = Worker()
    log = _record(w)

    def job(rep):
        for i in range(5):
            rep.progress(i + 1, 5)
        return 42

    with qtbot.waitSignal(w.finished, timeout=WAIT_MS):
        w.run_in_thread(job)
    assert log[0] == "started" and log[-1] == "finished" and ("result", 42) in log
    assert log[-2] == ("result", 42)
    assert ("progress", 5, 5) in log  # the last progress always goes through
    assert len([x for x in log if x[0] == "progress"]) <= 5
    w.shutdown()


def test_error_is_a_message_without_traceback(qtbot):
    w = Worker()
    log = _record(w)

    def bad(rep):
        raise core.BadParameterError("steps must be between 1 and 10000, got 0")

    with qtbot.waitSignal(w.finished, timeout=WAIT_MS):
        w.run_in_thread(bad)
    assert ("error", "steps must be between 1 and 10000, got 0") in log and log[-1] == "finished"

    def crash(rep):
        return 1 / 0

    log.clear()
    with qtbot.waitSignal(w.finished, timeout=WAIT_MS):
        w.run_in_thread(crash)
    (err,) = [x[1] for x in log if x[0] == "error"]
    assert "ZeroDivisionError" in err and "Traceback" not in err and "\n" not in err
    w.shutdown()


def test_cancel_and_supersede(qtbot):
    w = Worker()
    log = _record(w)
    gate = threading.Event()

    def slow(rep):
        while not rep.is_cancelled():
            gate.wait(0.01)
        return "old"

    w.run_in_thread(slow)
    first = w.job_id
    with qtbot.waitSignal(w.finished, timeout=WAIT_MS):
        w.run_in_thread(lambda rep: "new")  # cancels the first; its signals are dropped
    assert w.job_id == first + 1
    assert ("result", "new") in log and ("result", "old") not in log
    assert log.count("finished") == 1
    w.shutdown()
    assert not w._threads

    log.clear()
    with qtbot.waitSignal(w.finished, timeout=WAIT_MS):
        w.run_in_thread(slow)
        w.cancel()
    assert "cancelled" in log and log[-1] == "finished"
    w.shutdown()


def test_unsample_worker_partials_and_plan(qtbot):
    w = UnsampleWorker()
    spec = core.UnsampleSpec(family=core.get_family("SD15"), latent=torch.randn(2, 4, 8, 8), steps=30,
                             chunk_frames=7)
    plans, parts, results = [], [], []
    w.planned.connect(plans.append)
    w.partial.connect(lambda a, b, f: parts.append((a, b, f)))
    w.result.connect(results.append)
    with qtbot.waitSignal(w.finished, timeout=WAIT_MS):
        w.run(spec)
    (plan,) = plans
    assert plan.n_steps == 30
    res = results[0]
    assert [(a, b) for a, b, _ in parts] == [(0, 7), (7, 14), (14, 21), (21, 28), (28, 30)]
    got = torch.cat([f for _, _, f in parts])
    assert torch.equal(got, res.latent)
    w.shutdown()


def test_latest_only_delivers_newest(qtbot):
    lo = LatestOnly()
    got = []
    lo.ready.connect(got.append)
    gate = threading.Event()
    lo.submit(lambda: gate.wait(0.2) or "first")
    lo.submit(lambda: "second")
    lo.submit(lambda: "third")
    qtbot.waitUntil(lambda: bool(got), timeout=WAIT_MS)
    lo.wait(WAIT_MS)
    qtbot.wait(20)
    assert got == ["third"]
    lo.shutdown()


def _spec(steps=30, chunk=7):
    return core.UnsampleSpec(family=core.get_family("SD15"), latent=torch.randn(1, 4, 8, 8), steps=steps,
                             chunk_frames=chunk)


def test_job_waits_after_its_first_frames_until_the_views_are_idle(qtbot):
    from PySide6.QtCore import QTimer

    w = UnsampleWorker()
    busy = {"on": True}
    log = []
    w.views_busy = lambda: busy["on"]
    w.partial.connect(lambda a, b, f: log.append(("partial", a)))

    def first(a, b, f):
        if a == 0:  # the views become idle a little later; nothing else may arrive before that
            QTimer.singleShot(100, lambda: (log.append("idle"), busy.update(on=False)))

    w.partial.connect(first)
    with qtbot.waitSignal(w.finished, timeout=WAIT_MS):
        w.run(_spec())
    assert log[:3] == [("partial", 0), "idle", ("partial", 7)]
    assert [x for x in log if x != "idle"] == [("partial", a) for a in (0, 7, 14, 21, 28)]
    w.shutdown()


def test_job_does_not_wait_forever_for_busy_views_or_without_a_probe(qtbot):
    for probe in (lambda: True, None):
        w = UnsampleWorker()
        w.views_busy = probe
        results = []
        w.result.connect(results.append)
        with qtbot.waitSignal(w.finished, timeout=WAIT_MS):
            w.run(_spec())
        assert results and results[0].latent.shape[0] == 30
        w.shutdown()


def test_cancel_while_waiting_for_the_views(qtbot):
    w = UnsampleWorker()
    w.views_busy = lambda: True
    log = _record(w)
    w.partial.connect(lambda a, b, f: w.cancel())
    with qtbot.waitSignal(w.finished, timeout=WAIT_MS):
        w.run(_spec())
    assert "cancelled" in log and not [x for x in log if x[0] == "result"]
    w.shutdown()
