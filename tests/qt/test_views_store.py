"""FrameStore: chunks kept by reference, per-step statistics off the GUI thread, stale work dropped, pacing."""
import threading

import numpy as np
import pytest
import torch

from support import WAIT_MS
from unsampler_gui import core
from unsampler_gui.core.stats import frame_stats
from unsampler_gui.qt import frame_store as frame_store_mod
from unsampler_gui.qt.frame_store import FrameStore
from views_helpers import fake_frames, fake_plan, feed, finish, settle


def test_store_holds_10k_frames_by_reference(qtbot, store):
    plan = fake_plan(10000)
    out = fake_frames(plan)
    added, resets = [], []
    store.framesAdded.connect(lambda a, b: added.append((a, b)))
    store.reset.connect(lambda: resets.append(1))
    feed(store, plan, out, chunk=512)
    assert resets == [1]
    assert len(added) == 20 and added[0] == (0, 512) and added[-1] == (9728, 10000)
    assert store.n_steps == store.available == 10000 and store.batch == 1
    assert store.family.name == "SD15" and store.frame_shape == (4, 8, 8) and not store.is_video
    for step in (0, 511, 512, 9999):
        f = store.frame(step)
        assert f.data_ptr() == out[step].data_ptr()  # a view, never a copy
    assert store.sigma(10) == pytest.approx(float(plan.model_sigmas[10]))
    assert store.raw_sigma(10) == pytest.approx(float(plan.raw_sigmas[10]))
    assert store.position(42) == 42
    settle(qtbot, store)
    ref = frame_stats(out)
    np.testing.assert_allclose(store.stats.series("mean"), ref.mean)
    np.testing.assert_allclose(store.stats.series("std"), ref.std)
    assert store.stats.contiguous == 10000
    finish(store, plan, out)
    assert store.is_finished and store.frame(600).data_ptr() == out[600].data_ptr()


def test_statistics_never_run_on_the_gui_thread(qtbot, store, monkeypatch):
    """``add`` only files the chunk: the statistics are computed on the store's thread, and ``add`` does not
    wait for them (here they are held back until every chunk is in). The GUI cost is in benchmarks/bench_gui."""
    plan = fake_plan(10000, spatial=(64, 64))  # SD1.5 512x512: 64 KiB a frame, 640 MiB in all
    out = torch.empty(plan.out_shape)
    gate, threads = threading.Event(), set()

    def held_stats(frames):
        threads.add(threading.get_ident())
        assert gate.wait(WAIT_MS / 1000)
        return frame_stats(frames)

    monkeypatch.setattr(frame_store_mod, "frame_stats", held_stats)
    store.begin(plan)
    chunk = 128  # the engine's 8 MiB chunks
    try:
        for c0 in range(0, 10000, chunk):
            store.add(c0, min(10000, c0 + chunk), out[c0:c0 + chunk])
        assert store.available == 10000 and store.stats.count == 0 and store.busy()
    finally:
        gate.set()
    settle(qtbot, store)
    assert store.stats.count == 10000
    assert threads and threading.get_ident() not in threads


def test_batch_and_video_indexing(qtbot, store):
    plan = fake_plan(50, batch=3, family="WAN21_T2V", spatial=(4, 6))
    out = feed(store, plan, chunk=7)
    assert store.batch == 3 and store.is_video and store.time_steps == 3 and store.channels == 16
    assert torch.equal(store.frame(20, 2), out[20 * 3 + 2])
    settle(qtbot, store)
    np.testing.assert_allclose(store.stats.series("max", item=1), frame_stats(out).max[1::3])
    with pytest.raises(IndexError):
        store.frame(0, 3)


def test_selected_frames_and_out_of_order_chunks(qtbot, store):
    plan = fake_plan(100, frames=(90, 10, 50))
    out = fake_frames(plan)
    store.begin(plan)
    store.add(1, 3, out[1:3])
    assert store.available == 0 and store.has(2) and not store.has(0)
    store.add(0, 1, out[0:1])
    assert store.available == 3
    assert [store.position(i) for i in range(3)] == [90, 10, 50]
    assert store.sigma(1) == pytest.approx(float(plan.model_sigmas[10]))


def test_a_new_run_drops_the_old_runs_statistics(qtbot, store):
    plan = fake_plan(2000)
    feed(store, plan, chunk=100)  # 20 statistics tasks queued
    plan2 = fake_plan(30)
    store.begin(plan2)
    assert store.stats.n_steps == 30 and store.stats.count == 0 and not store.busy()
    changed = []
    store.statsChanged.connect(lambda a, b: changed.append((a, b)))
    # the new run's first chunk is answered after whatever the old run's task in flight sent (one thread, in order)
    with qtbot.waitSignal(store.statsChanged, timeout=WAIT_MS):
        store.add(0, 30, fake_frames(plan2))
    assert changed == [(0, 30)] and store.stats.count == 30
    store.clear()
    assert store.n_steps == 0 and store.available == 0 and store.plan is None


def test_finish_without_partials_takes_the_result(qtbot, store):
    plan = fake_plan(40)
    out = fake_frames(plan)
    store.begin(plan)
    added = []
    store.framesAdded.connect(lambda a, b: added.append((a, b)))
    store.finish(core.UnsampleResult(plan=plan, latent=out, path=None, seconds=0.0, device="cpu"))
    assert store.available == 40 and added == [(0, 40)]
    settle(qtbot, store)
    assert store.stats.count == 40


class _Renderer:
    """A view that renders frames of the store: busy for its first ``busy_for`` questions."""

    def __init__(self, log, busy_for):
        self.log, self.left = log, busy_for

    def busy(self):
        self.left -= 1
        self.log.append("busy?")
        return self.left >= 0


def test_paced_store_says_when_the_plan_and_the_first_frames_are_taken(qtbot):
    store = FrameStore(paced=True)
    store.first_frames_limit_ms = WAIT_MS  # the renderer's answers decide here, not the clock
    log = []
    view = _Renderer(log, busy_for=3)
    store.add_renderer(view)
    store.planTaken.connect(lambda: log.append("plan taken"))
    store.firstFramesTaken.connect(lambda: log.append("first frames taken"))
    plan = fake_plan(40)
    with qtbot.waitSignal(store.planTaken, timeout=WAIT_MS):
        store.begin(plan)
    assert log == ["plan taken"]
    out = fake_frames(plan)
    with qtbot.waitSignal(store.firstFramesTaken, timeout=WAIT_MS):
        store.add(0, 10, out[:10])
    assert log == ["plan taken"] + ["busy?"] * 4 + ["first frames taken"]  # after the renderer was idle
    store.add(10, 40, out[10:])  # later chunks are not paced
    settle(qtbot, store)
    assert log[-1] == "first frames taken"
    store.shutdown()


def test_unpaced_store_starts_no_pacing(qtbot, store):
    log = []
    store.add_renderer(_Renderer(log, busy_for=0))
    store.planTaken.connect(lambda: log.append("plan taken"))
    store.firstFramesTaken.connect(lambda: log.append("first frames taken"))
    feed(store, fake_plan(40), chunk=10)
    settle(qtbot, store)
    assert log == []  # (and no timer is left running: the autouse check)
