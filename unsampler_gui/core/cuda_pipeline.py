"""The CUDA path of ``run_unsample``: noise made on the GPU, copied back to pinned host memory in
chunks, with each chunk's copy overlapping the next chunk's work.

Noise on the GPU comes in blocks of ``BLOCK`` schedule steps (all batch items), each block drawn by
one ``normal_`` from a generator seeded with (seed, block). A frame's noise therefore depends only on
(seed, schedule step, item): the output is the same whatever the chunk size or the subset of frames.
CUDA's generator is not the CPU's, so CPU and CUDA runs of the same seed differ (each is repeatable).
GPU memory holds the latent, two chunk buffers and one noise block.
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
from bisect import bisect_left
from typing import Optional

import torch

from .latent_io import LatentWriter
from .noise import TAG_CUDA_BLOCK, frame_seed
from .unsample import (Plan, Reporter, UnsampleResult, _alloc, _check_cancel, _Engine,
                       export_metadata)

BLOCK = 64


class _BlockNoise:
    """Noise blocks on the device, cached one at a time (frames are visited block by block)."""

    def __init__(self, eng: _Engine):
        self.eng = eng
        self.gen = torch.Generator(device=eng.dev)
        self.key = None
        self.block = None
        self.descending = torch.arange(BLOCK - 1, -1, -1, device=eng.dev)

    def get(self, k: int) -> torch.Tensor:
        blk = k // BLOCK
        if blk != self.key:
            if self.block is None:
                self.block = torch.empty((BLOCK, self.eng.B, *self.eng.plan.frame_shape), device=self.eng.dev)
            self.gen.manual_seed(frame_seed(self.eng.seed, TAG_CUDA_BLOCK, blk, 0))
            self.block.normal_(generator=self.gen)
            self.key = blk
        return self.block[k - blk * BLOCK]

    def fill(self, v: torch.Tensor, steps: list) -> None:
        """v [n, B, ...] <- noise of the given output steps, a block at a time."""
        ks = [self.eng.k[i] for i in steps]
        n = len(ks)
        # the usual case: consecutive descending schedule steps, whose block ends are plain arithmetic
        descending = ks == list(range(ks[0], ks[0] - n, -1))
        j = 0
        while j < n:
            blk = ks[j] // BLOCK
            if descending:
                j1 = min(n, j + ks[j] - blk * BLOCK + 1)
            else:
                j1 = j
                while j1 < n and ks[j1] // BLOCK == blk:
                    j1 += 1
            self.get(ks[j])
            first, last = ks[j] - blk * BLOCK, ks[j1 - 1] - blk * BLOCK
            rows = None if descending else [k - blk * BLOCK for k in ks[j:j1]]
            if rows is None or rows == list(range(first, last - 1, -1)):  # a descending run: a slice
                idx = self.descending[BLOCK - 1 - first:BLOCK - last]
            else:
                idx = torch.tensor(rows, device=self.eng.dev)
            torch.index_select(self.block, 0, idx, out=v[j:j1])
            j = j1


def _host_buffer(shape, pinned: bool) -> torch.Tensor:
    if pinned:
        try:
            return torch.empty(shape, dtype=torch.float32, pin_memory=True)
        except RuntimeError:
            pass
    return _alloc(shape, torch.device("cpu"))


def run_cuda(plan: Plan, rep: Reporter, output: Optional[str], overwrite: bool, max_memory: Optional[int],
             t0: float) -> UnsampleResult:
    B, positions = plan.batch, list(plan.positions)
    trajectory = plan.spec.noise == "trajectory"
    if trajectory and positions != sorted(set(positions)):
        return _reordered(plan, rep, output, overwrite, t0)
    eng = _Engine(plan)
    steps_all = list(range(max(positions) + 1)) if trajectory else positions
    # big chunks amortise the launches, enough of them keep the copy engine busy: 8..64 MB, ~8+ chunks
    chunk_bytes = min(64 << 20, max(8 << 20, plan.out_bytes // 8))
    chunk = max(1, chunk_bytes // max(1, plan.frame_bytes * B))
    if plan.spec.chunk_frames:
        chunk = plan.spec.chunk_frames
    if output is not None and max_memory:
        chunk = max(1, min(chunk, int(max_memory * 0.2) // max(1, plan.frame_bytes * B)))
    noise = _BlockNoise(eng)
    dev_bufs = [_alloc((chunk * B, *plan.frame_shape), eng.dev) for _ in range(2)]
    copy_stream = torch.cuda.Stream(device=eng.dev)
    compute = torch.cuda.current_stream(eng.dev)
    streaming = output is not None
    out = None if streaming else _host_buffer(plan.out_shape, pinned=True)
    stage = [_host_buffer((chunk * B, *plan.frame_shape), pinned=True) for _ in range(2)] if streaming else None
    writer = LatentWriter(output, plan.out_shape, export_metadata(plan), overwrite=overwrite) if streaming else None
    prev = None
    if plan.spec.normalize:
        first = torch.empty((1, B, *plan.frame_shape), device=eng.dev)
        if plan.spec.noise == "shared":
            first.copy_(eng.shared_eps.unsqueeze(0))
        else:
            noise.fill(first, [0])
        eng._finish(first, [0])
        eng.norm_shift = first.reshape(B, -1).mean(dim=1)
    pending = []  # (event, emit function) of chunks whose copy is in flight

    def flush(limit: int) -> None:
        while len(pending) > limit:
            ev, fn = pending.pop(0)
            ev.synchronize()
            fn()

    with writer or contextlib.nullcontext():  # the writer removes its temporary file if anything fails
        for c, c0 in enumerate(range(0, len(steps_all), chunk)):
            _check_cancel(rep)
            steps = steps_all[c0:c0 + chunk]
            n = len(steps)
            buf = dev_bufs[c % 2]
            flush(1)  # the copy that read this buffer two chunks ago must be done
            v = buf[:n * B].view(n, B, *plan.frame_shape)
            if plan.spec.noise == "shared":
                v.copy_(eng.shared_eps.unsqueeze(0).expand_as(v))
            else:
                noise.fill(v, steps)
            if trajectory:
                for j, i in enumerate(steps):
                    eng.trajectory_step(v[j], i, prev if j == 0 else v[j - 1])
                prev = v[n - 1].clone()
            else:
                eng._finish(v, steps)
            if eng.norm_shift is not None:
                v.view(n, B, -1).sub_(eng.norm_shift.view(1, B, 1))
            # which output rows this chunk fills (trajectory: the selected steps among those walked)
            if trajectory:
                a, b = bisect_left(positions, steps[0]), bisect_left(positions, steps[-1] + 1)
                runs = [(a, b, [positions[o] - steps[0] for o in range(a, b)])] if b > a else []
            else:
                runs = [(c0, c0 + n, list(range(n)))]
            srcs = [v[js[0]:js[-1] + 1] if js == list(range(js[0], js[-1] + 1)) else v[js] for _, _, js in runs]
            ev_ready = torch.cuda.Event()
            ev_ready.record(compute)
            for (a, b, _), src in zip(runs, srcs):
                src.record_stream(copy_stream)
                with torch.cuda.stream(copy_stream):
                    copy_stream.wait_event(ev_ready)
                    dst = out[a * B:b * B] if out is not None else stage[c % 2][:(b - a) * B]
                    dst.view(b - a, B, *plan.frame_shape).copy_(src, non_blocking=True)
                    done = torch.cuda.Event()
                    done.record(copy_stream)

                def emit(a=a, b=b, dst=dst):
                    if writer is not None:
                        writer.write(dst)
                    rep.partial(a, b, dst)
                    rep.progress(b, len(positions))

                pending.append((done, emit))
        flush(0)
        torch.cuda.synchronize(eng.dev)
        path = writer.commit() if writer else None
    return UnsampleResult(plan=plan, latent=out, path=path, seconds=time.perf_counter() - t0, device="cuda")


def _reordered(plan: Plan, rep: Reporter, output: Optional[str], overwrite: bool, t0: float) -> UnsampleResult:
    """A trajectory wanted out of step order: walk it in order in memory, then write the rows as asked."""
    uniq = sorted(set(plan.positions))
    inner = run_cuda(dataclasses.replace(plan, positions=tuple(uniq)), Reporter(), None, False, None, t0)
    B = plan.batch
    rows = torch.cat([inner.latent[uniq.index(p) * B:(uniq.index(p) + 1) * B] for p in plan.positions])
    path = None
    if output is not None:
        with LatentWriter(output, plan.out_shape, export_metadata(plan), overwrite=overwrite) as w:
            w.write(rows)
            path = w.commit()
    rep.partial(0, len(plan.positions), rows)
    rep.progress(len(plan.positions), len(plan.positions))
    return UnsampleResult(plan=plan, latent=None if output else rows, path=path,
                          seconds=time.perf_counter() - t0, device="cuda")
