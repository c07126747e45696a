"""How a run is cut into chunks, for both drivers: chunk sizes, the staging share of the memory cap, and the
order in which chunks are made and their rows emitted, trajectories out of step order included.

A chunk is made whole (in parallel on the CPU, on the GPU's stream with CUDA) and its rows are emitted in
output order. Independent and shared frames are made in any order, so each chunk is simply the next run of
output positions. A trajectory must be walked in step order (each frame builds on the previous one):

- positions in step order (the usual case) are emitted as the walk passes them;
- positions out of step order (reversed, shuffled) keep memory bounded: the walk keeps a ``Keyframe``
  every few chunks, and each output run whose turn comes later is made again from the keyframe before it.
  A reversed trajectory therefore costs about two walks, and never holds more than the chunks in flight
  plus the keyframes (at most the staging share of the cap, or one frame per chunk without a cap).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

import torch

from .devices import default_threads, human_bytes
from .errors import BadParameterError
from .frames import Keyframe
from .job import Plan

#: CPU chunks aim at this many bytes: big enough to amortise Python, small enough to stay in cache.
CPU_CHUNK_BYTES = 8 << 20
#: CUDA chunks: big chunks amortise the launches, enough of them keep the copy engine busy.
CUDA_CHUNK_MIN, CUDA_CHUNK_MAX, CUDA_CHUNKS = 8 << 20, 64 << 20, 8
#: A streamed run's staging buffers take at most this share of its memory cap; a trajectory's keyframes
#: (when its positions are out of step order) at most as much again.
STAGING_SHARE = 0.25


def in_flight(threads: int) -> int:
    """CPU: chunks in flight at once: one per worker, plus one queued so that no worker waits for the next."""
    return threads + 1


def cpu_chunk_bytes(plan: Plan) -> int:
    return CPU_CHUNK_BYTES


def cuda_chunk_bytes(plan: Plan) -> int:
    """8..64 MB, about an eighth of the output: enough chunks to overlap each copy with the next chunk."""
    return min(CUDA_CHUNK_MAX, max(CUDA_CHUNK_MIN, plan.out_bytes // CUDA_CHUNKS))


def stream_memory_floor(plan: Plan, threads: int = 0) -> int:
    """The least memory a streamed run of ``plan`` holds, whatever the cap: whole steps in flight.

    One step is ``batch`` frames. The CPU driver fills one staging chunk per thread plus one queued
    (a chunk is at least one step); the CUDA driver stages two chunks in pinned memory; both keep the
    input latent (one step's worth). The cap given to ``run_unsample`` shrinks the chunks down to one
    step, never below this.
    """
    step = plan.frame_bytes * plan.batch
    if plan.device.type == "cuda":
        return 3 * step
    return (int(threads or default_threads()) + 2) * step


def check_memory_cap(plan: Plan, max_memory: int, threads: int = 0, name: str = "the memory cap") -> None:
    """Refuse a cap that a streamed run of ``plan`` cannot keep, saying what the least is."""
    floor = stream_memory_floor(plan, threads)
    if max_memory < floor:
        step = plan.frame_bytes * plan.batch
        least_one = stream_memory_floor(plan, 1)
        hint = f" ({human_bytes(least_one)} with one thread)" if least_one < floor else ""
        raise BadParameterError(
            f"{name} {human_bytes(max_memory)} cannot be met: one step of this run is {human_bytes(step)} and a "
            f"streamed run holds at least {floor // step} steps, so it needs at least {human_bytes(floor)}{hint}")


def chunk_steps(plan: Plan, target_bytes: int, slots: int, max_memory: Optional[int]) -> int:
    """Steps per chunk: the spec's ``chunk_frames`` or ``target_bytes`` worth, and under a memory cap at most
    what lets ``slots`` staging chunks fit in the staging share of it."""
    step = max(1, plan.step_bytes)
    n = int(plan.spec.chunk_frames) if plan.spec.chunk_frames and plan.spec.chunk_frames > 0 else target_bytes // step
    if max_memory:
        n = min(n, int(max_memory * STAGING_SHARE) // (slots * step))
    return max(1, n)


@dataclass(frozen=True)
class Chunk:
    """One chunk of work: make the frames of ``steps`` (node order), then emit ``emits``.

    ``emits`` is at most one ``(a, b, rows)``: output positions ``[a, b)`` (never more than the chunk's
    length) are the chunk's rows ``rows`` (indices into ``steps``), or all of them in order when ``rows``
    is None. A trajectory chunk's steps are
    consecutive; it continues from the frame before its first step (the previous chunk's last frame, or a
    kept keyframe), and ``keep`` asks to keep its last frame as a keyframe.
    """

    steps: Sequence[int]
    emits: tuple = ()
    keep: bool = False

    @property
    def start(self) -> int:
        return self.steps[0]

    @property
    def stop(self) -> int:
        return self.steps[-1] + 1


def independent_chunks(positions: Sequence[int], chunk: int) -> list:
    """Chunks of output positions, in output order (independent and shared noise)."""
    n = len(positions)
    return [Chunk(steps=list(positions[c0:min(n, c0 + chunk)]), emits=((c0, min(n, c0 + chunk), None),))
            for c0 in range(0, n, chunk)]


def in_step_order(positions: Sequence[int]) -> bool:
    """Strictly increasing: a trajectory walk then emits every output as it passes."""
    return all(a < b for a, b in zip(positions, positions[1:]))


def keyframe_every(plan: Plan, chunk: int, max_memory: Optional[int]) -> int:
    """Steps between a trajectory's keyframes (a multiple of ``chunk``): every chunk, or under a memory cap
    as few chunks as keep the keyframes within the staging share of it."""
    walk = max(plan.positions) + 1
    if not max_memory:
        return chunk
    budget = max(1, int(max_memory * STAGING_SHARE) // max(1, plan.step_bytes))  # keyframes that fit
    per = -(-(walk // chunk) // budget)  # chunks between keyframes
    return chunk * max(1, per)


def trajectory_chunks(positions: Sequence[int], chunk: int, every: Optional[int] = None) -> Iterator[Chunk]:
    """The chunks of a trajectory walk, in the order to make them, for output ``positions`` in any order.

    First the walk over steps 0..max(positions), emitting each output run as it passes; then, for the
    outputs whose turn came later, each run's chunk again from the keyframe before it (``every`` steps
    apart, a multiple of ``chunk``; only kept when the positions are out of step order).
    """
    pos = list(positions)
    n, last = len(pos), max(pos)
    every = every or chunk
    ordered = in_step_order(pos)
    done = 0

    def emits(c0: int, c1: int) -> tuple:
        nonlocal done
        a = done
        while done < n and done - a < chunk and c0 <= pos[done] < c1:  # at most a chunk: it fits a buffer
            done += 1
        if done == a:
            return ()
        rows = tuple(pos[o] - c0 for o in range(a, done))
        return ((a, done, None if rows == tuple(range(c1 - c0)) else rows),)

    at = -1  # the last step walked
    for c0 in range(0, last + 1, chunk):
        c1 = min(last + 1, c0 + chunk)
        keep = not ordered and c1 % every == 0 and c1 <= last
        yield Chunk(steps=range(c0, c1), emits=emits(c0, c1), keep=keep)
        at = c1 - 1
    while done < n:
        s0 = pos[done] // chunk * chunk
        s1 = min(last + 1, s0 + chunk)
        if at != s0 - 1:  # walk from the keyframe before s0 (or from step 0) up to it
            for c0 in range(s0 // every * every, s0, chunk):
                yield Chunk(steps=range(c0, c0 + chunk))
        yield Chunk(steps=range(s0, s1), emits=emits(s0, s1))
        at = s1 - 1


class WalkState:
    """What a trajectory walk carries from chunk to chunk: its last frame, and the keyframes it keeps."""

    def __init__(self):
        self.last: Optional[Keyframe] = None
        self.kept: dict = {}

    def before(self, chunk: Chunk) -> Optional[torch.Tensor]:
        """The frame ``chunk`` continues from: None at step 0, else the last chunk's last frame or a kept
        keyframe (``trajectory_chunks`` makes sure there is one)."""
        c0 = chunk.start
        if c0 == 0:
            return None
        if self.last is not None and self.last.step == c0 - 1:
            return self.last.frames
        return self.kept[c0 - 1]

    def after(self, chunk: Chunk, rows: torch.Tensor, batch: int) -> None:
        """Keep the chunk's last frame: a copy, taken before emitting may normalise ``rows`` in place."""
        self.last = Keyframe(chunk.stop - 1, rows[rows.shape[0] - batch:].clone())
        if chunk.keep:
            self.kept[chunk.stop - 1] = self.last.frames
