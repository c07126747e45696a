"""The sequence: every frame of the current inputs, made on demand, in bounded memory.

A ``Sequence`` is a lazy view of one plan (latent, family, ``RunParams``): frame ``i`` is the i-th latent
of the batch, from low to high noise (the plan's output position ``i``, node step ``plan.positions[i]``),
``[B, ...]`` for every batch item. Nothing is made until it is asked for:

- frames come from ``core.frames.Frames``, so each one is bit-identical to the same frame of a full run
  or export of the same plan;
- ``independent`` and ``shared`` noise: any frame costs one frame (O(1) random access);
- ``trajectory`` noise is cumulative: keyframes (the exact un-normalised state) are kept every ``K``
  steps as walks pass them, within a byte budget, so a frame costs at most a walk of ``K`` steps from the
  nearest keyframe below it and memory stays bounded whatever the number of steps;
- made frames sit in an LRU cache with a byte budget (``cache_bytes``);
- ``stats_chunks`` makes the per-step statistics progressively (coarse first where frames are
  independent), and ``expected_stats`` gives the curves the formula predicts at once, from the latent.

Safe to use from several threads at once (the caches are locked; the frame maker is thread-safe). Qt-free.
"""
from __future__ import annotations

import math
import threading
from collections import OrderedDict
from typing import Callable, Iterator, List, Optional, Sequence as Seq

import numpy as np
import torch

from .errors import BadParameterError
from .formulas import coefficients
from .frames import Frames, Keyframe
from .job import Plan
from .stats import FrameStats, frame_stats

#: Default byte budget of the frame cache (frames made on demand are kept up to this many bytes).
CACHE_BYTES = 256 << 20
#: Default byte budget of a trajectory's keyframes.
KEYFRAME_BYTES = 192 << 20
#: Statistics are made this many bytes of frames at a time.
STATS_CHUNK_BYTES = 16 << 20


class FrameCache:
    """A thread-safe LRU of frame index -> tensor, bounded by bytes (a frame over the budget is not kept)."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max(0, int(max_bytes))
        self._d: "OrderedDict[int, torch.Tensor]" = OrderedDict()
        self.bytes = 0
        self._lock = threading.Lock()

    def get(self, i: int) -> Optional[torch.Tensor]:
        with self._lock:
            t = self._d.get(i)
            if t is not None:
                self._d.move_to_end(i)
            return t

    def put(self, i: int, t: torch.Tensor) -> None:
        size = t.numel() * t.element_size()
        with self._lock:
            old = self._d.pop(i, None)
            if old is not None:
                self.bytes -= old.numel() * old.element_size()
            if size > self.max_bytes:
                return
            self._d[i] = t
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, dropped = self._d.popitem(last=False)
                self.bytes -= dropped.numel() * dropped.element_size()

    def resize(self, max_bytes: int) -> None:
        """A new budget, applied at once (the least recently used frames are dropped to fit it)."""
        with self._lock:
            self.max_bytes = max(0, int(max_bytes))
            while self.bytes > self.max_bytes and self._d:
                _, dropped = self._d.popitem(last=False)
                self.bytes -= dropped.numel() * dropped.element_size()

    def __contains__(self, i: int) -> bool:
        with self._lock:
            return i in self._d

    def __len__(self) -> int:
        with self._lock:
            return len(self._d)


def keyframe_interval(n_steps: int, step_bytes: int, budget: int) -> int:
    """Steps between two trajectory keyframes: as few as the budget allows (at least 1)."""
    most = max(1, int(budget) // max(1, int(step_bytes)))
    return max(1, math.ceil(n_steps / most))


def coarse_first(n: int) -> List[int]:
    """0..n-1 ordered coarse to fine: the ends, then every 2^k-th index for k decreasing."""
    if n <= 0:
        return []
    seen = np.zeros(n, dtype=bool)
    order = []
    for i in (0, n - 1):
        if not seen[i]:
            seen[i] = True
            order.append(i)
    stride = 1 << max(0, (n - 1).bit_length())
    while stride >= 1:
        idx = np.arange(0, n, stride)
        new = idx[~seen[idx]]
        seen[new] = True
        order.extend(new.tolist())
        stride //= 2
    return order


def auto_stride(n_frames: int, visible: int = 400) -> int:
    """Every how many frames to show so that about ``visible`` cells cover the whole sequence."""
    return max(1, math.ceil(n_frames / max(1, visible)))


class FrameSource:
    """The frames of a plan by index: frame ``i`` is output step ``positions[i]``, with its sigmas
    (``sigmas``, ``raw_sigmas``) and schedule step (``plan.schedule_index``), through ``self.cache`` (a
    ``FrameCache``). A subclass's ``_produce(missing)`` gives ``{index: frame}`` for the sorted indices not
    cached (``Sequence`` makes them, ``core.batch_file.BatchSequence`` reads them from a file)."""

    @property
    def n_frames(self) -> int:
        return len(self.positions)

    def step(self, i: int) -> int:
        """The node's step index of frame ``i`` (0..N-1, low to high noise; ``i`` itself unless frames were
        selected)."""
        return self.positions[i]

    def schedule_step(self, i: int) -> int:
        """The schedule step of frame ``i``: its sigma's index in the scheduler's sigmas (high to low)."""
        return int(self.plan.schedule_index[self.positions[i]])

    def sigma(self, i: int) -> float:
        """Model-space sigma of frame ``i``."""
        return float(self.sigmas[i])

    def raw_sigma(self, i: int) -> float:
        return float(self.raw_sigmas[i])

    def cached(self, i: int) -> Optional[torch.Tensor]:
        """Frame ``i`` if it is in the cache (never makes it)."""
        return self.cache.get(i)

    def frame(self, i: int, item: Optional[int] = None) -> torch.Tensor:
        """Frame ``i``: ``[B, ...]`` (read only), or ``[...]`` of batch item ``item``."""
        t = self.frames([i])[0]
        return t if item is None else t[item]

    def frames(self, indices: Seq[int]) -> List[torch.Tensor]:
        """Frames ``indices`` (any order), each ``[B, ...]``; produced where not cached, then cached."""
        idx = [int(i) for i in indices]
        n = self.n_frames
        bad = [i for i in idx if not 0 <= i < n]
        if bad:
            raise BadParameterError(f"frame {bad[0]} is outside 0..{n - 1}")
        got = {i: self.cache.get(i) for i in set(idx)}
        missing = sorted(i for i, t in got.items() if t is None)
        if missing:
            got.update(self._produce(missing))
            for i in missing:
                self.cache.put(i, got[i])
        return [got[i] for i in idx]

    def _produce(self, missing: List[int]) -> dict:
        raise NotImplementedError


class Sequence(FrameSource):
    """Every frame of one plan, on demand (see the module docstring). Building one costs about a frame."""

    def __init__(self, plan: Plan, cache_bytes: int = CACHE_BYTES, keyframe_bytes: int = KEYFRAME_BYTES,
                 frames: Optional[Frames] = None):
        self.plan = plan
        self._frames = frames or Frames(plan)
        self.positions = tuple(int(p) for p in plan.positions)
        self.batch = plan.batch
        self.frame_shape = tuple(plan.frame_shape)
        self.cache = FrameCache(cache_bytes)
        self.trajectory = self._frames.maker.trajectory
        self.interval = keyframe_interval(plan.n_steps, plan.step_bytes, keyframe_bytes) if self.trajectory else 0
        self._keys: dict = {}  # node step -> Keyframe, steps interval-1, 2*interval-1, ...
        # keyframes live in one tensor, allocated at the first one: kept one by one, each in its own
        # small allocation between the walks' large temporaries, they would fragment the heap (RSS
        # growing by a walk buffer per keyframe)
        self._key_pool: Optional[torch.Tensor] = None
        self._max_keys = math.ceil(plan.n_steps / self.interval) if self.trajectory else 0
        self._key_lock = threading.Lock()
        pos = list(self.positions)
        self.sigmas = plan.model_sigmas.double().numpy()[pos]
        self.raw_sigmas = plan.raw_sigmas.double().numpy()[pos]

    # -- what a frame is ---------------------------------------------------------------------------
    @property
    def family(self):
        """The family the frames are of (the plan's, overrides applied)."""
        return self.plan.spec.family

    def frame_at_sigma(self, sigma: float) -> int:
        """The frame whose model-space sigma is nearest ``sigma``."""
        if not self.n_frames:
            raise BadParameterError("the sequence has no frames")
        return int(np.argmin(np.abs(self.sigmas - float(sigma))))

    @property
    def keyframes(self) -> int:
        """Trajectory keyframes kept now."""
        with self._key_lock:
            return len(self._keys)

    @property
    def keyframe_bytes(self) -> int:
        return self.keyframes * self.plan.step_bytes

    # -- frames (``FrameSource``: what is not cached is made) ----------------------------------------
    def _produce(self, missing: List[int]) -> dict:
        return self._make(missing)

    def _make(self, missing: List[int]) -> dict:
        B = self.batch
        if not self.trajectory:
            rows = self._cpu(self._frames.frames([self.positions[i] for i in missing]))
            if len(missing) == 1:
                return {missing[0]: rows}
            # each frame its own storage: a cached view would keep its whole group alive past the budget
            return {i: rows[j * B:(j + 1) * B].clone() for j, i in enumerate(missing)}
        out = {}
        by_step = sorted(missing, key=lambda i: self.positions[i])
        # frames whose steps lie between the same two keyframes are made by one walk
        group: list = []
        for i in by_step + [None]:
            if group and (i is None or self._segment(self.positions[i]) != self._segment(self.positions[group[0]])):
                out.update(self._walk_group(group))
                group = []
            if i is not None:
                group.append(i)
        return out

    def _segment(self, step: int) -> int:
        return step // self.interval

    def _walk_group(self, group: list) -> dict:
        """Frames of one segment: one walk from the keyframe below, a frame at a time (memory: a walk piece)."""
        out = {}
        pairs = sorted(((self.positions[i], i) for i in group))
        key, prev_i = self._keyframe_before(pairs[0][0]), None
        for s, i in pairs:
            if key is not None and key.step == s:  # a repeat of the step just made
                out[i] = out[prev_i]
                continue
            rows, key = self._frames.walk(s, s + 1, key)
            out[i], prev_i = self._cpu(rows), i
        return out

    def _keyframe_before(self, step: int) -> Optional[Keyframe]:
        """The kept keyframe nearest below ``step`` (made, with those before it, when missing)."""
        K = self.interval
        target = (step // K) * K - 1  # the keyframe that ends the previous segment
        if target < 0:
            return None
        with self._key_lock:
            have = self._keys.get(target)
            if have is not None:
                return have
            below = [s for s in self._keys if s < target]
            key = self._keys[max(below)] if below else None
        at = key.step if key is not None else -1
        for end in range(at + K, target + 1, K):  # walk segment by segment, keeping each end
            _, key = self._frames.walk(end, end + 1, key)
            key = self._keep(key)
        return key

    def _keep(self, key: Keyframe) -> Keyframe:
        """Keep a segment end's keyframe (a copy in the keyframe pool); the one kept already if there is one."""
        with self._key_lock:
            have = self._keys.get(key.step)
            if have is not None:
                return have
            if self._key_pool is None:
                self._key_pool = torch.empty((self._max_keys, *key.frames.shape), dtype=key.frames.dtype,
                                             device=key.frames.device)
            slot = self._key_pool[len(self._keys)]
            slot.copy_(key.frames)
            kept = self._keys[key.step] = Keyframe(key.step, slot)
            return kept

    def _cpu(self, t: torch.Tensor) -> torch.Tensor:
        return t if t.device.type == "cpu" else t.to("cpu")

    # -- statistics --------------------------------------------------------------------------------
    def stats_chunks(self, is_cancelled: Callable[[], bool] = lambda: False) -> Iterator[tuple]:
        """``(indices, FrameStats of their rows, step-major)`` chunk by chunk over every frame: coarse first
        for independent and shared noise, in order along a trajectory (which keeps its keyframes as it
        goes). The frames are not cached. Stops when ``is_cancelled()``."""
        B, n = self.batch, self.n_frames
        per = max(1, STATS_CHUNK_BYTES // max(1, self.plan.step_bytes))
        if not self.trajectory:
            order = coarse_first(n)
            for c in range(0, n, per):
                if is_cancelled():
                    return
                part = order[c:c + per]
                rows = self._frames.frames([self.positions[i] for i in part])
                yield part, frame_stats(self._cpu(rows))
            return
        by_step = sorted(range(n), key=lambda i: self.positions[i])
        steps = [self.positions[i] for i in by_step]
        K, key, s0, j = self.interval, None, 0, 0
        last = steps[-1] if steps else -1
        while s0 <= last:
            if is_cancelled():
                return
            # every segment end is a chunk end, so that the walk's own state is kept as its keyframe
            s1 = min(last + 1, s0 + per, (s0 // K + 1) * K)
            rows, key = self._frames.walk(s0, s1, key)
            if s1 % K == 0:
                key = self._keep(key)
            want = []
            while j < n and steps[j] < s1:
                want.append(j)
                j += 1
            if want:
                sel = torch.cat([rows[(steps[w] - s0) * B:(steps[w] - s0 + 1) * B] for w in want])
                yield [by_step[w] for w in want], frame_stats(self._cpu(sel))
            s0 = s1

    def expected_stats(self) -> dict:
        """The mean and std of every frame the formula predicts, from the latent alone:
        ``{"mean": [n, B], "std": [n, B]}`` float64 (values are ``m + a (x - m) + g eps``)."""
        plan = self.plan
        spec = plan.spec
        C = self.frame_shape[0]
        x = spec.latent.to(torch.float64).reshape(self.batch, C, -1)
        mu = x.mean(dim=2)  # [B, C]
        var = x.var(dim=2, correction=0)
        coef = coefficients(spec.family, plan.model_sigmas, plan.raw_sigmas, spec.formula, C)
        pos = list(self.positions)
        a = coef.a.double()[pos].reshape(-1, 1, 1)  # [n, 1, 1]
        g = coef.g.double()[pos].reshape(len(pos), 1, C)
        m = torch.zeros(C, dtype=torch.float64) if coef.m is None else coef.m.double()
        ch_mean = a * mu.unsqueeze(0) + (1 - a) * m.view(1, 1, C)  # [n, B, C]
        mean = ch_mean.mean(dim=2)
        std = (a ** 2 * var.unsqueeze(0) + g ** 2).mean(dim=2) + ch_mean.var(dim=2, correction=0)
        if self._frames.shift is not None:
            mean = mean - self._frames.shift.double().cpu().view(1, -1)
        return {"mean": mean.numpy(), "std": std.sqrt().numpy()}


__all__ = ["Sequence", "FrameCache", "CACHE_BYTES", "KEYFRAME_BYTES", "keyframe_interval", "coarse_first",
           "auto_stride"]
