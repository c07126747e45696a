"""The frame maker: the arithmetic and the seeded noise of one frame, or a block of frames, of a plan.

Every output frame is ``m + a_i * (x - m) + g_i * eps`` (``formulas.py``); ``eps`` comes from a seed that
depends only on (seed, schedule step, item), so any frame can be made alone, in any order, in any group,
and has the same bits. Two noise sources:

- ``"frames"`` (the CPU): one generator per frame, seeded with ``noise.frame_seed(seed, FRAM, step, item)``;
- ``"blocks"`` (CUDA): ``BLOCK`` schedule steps (all items) drawn by one ``normal_`` from a generator seeded
  with (seed, block); a frame's noise still depends only on (seed, schedule step, item).

CUDA's generator is not the CPU's, so a CPU and a CUDA run of the same seed differ (each is repeatable).

``trajectory`` noise is cumulative: frame i is frame i-1 plus just enough fresh noise. ``walk`` continues a
trajectory from any kept frame (a ``Keyframe``), so a caller can restart it anywhere it kept one.

``FrameMaker`` holds no run state and no memory policy: the normalisation shift, the output buffers and when
to map fresh pages are the caller's (the drivers, or ``Frames`` for frames on demand). It is safe to call
from several threads at once: each thread has its own generator and scratch buffers.
"""
from __future__ import annotations

import functools
import math
import threading
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch

from .devices import alloc, one_intraop_thread
from .formulas import Coefficients, coefficients, trajectory_increments
from .job import Plan
from .noise import TAG_CUDA_BLOCK, TAG_FRAME, TAG_SHARED, frame_seed, frame_seeds, normal_

#: CPU: frames are drawn into a per-thread buffer of about this size, small enough to stay in the cache.
STAGE_BYTES = 256 << 10
#: CUDA: schedule steps per noise block.
BLOCK = 64
#: ``Frames`` walks a trajectory in pieces of about this many bytes.
WALK_BYTES = 8 << 20
NOISE_SOURCES = ("frames", "blocks")


@functools.lru_cache(maxsize=None)
def _std_in_normal_is_exact() -> bool:
    """True when this torch's CPU ``normal_(0, std)`` equals ``normal_() * std`` bit for bit.

    It does wherever the Box-Muller transform ends in ``z * std + mean`` in float32 (frames of 16
    values or more); checked once per process, with a vectorised body and a tail, so that another
    torch build can never change a frame's bits.
    """
    g = torch.Generator()
    a, b = torch.empty(77), torch.empty(77)
    for std in (0.7310585975646973, 14.614640235900879, 1e-3):
        g.manual_seed(12345)
        a.normal_(0.0, std, generator=g)
        g.manual_seed(12345)
        b.normal_(generator=g).mul_(std)
        if not torch.equal(a.view(torch.int32), b.view(torch.int32)):
            return False
    return True


@dataclass(frozen=True, eq=False)
class Keyframe:
    """A trajectory's state: the un-normalised frame ``step`` (node order) of every item, ``[B, ...]``."""

    step: int
    frames: torch.Tensor


class BlockNoise:
    """CUDA's noise: blocks of ``BLOCK`` schedule steps, cached one at a time (frames are visited block by block).

    Runs on any device (a CPU generator on the CPU), which is how the tests drive the CUDA path's logic.
    Not thread-safe: one per thread.
    """

    def __init__(self, device: torch.device, batch: int, frame_shape: tuple, seed: int, schedule_steps: Sequence[int]):
        self.device = torch.device(device)
        self.batch, self.frame_shape, self.seed = batch, tuple(frame_shape), int(seed)
        self.schedule_steps = list(schedule_steps)  # node step i -> schedule step k
        self.gen = torch.Generator(device=self.device)
        self.key = None
        self.block = None
        self.descending = torch.arange(BLOCK - 1, -1, -1, device=self.device)

    def get(self, k: int) -> torch.Tensor:
        """The noise of schedule step ``k``, every item: ``[B, ...]`` (a view into the cached block)."""
        blk = k // BLOCK
        if blk != self.key:
            if self.block is None:
                self.block = torch.empty((BLOCK, self.batch, *self.frame_shape), device=self.device)
            self.gen.manual_seed(frame_seed(self.seed, TAG_CUDA_BLOCK, blk, 0))
            self.block.normal_(generator=self.gen)
            self.key = blk
        return self.block[k - blk * BLOCK]

    def fill(self, v: torch.Tensor, steps: list) -> None:
        """v [n, B, ...] <- noise of the given node steps, a block at a time."""
        ks = [self.schedule_steps[i] for i in steps]
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
                idx = torch.tensor(rows, device=self.device)
            torch.index_select(self.block, 0, idx, out=v[j:j1])
            j = j1


class FrameMaker:
    """Makes the frames of one plan on its device: ``fill`` (independent and shared noise), ``draw`` and
    ``walk`` (trajectory), ``finish`` (noise to frames). Rows are step-major: ``rows[j*B + b]`` is step
    ``steps[j]`` of item b. Steps are node-order indices 0..N-1 (low to high noise)."""

    def __init__(self, plan: Plan, noise: Optional[str] = None):
        spec = plan.spec
        self.plan = plan
        self.device = plan.device
        self.batch = plan.batch
        self.noise_source = noise or ("frames" if plan.device.type == "cpu" else "blocks")
        if self.noise_source not in NOISE_SOURCES:
            raise ValueError(f"noise source must be one of {NOISE_SOURCES}, got {self.noise_source!r}")
        self.trajectory = spec.noise == "trajectory"
        self._nd = len(plan.frame_shape)
        x = spec.latent.to(self.device, torch.float32).contiguous()
        coef = coefficients(spec.family, plan.model_sigmas, plan.raw_sigmas, spec.formula, plan.frame_shape[0])
        self._per_channel_g = not bool((coef.g == coef.g[:, :1]).all())  # decided on the CPU: no device sync
        # On the CPU a frame's noise scale g > 0 goes into normal_'s std: its Box-Muller transform
        # multiplies by std anyway (fma(z, std, 0) == z * std, bit for bit), which saves a pass over the
        # whole output. Frames with g == 0 (and per-channel g) keep the separate multiply.
        fold = (not self._per_channel_g and self.noise_source == "frames" and self.device.type == "cpu"
                and spec.noise == "independent" and math.prod(plan.frame_shape) >= 16 and _std_in_normal_is_exact())
        self._g_in_noise = [v if v > 0 else None for v in coef.g[:, 0].tolist()] if fold else None
        if self.trajectory:
            r, d = trajectory_increments(coef)
            self._r = r.tolist()
            self._d = d.to(self.device)
        self._coef = Coefficients(a=coef.a.to(self.device), g=coef.g.to(self.device),
                                  m=None if coef.m is None else coef.m.to(self.device), additive=coef.additive)
        if self._coef.m is not None:
            self._m = self._coef.frame_shape_view(self._coef.m, self._nd)
            self._xc = x - self._m  # x - m, per item
        else:
            self._m = None
            self._xc = x
        self._x = x
        self._k = plan.schedule_index.tolist()
        self._seed = int(spec.seed)
        self._tls = threading.local()
        self._shared_eps = None
        if spec.noise == "shared":
            self._shared_eps = torch.empty_like(x)
            gen = self._gen()
            for b in range(self.batch):
                normal_(self._shared_eps[b], gen, frame_seed(self._seed, TAG_SHARED, 0, b))

    # ---- what callers use --------------------------------------------------------------------------

    def fill(self, rows: torch.Tensor, steps: list, touch: Optional[Callable[[torch.Tensor], object]] = None) -> None:
        """rows [len(steps)*B, ...] <- the finished (un-normalised) frames of ``steps``, made directly: any
        step of independent or shared noise, and step 0 of a trajectory.

        ``touch(view)`` is called on each piece of ``rows`` just before it is first written (the CPU driver
        maps fresh output pages there); the maker itself has no memory policy.
        """
        n, B = len(steps), self.batch
        if self.trajectory and any(steps):
            raise ValueError("a trajectory's frames after step 0 are made by draw and walk")
        v = rows.view(n, B, *rows.shape[1:])
        if self._shared_eps is not None:
            v.copy_(self._shared_eps.unsqueeze(0).expand_as(v))
            self.finish(v, steps)
            return
        if self.noise_source == "blocks":
            self._blocks().fill(v, steps)
            self.finish(v, steps)
            return
        # a few frames at a time are drawn into a small per-thread buffer that stays in the cache, and
        # finished from there into the output, which is then written once instead of three times
        fin = self._finisher(steps, touch)
        seeds, stds = self._seeds(steps)
        per = max(1, min(n, STAGE_BYTES // max(1, rows[0].numel() * 4 * B)))
        stage = self._scratch("stage", rows[:per * B])
        frames = stage.unbind(0)
        gen = self._gen()
        for j0 in range(0, n, per):
            j1 = min(n, j0 + per)
            k = (j1 - j0) * B
            self._draw(gen, frames[:k], seeds[j0 * B:j1 * B], stds and stds[j0 * B:j1 * B])
            fin(stage[:k].view(j1 - j0, B, *rows.shape[1:]), v[j0:j1], j0, j1)

    def draw(self, rows: torch.Tensor, steps: list) -> None:
        """rows [len(steps)*B, ...] <- each frame's own standard normal noise (a trajectory's increments)."""
        if self.noise_source == "blocks":
            self._blocks().fill(rows.view(len(steps), self.batch, *rows.shape[1:]), steps)
            return
        seeds = frame_seeds(self._seed, TAG_FRAME, [self._k[i] for i in steps for _ in range(self.batch)],
                            list(range(self.batch)) * len(steps))
        self._draw(self._gen(), rows.unbind(0), seeds, None)

    def walk(self, rows: torch.Tensor, start: int, prev: Optional[torch.Tensor]) -> None:
        """rows [n*B, ...] hold ``draw``'s noise of steps start..start+n-1; turn them, in place, into those
        trajectory frames. ``prev`` is frame start-1 ``[B, ...]`` (un-normalised), None when start is 0."""
        if prev is None and start != 0:
            raise ValueError(f"a trajectory walk from step {start} needs frame {start - 1}")
        B = self.batch
        n = rows.shape[0] // B
        for j in range(n):
            self._step(rows[j * B:(j + 1) * B], start + j, prev if j == 0 else rows[(j - 1) * B:j * B])

    def finish(self, v: torch.Tensor, steps: list) -> None:
        """v [n, B, ...] holds noise for the given steps; make it ``m + a*(x - m) + g*v`` in place."""
        self._finisher(steps)(v, v, 0, len(steps))

    def normalize_shift(self) -> torch.Tensor:
        """The node's ``normalize``: the float32 mean of frame 0 of each item, ``[B]`` on the plan's device."""
        first = alloc((self.batch, *self.plan.frame_shape), self.device)
        self.fill(first, [0])
        return first.reshape(self.batch, -1).mean(dim=1)

    # ---- the arithmetic ----------------------------------------------------------------------------

    def _step(self, out: torch.Tensor, i: int, prev: Optional[torch.Tensor]) -> None:
        """out[b] holds eta_i for every item; turn it into frame i, given frame i-1 (``prev``)."""
        if prev is None:
            self.finish(out.unsqueeze(0), [i])
            return
        out.mul_(self._coef.frame_shape_view(self._d[i], self._nd))
        if self._m is None:
            out.add_(prev * self._r[i])
        else:
            out.add_((prev - self._m) * self._r[i])
            out.add_(self._m)

    def _finisher(self, steps: list, touch=None):
        """The terms of ``m + a*(x - m) + g*eps`` for a chunk's steps, as ``fin(noise, out, j0, j1)``:
        rows j0..j1 of the chunk, from ``noise`` (scaled in place) into ``out`` (which may be ``noise``).

        Only exact IEEE multiplies and adds (no fused or alpha forms), so a frame's bits never depend
        on how frames are grouped into chunks, or whether they are finished in place or from a buffer.
        """
        n = len(steps)
        shape = (n, 1, -1) + (1,) * (self._nd - 1)
        scalar = (n, 1) + (1,) * self._nd
        g, a = self._rows(self._coef.g, steps), self._rows(self._coef.a, steps)
        gin = self._g_in_noise
        if gin is None:
            scale, zeros = (g.view(shape) if self._per_channel_g else g[:, 0].reshape(scalar)), ()
        else:  # the noise already carries g, except on frames with g == 0
            scale, zeros = None, [j for j, k in enumerate(steps) if gin[k] is None]
        a_term = None if self._coef.additive else a.reshape(scalar)
        x1, xc1, m = self._x.unsqueeze(0), self._xc.unsqueeze(0), self._m

        def fin(noise: torch.Tensor, out: torch.Tensor, j0: int, j1: int) -> None:
            if touch is not None and out is not noise:
                touch(out)
            if scale is not None:
                noise.mul_(scale[j0:j1])
            for j in zeros:
                if j0 <= j < j1:
                    noise[j - j0].mul_(g[j, 0])
            if a_term is None:
                torch.add(noise, x1, out=out)
            else:
                torch.add(noise, torch.mul(xc1, a_term[j0:j1], out=self._scratch("term", noise)), out=out)
                if m is not None:
                    out.add_(m)

        return fin

    def _seeds(self, steps: list):
        """Each frame's seed, from (seed, schedule step, item), and its normal_ std (None: all 1)."""
        B = self.batch
        seeds = frame_seeds(self._seed, TAG_FRAME, [self._k[i] for i in steps for _ in range(B)],
                            list(range(B)) * len(steps))
        gin = self._g_in_noise
        stds = None if gin is None else [gin[i] or 1.0 for i in steps for _ in range(B)]
        return seeds, stds

    @staticmethod
    def _draw(gen: torch.Generator, frames, seeds, stds) -> None:
        if not stds:
            for frame, s in zip(frames, seeds):
                gen.manual_seed(s)
                frame.normal_(generator=gen)
            return
        for frame, s, std in zip(frames, seeds, stds):
            gen.manual_seed(s)
            frame.normal_(0.0, std, generator=gen)

    def _rows(self, t: torch.Tensor, steps: list) -> torch.Tensor:
        """t[steps]: a slice when the steps are consecutive (no host-to-device index copy on CUDA)."""
        if steps == list(range(steps[0], steps[0] + len(steps))):
            return t[steps[0]:steps[0] + len(steps)]
        return t.index_select(0, torch.tensor(steps, dtype=torch.int64, device=self.device))

    # ---- per-thread state --------------------------------------------------------------------------

    def _gen(self) -> torch.Generator:
        g = getattr(self._tls, "gen", None)
        if g is None:
            g = self._tls.gen = torch.Generator(device=self.device)
        return g

    def _blocks(self) -> BlockNoise:
        b = getattr(self._tls, "blocks", None)
        if b is None:
            b = self._tls.blocks = BlockNoise(self.device, self.batch, self.plan.frame_shape, self._seed, self._k)
        return b

    def _scratch(self, name: str, like: torch.Tensor) -> torch.Tensor:
        """A per-thread buffer shaped like ``like``, reused from chunk to chunk (a new temporary per chunk
        would leave freed chunk-sized blocks in every thread's malloc arena)."""
        buf = getattr(self._tls, name, None)
        if buf is None or buf.numel() < like.numel() or buf.device != like.device:
            buf = torch.empty(like.numel(), dtype=like.dtype, device=like.device)
            setattr(self._tls, name, buf)
        return buf[:like.numel()].view(like.shape)


def shift_(rows: torch.Tensor, shift: Optional[torch.Tensor], batch: int) -> torch.Tensor:
    """The node's ``normalize``, in place: subtract each item's shift from its rows (``rows`` [n*B, ...])."""
    if shift is not None:
        rows.view(rows.shape[0] // batch, batch, -1).sub_(shift.view(1, batch, 1))
    return rows


class Frames:
    """Frames on demand: any frame of a plan, bit-identical to the same frame of a run of that plan.

    ``frames(steps)`` and ``frame(i)`` take node-order steps (0..N-1, low to high noise; not the plan's
    output positions). Normalisation is applied when the spec asks for it. Building one costs about a
    frame (the shift) plus per-step coefficients; each call then costs only its frames (a trajectory's
    frames cost the walk from the nearest kept ``Keyframe``, or from step 0).
    """

    def __init__(self, plan: Plan, maker: Optional[FrameMaker] = None):
        self.plan = plan
        with one_intraop_thread():  # as in a run (and a frame alone is faster on one thread)
            self.maker = maker or FrameMaker(plan)
            self.shift = self.maker.normalize_shift() if plan.spec.normalize else None

    def frame(self, i: int) -> torch.Tensor:
        """Step ``i`` of every item: ``[B, ...]``."""
        return self.frames([i])

    def frames(self, steps: Sequence[int], keyframe: Optional[Keyframe] = None) -> torch.Tensor:
        """The frames of ``steps`` (any order, repeats allowed), step-major ``[len(steps)*B, ...]``."""
        steps = [int(i) for i in steps]
        n = self.plan.n_steps
        if not steps or any(not 0 <= i < n for i in steps):
            raise ValueError(f"steps must be within 0..{n - 1}")
        with one_intraop_thread():
            return self._frames(steps, keyframe)

    def _frames(self, steps: list, keyframe: Optional[Keyframe]) -> torch.Tensor:
        B = self.plan.batch
        out = alloc((len(steps) * B, *self.plan.frame_shape), self.plan.device)
        if not self.maker.trajectory:
            self.maker.fill(out, steps)
            return shift_(out, self.shift, B)
        if keyframe is not None and not keyframe.step < min(steps):
            raise ValueError(f"the keyframe (step {keyframe.step}) must come before step {min(steps)}")
        rows, _ = self._walk(min(steps), max(steps) + 1, keyframe)
        lo = min(steps)
        for o, i in enumerate(steps):
            out[o * B:(o + 1) * B].copy_(rows[(i - lo) * B:(i - lo + 1) * B])
        return out

    def walk(self, start: int, stop: int, keyframe: Optional[Keyframe] = None):
        """A trajectory's frames of steps start..stop-1 (normalised as the spec asks), and the ``Keyframe``
        of step stop-1 to continue from. ``keyframe`` (any step before ``start``) saves the walk before it."""
        if not self.maker.trajectory:
            raise ValueError("walk is for trajectory noise")
        if keyframe is not None and not keyframe.step < start:
            raise ValueError(f"the keyframe (step {keyframe.step}) must come before step {start}")
        if not 0 <= start < stop <= self.plan.n_steps:
            raise ValueError(f"steps {start}..{stop} are outside 0..{self.plan.n_steps}")
        with one_intraop_thread():
            return self._walk(start, stop, keyframe)

    def _walk(self, start: int, stop: int, keyframe: Optional[Keyframe]):
        B, shape, dev = self.plan.batch, self.plan.frame_shape, self.plan.device
        at, prev = (keyframe.step, keyframe.frames) if keyframe is not None else (-1, None)
        per = max(1, WALK_BYTES // max(1, self.plan.step_bytes))
        out = alloc(((stop - start) * B, *shape), dev)
        buf = alloc((min(per, stop - at - 1) * B, *shape), dev)
        for c0 in range(at + 1, stop, per):
            c1 = min(stop, c0 + per)
            block = buf[:(c1 - c0) * B]
            self.maker.draw(block, list(range(c0, c1)))
            self.maker.walk(block, c0, prev)
            prev = block[(c1 - c0 - 1) * B:].clone()
            lo, hi = max(c0, start), c1
            if hi > lo:
                out[(lo - start) * B:(hi - start) * B].copy_(block[(lo - c0) * B:(hi - c0) * B])
        return shift_(out, self.shift, B), Keyframe(stop - 1, prev)
