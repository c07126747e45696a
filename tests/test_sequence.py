"""The sequence: frames on demand equal the frames of a full run and a streamed export, in bounded memory."""
import os
import random
import subprocess
import sys

import numpy as np
import pytest
import torch

from unsampler_gui.core import plan_unsample, run_unsample
from unsampler_gui.core.latent_io import read_latent
from unsampler_gui.core.sequence import (FrameCache, Sequence, auto_stride, coarse_first, keyframe_interval)
from unsampler_gui.core.stats import StepStats


def _bits(t):
    return t.contiguous().view(torch.int32)


def _assert_all_frames_equal(seq, full, order):
    B = seq.batch
    for i in order:
        want = full[i * B:(i + 1) * B]
        assert torch.equal(_bits(seq.frame(i)), _bits(want)), f"frame {i} differs"


CASES = [
    # family, shape, steps
    ("SD15", (2, 4, 8, 8), 23),
    ("Flux", (1, 16, 6, 6), 17),
    ("WAN21_T2V", (2, 16, 3, 6, 6), 19),
]


@pytest.mark.parametrize("noise", ["independent", "shared", "trajectory"])
@pytest.mark.parametrize("formula", ["model", "legacy"])
@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("family,shape,steps", CASES)
def test_every_frame_equals_the_full_run_in_any_order(make_spec, noise, formula, normalize, family, shape, steps):
    spec = make_spec(family, shape=shape, steps=steps, noise=noise, formula=formula, normalize=normalize, seed=7,
                     device="cpu")
    full = run_unsample(spec).latent
    plan = plan_unsample(spec)
    # a small keyframe budget: keyframes every few steps, so random access walks from them
    seq = Sequence(plan, cache_bytes=3 * plan.step_bytes, keyframe_bytes=4 * plan.step_bytes)
    if noise == "trajectory":
        assert seq.interval > 1
    order = list(range(seq.n_frames))
    random.Random(3).shuffle(order)
    _assert_all_frames_equal(seq, full, order)
    assert seq.cache.bytes <= 3 * plan.step_bytes
    assert seq.keyframe_bytes <= 4 * plan.step_bytes + plan.step_bytes


@pytest.mark.parametrize("noise", ["independent", "trajectory"])
def test_frames_equal_a_streamed_export_file(make_spec, tmp_path, noise):
    spec = make_spec("SDXL", shape=(2, 4, 8, 8), steps=31, noise=noise, seed=2, device="cpu", start_at_step=3,
                     end_at_step=28)
    path = tmp_path / "out.latent"
    run_unsample(spec, output=str(path), max_memory=1 << 30)
    stored = read_latent(path).tensor
    seq = Sequence(plan_unsample(spec), keyframe_bytes=2 * plan_unsample(spec).step_bytes)
    _assert_all_frames_equal(seq, stored, reversed(range(seq.n_frames)))


def test_selected_positions_are_frames_in_output_order(make_spec):
    spec = make_spec(steps=20, noise="trajectory", seed=4, device="cpu", frames=(15, 2, 9, 9))
    full = run_unsample(spec).latent
    seq = Sequence(plan_unsample(spec), keyframe_bytes=1)
    assert seq.n_frames == 4 and seq.step(0) == 15
    _assert_all_frames_equal(seq, full, [3, 0, 2, 1])
    assert [len(f) for f in seq.frames([1, 1, 0])] == [1, 1, 1]


def test_cache_is_bounded_by_bytes_and_lru():
    c = FrameCache(3 * 400)
    for i in range(5):
        c.put(i, torch.zeros(100))
    assert len(c) == 3 and c.bytes == 1200 and 0 not in c and 4 in c
    c.get(2)
    c.put(5, torch.zeros(100))
    assert 2 in c and 3 not in c
    c.put(9, torch.zeros(1000))  # over the whole budget: not kept, nothing else dropped
    assert 9 not in c and len(c) == 3


def test_trajectory_keyframes_bound_memory_and_cost(make_spec):
    spec = make_spec(steps=400, noise="trajectory", seed=1, device="cpu", shape=(1, 4, 4, 4))
    plan = plan_unsample(spec)
    seq = Sequence(plan, cache_bytes=0, keyframe_bytes=10 * plan.step_bytes)
    assert seq.interval == keyframe_interval(400, plan.step_bytes, 10 * plan.step_bytes) == 40
    calls = []
    walk = seq._frames.walk
    seq._frames.walk = lambda start, stop, key=None: calls.append((start, stop, key and key.step)) or walk(start, stop, key)
    full = run_unsample(spec).latent
    assert torch.equal(seq.frame(399), full[399:400])
    assert seq.keyframes == 9  # steps 39, 79, ..., 359
    calls.clear()
    assert torch.equal(seq.frame(210), full[210:211])  # from the kept keyframe at 199: one short walk
    assert calls == [(210, 211, 199)]


def test_stats_fill_coarse_first_and_match_the_run(make_spec):
    for noise in ("independent", "trajectory"):
        spec = make_spec(shape=(2, 4, 8, 8), steps=50, noise=noise, seed=5, device="cpu")
        full = run_unsample(spec).latent
        seq = Sequence(plan_unsample(spec), keyframe_bytes=5 * plan_unsample(spec).step_bytes)
        want = StepStats(50, 2)
        want.add(0, 50, full)
        got = StepStats(50, 2)
        seen = []
        for idx, fs in seq.stats_chunks():
            seen.extend(idx)
            for j, i in enumerate(idx):
                got.add_stats(i, i + 1, type(fs)(*(getattr(fs, k)[j * 2:(j + 1) * 2] for k in ("mean", "std",
                                                                                             "min", "max"))))
        assert sorted(seen) == list(range(50))
        if noise == "independent":
            assert seen[:3] == [0, 49, 32]  # the ends, then ever finer
        np.testing.assert_array_equal(got.mean, want.mean)
        np.testing.assert_array_equal(got.std, want.std)


def test_stats_stop_when_cancelled(make_spec):
    seq = Sequence(plan_unsample(make_spec(steps=200, device="cpu")))
    seq_chunks = seq.stats_chunks(is_cancelled=lambda: True)
    assert list(seq_chunks) == []


@pytest.mark.parametrize("family,normalize", [("SD15", False), ("Flux", False), ("Flux", True)])
def test_expected_curves_follow_the_measured_ones(make_spec, family, normalize):
    shape = (1, 16, 48, 48) if family == "Flux" else (1, 4, 48, 48)
    spec = make_spec(family, shape=shape, steps=30, seed=9, device="cpu", normalize=normalize)
    full = run_unsample(spec).latent
    seq = Sequence(plan_unsample(spec))
    exp = seq.expected_stats()
    flat = full.reshape(30, -1).double()
    np.testing.assert_allclose(exp["std"][:, 0], flat.std(dim=1, correction=0).numpy(), rtol=0.03)
    np.testing.assert_allclose(exp["mean"][:, 0], flat.mean(dim=1).numpy(),
                               atol=0.05 * float(exp["std"][:, 0].max()))


def test_coarse_first_visits_each_once():
    for n in (0, 1, 2, 3, 10, 257):
        o = coarse_first(n)
        assert sorted(o) == list(range(n))
    assert coarse_first(9)[:4] == [0, 8, 4, 2]


def test_frame_numbers_sigmas_and_stride(make_spec):
    seq = Sequence(plan_unsample(make_spec(steps=100, device="cpu")))
    assert seq.sigmas[0] < seq.sigmas[-1]  # frame 0 is the least noisy
    i = seq.frame_at_sigma(seq.sigma(37) * 1.0000001)
    assert i == 37
    assert auto_stride(10000) == 25 and auto_stride(50) == 1
    with pytest.raises(Exception, match="outside"):
        seq.frame(100)


_THREADS_FREE_FRAMES = """
import sys, threading, torch
from unsampler_gui.core.devices import return_large_blocks
if sys.argv[1] == "1":
    assert return_large_blocks()
def rss():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
a = torch.ones(16 << 20, dtype=torch.uint8); del a  # glibc raises its threshold to this size
base, keep = rss(), []
def work():  # pool threads making frames on demand, as the views do
    for _ in range(3):
        b = torch.ones(16 << 20, dtype=torch.uint8)
        keep.append(torch.ones(1000))
        del b
ts = [threading.Thread(target=work) for _ in range(6)]
[t.start() for t in ts]; [t.join() for t in ts]
print((rss() - base) // 1024)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt and /proc are Linux's")
def test_large_blocks_are_returned_to_the_system():
    """Frames freed on pool threads go back to the system with ``return_large_blocks`` (not without it)."""
    def retained_mb(fixed: bool) -> int:
        r = subprocess.run([sys.executable, "-c", _THREADS_FREE_FRAMES, "1" if fixed else "0"], capture_output=True,
                           text=True, timeout=120, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        assert r.returncode == 0, r.stderr[-2000:]
        return int(r.stdout.strip().splitlines()[-1])

    fixed, default = retained_mb(True), retained_mb(False)
    assert fixed <= 16 < default


def test_schedule_step_counts_from_high_noise(make_spec):
    seq = Sequence(plan_unsample(make_spec(steps=50, start_at_step=5, end_at_step=40, device="cpu")))
    assert seq.n_frames == 35 and seq.step(0) == 0
    assert [seq.schedule_step(i) for i in (0, 34)] == [39, 5]  # frame 0 is the last sigma of the slice
    assert seq.sigma(0) == pytest.approx(float(seq.plan.schedule[39]))


def test_cached_frames_hold_only_their_own_bytes(make_spec):
    plan = plan_unsample(make_spec(shape=(2, 4, 8, 8), steps=40, device="cpu"))
    seq = Sequence(plan, cache_bytes=5 * plan.step_bytes)
    seq.frames(range(20))  # made as one group, cached frame by frame
    kept = [seq.cached(i) for i in range(20) if seq.cached(i) is not None]
    assert len(kept) == 5
    assert all(t.untyped_storage().nbytes() == plan.step_bytes for t in kept)


def test_a_smaller_cache_budget_drops_the_least_recently_used_at_once():
    c = FrameCache(5 * 400)
    for i in range(5):
        c.put(i, torch.zeros(100))
    c.get(0)
    c.resize(2 * 400)
    assert len(c) == 2 and c.bytes == 800 and 0 in c and 4 in c and 1 not in c
    c.resize(10 * 400)  # a bigger one keeps what is there
    c.put(7, torch.zeros(100))
    assert len(c) == 3 and c.max_bytes == 4000
