"""The CPU driver: the frame maker's chunks on a thread pool, emitted in output order into a sink.

Independent and shared frames: each worker fills whole chunks (no barrier between chunks), and this thread
emits them in order; a streamed run fills one staging slot per chunk in flight. A trajectory is walked in
step order: each chunk's noise is drawn in parallel, then the chunk is walked frame by frame.
"""
from __future__ import annotations

import collections
import time
from concurrent.futures import ThreadPoolExecutor

import torch

from . import chunks
from .devices import alloc, default_threads, lower_thread_priority, one_intraop_thread
from .frames import FrameMaker
from .job import Plan, Reporter, UnsampleResult, check_cancel
from .prefault import prefault
from .sink import Emitter

CPU = torch.device("cpu")


def run_cpu(plan: Plan, reporter: Reporter, sink) -> UnsampleResult:
    t0 = time.perf_counter()
    threads = plan.spec.threads or default_threads()
    chunk = chunks.chunk_steps(plan, chunks.cpu_chunk_bytes(plan), chunks.in_flight(threads), sink.max_memory)
    with one_intraop_thread():
        maker = FrameMaker(plan)
        shift = maker.normalize_shift() if plan.spec.normalize else None
        lend = 0 if maker.trajectory else chunk  # chunks made in the output's own buffers, one slot each
        with sink.open(plan, chunk_rows=lend, slots=chunks.in_flight(threads)) as out:  # removed if anything fails
            emitter = Emitter(plan, reporter, out, shift)
            init = lower_thread_priority if reporter.background else None
            if init:
                init()
            with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="unsample", initializer=init) as pool:
                if maker.trajectory:
                    every = chunks.keyframe_every(plan, chunk, sink.max_memory)
                    _trajectory(maker, plan, reporter, pool, threads, chunk, every, out, emitter)
                else:
                    _independent(maker, plan, reporter, pool, threads, chunk, out, emitter)
            latent, path = out.commit()
    return UnsampleResult(plan=plan, latent=latent, path=path, seconds=time.perf_counter() - t0, device="cpu")


def _parallel(pool: ThreadPoolExecutor, threads: int, n: int, fn) -> None:
    """Run fn(j0, j1) over [0, n) split into up to ``threads`` contiguous ranges, one per thread."""
    parts = max(1, min(threads, n))
    size = -(-n // parts)
    ranges = [(p * size, min(n, (p + 1) * size)) for p in range(parts) if p * size < n]
    if len(ranges) == 1:
        fn(*ranges[0])
        return
    for f in [pool.submit(fn, j0, j1) for j0, j1 in ranges]:
        f.result()


def _independent(maker, plan, reporter, pool, threads, chunk, out, emitter) -> None:
    """Chunks are independent tasks, at most ``window`` in flight; a worker that finishes early (page
    faults vary) starts the next chunk instead of waiting for the others."""
    B = plan.batch
    work = chunks.independent_chunks(plan.positions, chunk)
    window = chunks.in_flight(threads)
    slot = min(chunk, len(plan.positions)) * B
    staging = None
    if not out.in_place:  # one staging slot per chunk in flight, written only after its chunk is done
        staging = alloc((window * slot, *plan.frame_shape), CPU)

    def rows_of(i: int) -> torch.Tensor:
        a, b, _ = work[i].emits[0]
        if staging is None:
            return out.rows(a, b)
        s0 = (i % window) * slot
        return staging[s0:s0 + (b - a) * B]

    def make(i: int) -> torch.Tensor:
        rows = rows_of(i)
        maker.fill(rows, work[i].steps, touch=prefault)  # fresh pages mapped in one call, just before the write
        return rows

    pending = collections.deque()
    nxt, emitted = 0, False
    try:
        while nxt < len(work) or pending:
            check_cancel(reporter)  # once per chunk emitted
            # the first chunk goes alone: while its frames are handed out (a GUI may pause the job
            # then to show them), no other chunk competes for the cores
            while nxt < len(work) and len(pending) < (window if emitted else 1):
                pending.append((nxt, pool.submit(make, nxt)))
                nxt += 1
            i, fut = pending.popleft()
            rows = fut.result()
            a, b, _ = work[i].emits[0]
            emitter.emit(a, b, rows)
            emitted = True
    finally:
        for _, fut in pending:  # cancelled or failed: drop what has not started, let the rest finish
            fut.cancel()
        for _, fut in pending:
            if not fut.cancelled():
                fut.exception()


def _trajectory(maker, plan, reporter, pool, threads, chunk, every, out, emitter) -> None:
    """Walk the trajectory's chunks (``chunks.trajectory_chunks``): noise drawn in parallel, then each
    chunk walked in order from the frame before it; selected rows gathered and emitted."""
    B, shape = plan.batch, plan.frame_shape
    work = alloc((min(chunk, max(plan.positions) + 1) * B, *shape), CPU)
    staging = alloc((min(chunk, len(plan.positions)) * B, *shape), CPU) if out.streamed else None
    state = chunks.WalkState()
    for ch in chunks.trajectory_chunks(plan.positions, chunk, every):
        check_cancel(reporter)
        c0, c1 = ch.start, ch.stop
        n = c1 - c0
        direct = ch.emits and ch.emits[0][2] is None and not out.streamed  # made straight into the output
        block = out.rows(*ch.emits[0][:2]) if direct else work[:n * B]
        _parallel(pool, threads, n, lambda j0, j1: maker.draw(block[j0 * B:j1 * B], list(range(c0 + j0, c0 + j1))))
        maker.walk(block, c0, state.before(ch))
        state.after(ch, block, B)
        for a, b, rows in ch.emits:
            dst = block if direct else (staging[:(b - a) * B] if out.streamed else out.rows(a, b))
            if not direct:
                _gather(dst, block, rows, B)
            emitter.emit(a, b, dst)


def _gather(dst: torch.Tensor, block: torch.Tensor, rows, B: int) -> None:
    """dst [k*B, ...] <- the chunk's rows ``rows`` (None: all, in order), B output rows per step."""
    if rows is None:
        dst.copy_(block[:dst.shape[0]])
        return
    for o, j in enumerate(rows):
        dst[o * B:(o + 1) * B].copy_(block[j * B:(j + 1) * B])
