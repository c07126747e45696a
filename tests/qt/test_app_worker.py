"""The worker contract: signal order, cancel, superseded jobs, errors as objects, joins; the one background
mechanism under it (newest generation wins, cancellable); the declared pacing."""
from __future__ import annotations

import threading

import torch
from PySide6.QtCore import QTimer

from support import WAIT_MS
from unsampler_gui import core
from unsampler_gui.qt.background import Background
from unsampler_gui.qt.errors import user_message
from unsampler_gui.qt.worker import Pacing, UnsampleWorker, Worker

WAIT_S = WAIT_MS / 1000


def _record(w):
    log = []
    w.started.connect(lambda: log.append("started"))
    w.progress.connect(lambda d, t: log.append(("progress", d, t)))
    w.partial.connect(lambda a, b, f: log.append(("partial", a, b)))
    w.result.connect(lambda v: log.append(("result", v)))
    w.error.connect(lambda e: log.append(("error", e)))
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


def test_error_is_the_exception_worded_at_the_edge(qtbot):
    w = Worker()
    log = _record(w)

    def bad(rep):
        raise core.BadParameterError("steps must be between 1 and 10000, got 0")

    with qtbot.waitSignal(w.finished, timeout=WAIT_MS):
        w.run_in_thread(bad)
    (err,) = [x[1] for x in log if x[0] == "error"]
    assert isinstance(err, core.BadParameterError) and log[-1] == "finished"
    assert user_message(err) == "steps must be between 1 and 10000, got 0"
    assert err.__traceback__ is None  # logged on the worker, then dropped with the job's frames

    def crash(rep):
        return 1 / 0

    log.clear()
    with qtbot.waitSignal(w.finished, timeout=WAIT_MS):
        w.run_in_thread(crash)
    (err,) = [x[1] for x in log if x[0] == "error"]
    assert isinstance(err, ZeroDivisionError)
    text = user_message(err)
    assert "ZeroDivisionError" in text and "Traceback" not in text and "\n" not in text
    w.shutdown()


def test_cancel_and_supersede(qtbot):
    w = Worker()
    log = _record(w)
    running = threading.Event()

    def slow(rep):
        running.set()
        while not rep.is_cancelled():
            threading.Event().wait(0.01)
        return "old"

    w.run_in_thread(slow)
    first = w.job_id
    assert running.wait(WAIT_S)
    with qtbot.waitSignal(w.finished, timeout=WAIT_MS):
        w.run_in_thread(lambda rep: "new")  # cancels the first; its signals are dropped
    assert w.job_id == first + 1
    assert ("result", "new") in log and ("result", "old") not in log
    assert log.count("finished") == 1 and log.count("started") == 1

    log.clear()
    running.clear()
    with qtbot.waitSignal(w.finished, timeout=WAIT_MS):
        w.run_in_thread(slow)
        assert running.wait(WAIT_S)
        w.cancel()
    assert log == ["started", "cancelled", "finished"]
    running.clear()
    w.run_in_thread(slow)
    assert running.wait(WAIT_S) and w.is_running()
    w.shutdown()  # cancels and joins
    assert w.is_idle() and not w.is_running()


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


def _spec(steps=30, chunk=7):
    return core.UnsampleSpec(family=core.get_family("SD15"), latent=torch.randn(1, 4, 8, 8), steps=steps,
                             chunk_frames=chunk)


# -- the one background mechanism ---------------------------------------------------------------

def _answers(bg):
    got = []
    bg.done.connect(lambda tag, v: got.append(("done", tag, v)))
    bg.failed.connect(lambda tag, e: got.append(("failed", tag, e)))
    bg.cancelled.connect(lambda tag: got.append(("cancelled", tag)))
    bg.finished.connect(lambda tag: got.append(("finished", tag)))
    return got


def test_latest_only_answers_the_newest_request_only(qtbot):
    bg = Background(latest_only=True)
    got = _answers(bg)
    running, gate, ran = threading.Event(), threading.Event(), []

    def first(task):
        running.set()
        assert gate.wait(WAIT_S)
        ran.append("first")
        return task.is_cancelled()  # superseded while it ran: it knows

    def other(name):
        return lambda task: ran.append(name) or name

    bg.submit(first, "first")
    assert running.wait(WAIT_S)  # on the pool's one thread
    bg.submit(other("second"), "second")  # queued...
    bg.submit(other("third"), "third")  # ...and removed from the queue by this one
    assert bg.generation == 3
    gate.set()
    with qtbot.waitSignal(bg.finished, timeout=WAIT_MS):
        pass
    assert got == [("done", "third", "third"), ("finished", "third")]
    assert ran == ["first", "third"] and not bg.pending()
    bg.shutdown()


def test_drop_starts_a_new_generation_and_cancels_what_runs(qtbot):
    bg = Background(threads=2)
    got = _answers(bg)
    running, seen = threading.Semaphore(0), []

    def cooperative(task):
        running.release()
        while not task.is_cancelled():
            threading.Event().wait(0.005)
        seen.append(task.generation)
        return "stale"

    bg.submit(cooperative, "a")
    bg.submit(cooperative, "b")
    assert running.acquire(timeout=WAIT_S) and running.acquire(timeout=WAIT_S)
    old = bg.generation
    bg.drop()
    assert bg.generation == old + 1 and not bg.pending()
    with qtbot.waitSignal(bg.finished, timeout=WAIT_MS) as sig:
        bg.submit(lambda task: "fresh", "c")  # the new generation is answered, the old one never
    assert sig.args == ["c"] and got == [("done", "c", "fresh"), ("finished", "c")]
    assert bg.wait(WAIT_MS) and seen == [old, old]
    bg.shutdown()


def test_cancel_is_answered_and_errors_are_objects(qtbot):
    bg = Background()
    got = _answers(bg)
    running = threading.Event()

    def until_cancelled(task):
        running.set()
        while not task.is_cancelled():
            threading.Event().wait(0.005)
        raise core.Cancelled("stopped")

    bg.submit(until_cancelled, 1)
    assert running.wait(WAIT_S)
    with qtbot.waitSignal(bg.finished, timeout=WAIT_MS):
        bg.cancel()
    assert got == [("cancelled", 1), ("finished", 1)]
    got.clear()
    with qtbot.waitSignal(bg.finished, timeout=WAIT_MS):
        bg.submit(lambda task: {}["missing"], 2)
    (kind, tag, exc), end = got
    assert (kind, tag, end) == ("failed", 2, ("finished", 2)) and isinstance(exc, KeyError)
    bg.shutdown()


def test_posted_payloads_arrive_in_order_until_superseded(qtbot):
    bg = Background(latest_only=True)
    posted = []
    bg.posted.connect(lambda tag, p: posted.append((tag, p)))

    def chatty(task):
        for i in range(5):
            task.post(i)
        return "done"

    with qtbot.waitSignal(bg.finished, timeout=WAIT_MS):
        bg.submit(chatty, "x")
    assert posted == [("x", i) for i in range(5)]
    bg.shutdown()
    assert bg.closed and bg.submit(chatty, "late").is_cancelled()  # a closed pool takes no work


# -- pacing: a declared part of the worker, acknowledged by whoever feeds the views -----------------

def test_paced_job_holds_after_its_plan_and_first_frames_until_acknowledged(qtbot):
    w = UnsampleWorker(pacing=Pacing(plan_wait=WAIT_S, first_frames_wait=WAIT_S))
    log = []

    def planned(plan):
        log.append("planned")
        QTimer.singleShot(0, lambda: (log.append("plan ack"), w.plan_ack()))

    def partial(a, b, f):
        log.append(("partial", a))
        if a == 0:  # nothing else may arrive before the acknowledgement
            QTimer.singleShot(0, lambda: (log.append("frames ack"), w.first_frames_ack()))

    w.planned.connect(planned)
    w.partial.connect(partial)
    with qtbot.waitSignal(w.finished, timeout=WAIT_MS):
        w.run(_spec())
    assert log[:5] == ["planned", "plan ack", ("partial", 0), "frames ack", ("partial", 7)]
    assert [x for x in log if isinstance(x, tuple)] == [("partial", a) for a in (0, 7, 14, 21, 28)]
    w.shutdown()


def test_paced_job_goes_on_by_itself_when_nobody_acknowledges(qtbot):
    w = UnsampleWorker(pacing=Pacing(plan_wait=0.05, first_frames_wait=0.05))
    results = []
    w.result.connect(results.append)
    with qtbot.waitSignal(w.finished, timeout=WAIT_MS):
        w.run(_spec())
    assert results and results[0].latent.shape[0] == 30
    w.shutdown()


def test_cancel_while_held_for_the_views(qtbot):
    w = UnsampleWorker(pacing=Pacing(plan_wait=WAIT_S, first_frames_wait=WAIT_S))
    w.planned.connect(lambda plan: w.plan_ack())
    log = _record(w)
    w.partial.connect(lambda a, b, f: w.cancel())
    with qtbot.waitSignal(w.finished, timeout=WAIT_MS):
        w.run(_spec())
    assert "cancelled" in log and not [x for x in log if x[0] == "result"]
    assert [x for x in log if x[0] == "partial"] == [("partial", 0, 7)]
    w.shutdown()


def test_an_unpaced_job_never_waits(qtbot, monkeypatch):
    from unsampler_gui.qt import worker as worker_mod

    def never(self, event, seconds):
        raise AssertionError("an unpaced job waited")

    monkeypatch.setattr(worker_mod.TaskReporter, "_wait", never)
    w = UnsampleWorker()
    results = []
    w.result.connect(results.append)
    with qtbot.waitSignal(w.finished, timeout=WAIT_MS):
        w.run(_spec())
    assert results and results[0].latent.shape[0] == 30
    w.shutdown()


def test_in_memory_partials_are_views_streamed_ones_copies(qtbot, tmp_path):
    from safetensors.torch import load_file

    for output in (None, str(tmp_path / "x.latent")):
        w = UnsampleWorker()
        parts, results = [], []
        w.partial.connect(lambda a, b, f: parts.append(f))
        w.result.connect(results.append)
        with qtbot.waitSignal(w.finished, timeout=WAIT_MS):
            w.run(_spec(), output=output)
        res = results[0]
        ptrs = [p.untyped_storage().data_ptr() for p in parts]
        if output is None:
            assert set(ptrs) == {res.latent.untyped_storage().data_ptr()}  # views of the one output
        else:
            assert res.latent is None and len(set(ptrs)) == len(parts)  # each its own copy of the staging rows
            assert torch.equal(torch.cat(parts), load_file(output)["latent_tensor"])
        w.shutdown()
