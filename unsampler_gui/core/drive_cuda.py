"""The CUDA driver: the frame maker's chunks made on the GPU (block noise), copied back to pinned host
memory with each chunk's copy overlapping the next chunk's work, and emitted in output order into a sink.

GPU memory holds the latent, two chunk buffers, one noise block (and a trajectory's keyframes when its
positions are out of step order). Everything that touches CUDA itself is in ``CudaOps``; ``HostOps`` does
the same calls at once on the CPU, so that the tests drive this driver's block logic without a GPU.
"""
from __future__ import annotations

import collections
import time
from typing import Optional

import torch

from . import chunks
from .devices import alloc
from .frames import FrameMaker
from .job import Plan, Reporter, UnsampleResult, check_cancel
from .sink import Emitter

SLOTS = 2  # chunk buffers on the device, and staging buffers on the host


class CudaOps:
    """The CUDA side: pinned host buffers and device-to-host copies on their own stream."""

    def __init__(self, device: torch.device):
        self.device = device
        self.copy_stream = torch.cuda.Stream(device=device)
        self.compute = torch.cuda.current_stream(device)

    def host_buffer(self, shape) -> torch.Tensor:
        try:
            return torch.empty(shape, dtype=torch.float32, pin_memory=True)
        except RuntimeError:
            return alloc(shape, torch.device("cpu"))

    def copy_to_host(self, dst: torch.Tensor, src: torch.Tensor):
        """Copy ``src`` (device) into ``dst`` (host) once the work queued so far is done; returns an event."""
        ready = torch.cuda.Event()
        ready.record(self.compute)
        src.record_stream(self.copy_stream)
        with torch.cuda.stream(self.copy_stream):
            self.copy_stream.wait_event(ready)
            dst.copy_(src, non_blocking=True)
            done = torch.cuda.Event()
            done.record(self.copy_stream)
        return done

    def synchronize(self) -> None:
        torch.cuda.synchronize(self.device)


class _Done:
    def synchronize(self) -> None:
        pass


class HostOps:
    """``CudaOps``'s calls done at once on the CPU: the driver's logic, run without a GPU."""

    def host_buffer(self, shape) -> torch.Tensor:
        return alloc(shape, torch.device("cpu"))

    def copy_to_host(self, dst: torch.Tensor, src: torch.Tensor) -> _Done:
        dst.copy_(src)
        return _Done()

    def synchronize(self) -> None:
        pass


def run_cuda(plan: Plan, reporter: Reporter, sink, ops=None, maker: Optional[FrameMaker] = None) -> UnsampleResult:
    """Run a plan through the block pipeline (``ops``: ``CudaOps`` by default; ``maker``: block noise)."""
    t0 = time.perf_counter()
    ops = ops or CudaOps(plan.device)
    maker = maker or FrameMaker(plan, noise="blocks")
    B, shape, dev = plan.batch, plan.frame_shape, plan.device
    chunk = chunks.chunk_steps(plan, chunks.cuda_chunk_bytes(plan), SLOTS, sink.max_memory)
    if maker.trajectory:
        work = chunks.trajectory_chunks(plan.positions, chunk, chunks.keyframe_every(plan, chunk, sink.max_memory))
    else:
        work = chunks.independent_chunks(plan.positions, chunk)
    shift = maker.normalize_shift() if plan.spec.normalize else None
    dev_bufs = [alloc((chunk * B, *shape), dev) for _ in range(SLOTS)]
    with sink.open(plan, ops.host_buffer) as out:  # a streamed output removes its temporary file if anything fails
        emitter = Emitter(plan, reporter, out, shift)
        stage = [ops.host_buffer((chunk * B, *shape)) for _ in range(SLOTS)] if out.streamed else None
        pending = collections.deque()  # (slot, copy event, emit) of copies in flight, oldest first

        def flush(slot: Optional[int] = None) -> None:
            """Finish the copies in flight (all of them, or up to the last one that reads ``slot``)."""
            while pending and (slot is None or any(s == slot for s, _, _ in pending)):
                _, ev, emit = pending.popleft()
                ev.synchronize()
                emit()

        state = chunks.WalkState()
        for c, ch in enumerate(work):
            check_cancel(reporter)
            slot = c % SLOTS
            flush(slot)  # the copy that read this slot's buffers must be done before they are reused
            steps = list(ch.steps)
            n = len(steps)
            rows = dev_bufs[slot][:n * B]
            if maker.trajectory:
                maker.draw(rows, steps)
                maker.walk(rows, ch.start, state.before(ch))
                state.after(ch, rows, B)
            else:
                maker.fill(rows, steps)
            if not ch.emits:
                continue
            emitter.shift_(rows)
            a, b, js = ch.emits[0]
            v = rows.view(n, B, *shape)
            src = v[:b - a] if js is None else (v[js[0]:js[-1] + 1] if _consecutive(js) else v[list(js)])
            dst = out.rows(a, b)
            dst = stage[slot][:(b - a) * B] if dst is None else dst
            done = ops.copy_to_host(dst.view(b - a, B, *shape), src)
            pending.append((slot, done, lambda a=a, b=b, dst=dst: emitter.deliver(a, b, dst)))
        flush()
        ops.synchronize()
        latent, path = out.commit()
    return UnsampleResult(plan=plan, latent=latent, path=path, seconds=time.perf_counter() - t0, device="cuda")


def _consecutive(js) -> bool:
    return list(js) == list(range(js[0], js[-1] + 1))

