"""Chunk sizes, the staging share of the memory cap, and the order of a trajectory's chunks (both drivers)."""
import random

import pytest

from unsampler_gui.core import chunks, plan_unsample


def _replay(positions, chunk, every=None):
    """Follow ``trajectory_chunks`` as a driver does; return what each output position was made from."""
    state = {"last": None, "kept": set()}
    got, sizes, walked = [], [], 0
    for ch in chunks.trajectory_chunks(positions, chunk, every):
        steps = list(ch.steps)
        assert steps == list(range(ch.start, ch.stop)) and 1 <= len(steps) <= chunk
        if ch.start > 0:  # the frame before the chunk is at hand: the last one walked, or a kept keyframe
            assert state["last"] == ch.start - 1 or ch.start - 1 in state["kept"], (ch.start, state)
        state["last"] = ch.stop - 1
        if ch.keep:
            state["kept"].add(ch.stop - 1)
        walked += len(steps)
        for a, b, rows in ch.emits:
            assert a == len(got) and 0 < b - a <= chunk  # in output order, at most a chunk at a time
            rows = range(len(steps)) if rows is None else rows
            assert len(rows) == b - a
            got.extend(steps[j] for j in rows)
            sizes.append(b - a)
    return got, state["kept"], walked


@pytest.mark.parametrize("positions", [list(range(30)), [3, 4, 9, 29], list(range(29, -1, -1)),
                                       list(range(28, 0, -3)), [5, 2, 2, 9, 0, 23, 29, 6], [0], [7, 7, 7],
                                       [29, 3, 4, 5, 17, 0]])
@pytest.mark.parametrize("chunk", [1, 2, 5, 7, 64])
def test_every_output_comes_once_in_order_from_the_right_step(positions, chunk):
    got, kept, _ = _replay(positions, chunk)
    assert got == positions


@pytest.mark.parametrize("seed", range(20))
def test_random_orders_with_sparse_keyframes(seed):
    rnd = random.Random(seed)
    n = rnd.randint(1, 60)
    positions = [rnd.randrange(n) for _ in range(rnd.randint(1, 40))]
    chunk = rnd.randint(1, 9)
    every = chunk * rnd.randint(1, 4)
    got, kept, _ = _replay(positions, chunk, every)
    assert got == positions
    assert all((k + 1) % every == 0 for k in kept)


def test_steps_in_order_keep_no_keyframes_and_walk_once():
    got, kept, walked = _replay(list(range(0, 100, 3)), 8)
    assert kept == set() and walked == 100  # steps 0..99 (the last position), once


def test_a_reversed_trajectory_walks_about_twice():
    _, kept, walked = _replay(list(range(99, -1, -1)), 10)
    # the walk, then every chunk but the last again (the last one is emitted as the walk passes it)
    assert walked == 190 and kept == set(range(9, 99, 10))


def test_chunk_steps_policy(make_spec):
    plan = plan_unsample(make_spec(shape=(2, 4, 16, 16), steps=1000))  # 4 KB frames, 8 KB a step
    assert chunks.chunk_steps(plan, chunks.CPU_CHUNK_BYTES, 3, None) == (8 << 20) // 8192
    # a streamed run under a cap: 3 slots of staging within a quarter of the cap
    assert chunks.chunk_steps(plan, chunks.CPU_CHUNK_BYTES, 3, 1 << 20) == (1 << 18) // (3 * 8192)
    assert chunks.chunk_steps(plan, chunks.CPU_CHUNK_BYTES, 3, 1000) == 1  # never less than a step
    fixed = plan_unsample(make_spec(shape=(2, 4, 16, 16), steps=1000, chunk_frames=7))
    assert chunks.chunk_steps(fixed, chunks.CPU_CHUNK_BYTES, 3, None) == 7
    assert chunks.chunk_steps(fixed, chunks.CPU_CHUNK_BYTES, 3, 8192 * 4 * 3 * 2) == 2
    # CUDA: an eighth of the output, 8 to 64 MB
    assert chunks.cuda_chunk_bytes(plan) == 8 << 20
    big = plan_unsample(make_spec(shape=(1, 4, 128, 128), steps=10000))
    assert chunks.cuda_chunk_bytes(big) == 64 << 20


def test_keyframes_stay_within_the_staging_share(make_spec):
    plan = plan_unsample(make_spec(shape=(1, 4, 16, 16), steps=1000, frames=tuple(range(999, -1, -1))))
    assert chunks.keyframe_every(plan, 4, None) == 4
    cap = 40 * plan.step_bytes * 4  # a quarter of it holds 40 keyframes
    every = chunks.keyframe_every(plan, 4, cap)
    assert every % 4 == 0 and 1000 // every <= 40 and 1000 // (every - 4) > 40
