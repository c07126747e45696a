"""Frame statistics: per-frame mean/std/min/max over blocks, a histogram, a per-step accumulator, and
the summary of a whole tensor computed in chunks.

Qt-free. Statistics are of the raw latent values (what a ``.latent`` file holds), over a whole frame
(every channel, and every time step of a video frame). ``std`` is the population standard deviation,
except in ``ValueSummary`` (a whole file's values), which matches ``torch.std`` (Bessel's correction).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
import torch

from .errors import BadParameterError

#: Names of the per-frame statistics, in the order of ``FrameStats`` fields.
STAT_NAMES = ("mean", "std", "min", "max")


@dataclass(frozen=True)
class FrameStats:
    """Statistics of n frames: float64 arrays of length n."""

    mean: np.ndarray
    std: np.ndarray
    min: np.ndarray
    max: np.ndarray

    def __len__(self) -> int:
        return int(self.mean.shape[0])

    def row(self, i: int) -> dict:
        return {k: float(getattr(self, k)[i]) for k in STAT_NAMES}


def _as_tensor(x) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise BadParameterError(f"expected a tensor or array, got {type(x).__name__}")
    return x.detach().to("cpu")


def frame_stats(block) -> FrameStats:
    """Mean, std, min and max of every frame of a block ``[n, ...]``, vectorised (float64 accumulation)."""
    x = _as_tensor(block)
    if x.dim() < 2:
        raise BadParameterError(f"a block of frames is [n, ...], got shape {list(x.shape)}")
    n = x.shape[0]
    if n == 0:
        e = np.zeros(0)
        return FrameStats(e, e.copy(), e.copy(), e.copy())
    flat = x.reshape(n, -1)
    std, mean = torch.std_mean(flat.to(torch.float64), dim=1, correction=0)
    lo, hi = torch.aminmax(flat, dim=1)
    return FrameStats(mean.numpy(), std.numpy(), lo.double().numpy(), hi.double().numpy())


def one_frame_stats(frame) -> dict:
    """The statistics of one frame as a dict {mean, std, min, max}."""
    x = _as_tensor(frame)
    return frame_stats(x.reshape(1, -1)).row(0)


def histogram(frame, bins: int = 128, value_range: Optional[Tuple[float, float]] = None):
    """Histogram of one frame's values: (counts int64 [bins], edges float64 [bins + 1])."""
    x = _as_tensor(frame).reshape(-1).to(torch.float32).numpy()
    x = x[np.isfinite(x)]
    if value_range is None:
        if x.size == 0:
            value_range = (0.0, 1.0)
        else:
            lo, hi = float(x.min()), float(x.max())
            value_range = (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)
    counts, edges = np.histogram(x, bins=int(bins), range=value_range)
    return counts.astype(np.int64), edges


class StepStats:
    """Per-step, per-item statistics of a run, filled chunk by chunk as frames arrive.

    Arrays are ``[n_steps, batch]`` float64, NaN where a step has not arrived. ``add(start, stop, block)``
    takes output rows ``[start*B, stop*B)`` (step-major), or ``add_stats`` takes them already computed
    (so that the work can be done on another thread).
    """

    def __init__(self, n_steps: int, batch: int = 1):
        if n_steps < 0 or batch < 1:
            raise BadParameterError(f"bad statistics shape: {n_steps} steps x {batch} items")
        self.n_steps = int(n_steps)
        self.batch = int(batch)
        shape = (self.n_steps, self.batch)
        self.mean = np.full(shape, np.nan)
        self.std = np.full(shape, np.nan)
        self.min = np.full(shape, np.nan)
        self.max = np.full(shape, np.nan)
        self.filled = np.zeros(self.n_steps, dtype=bool)
        self.count = 0  # steps filled
        self.contiguous = 0  # steps 0..contiguous-1 are all filled

    def compute(self, start: int, stop: int, block) -> FrameStats:
        """The statistics of a chunk, without storing them (safe to call from any thread)."""
        self._check(start, stop)
        x = _as_tensor(block)
        if x.shape[0] != (stop - start) * self.batch:
            raise BadParameterError(f"steps {start}..{stop} need {(stop - start) * self.batch} rows, "
                                    f"got {x.shape[0]}")
        return frame_stats(x)

    def add_stats(self, start: int, stop: int, stats: FrameStats) -> None:
        """Store the statistics of rows ``[start*B, stop*B)``."""
        self._check(start, stop)
        shape = (stop - start, self.batch)
        for name in STAT_NAMES:
            getattr(self, name)[start:stop] = getattr(stats, name).reshape(shape)
        new = ~self.filled[start:stop]
        self.count += int(new.sum())
        self.filled[start:stop] = True
        while self.contiguous < self.n_steps and self.filled[self.contiguous]:
            self.contiguous += 1

    def add_rows(self, steps, stats: FrameStats) -> None:
        """Store the statistics of any steps (``stats`` rows step-major: ``j*B + b`` is ``steps[j]``, item b)."""
        idx = np.asarray(list(steps), dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_steps):
            raise BadParameterError(f"steps {int(idx.min())}..{int(idx.max())} are out of range 0..{self.n_steps}")
        shape = (idx.size, self.batch)
        for name in STAT_NAMES:
            getattr(self, name)[idx] = getattr(stats, name).reshape(shape)
        self.count += int((~self.filled[np.unique(idx)]).sum())
        self.filled[idx] = True
        while self.contiguous < self.n_steps and self.filled[self.contiguous]:
            self.contiguous += 1

    def add(self, start: int, stop: int, block) -> None:
        self.add_stats(start, stop, self.compute(start, stop, block))

    def series(self, name: str, item: int = 0) -> np.ndarray:
        """One statistic against step for one item: float64 [n_steps], NaN where missing."""
        if name not in STAT_NAMES:
            raise BadParameterError(f"unknown statistic {name!r}; one of {', '.join(STAT_NAMES)}")
        return getattr(self, name)[:, int(item)]

    def at(self, step: int, item: int = 0) -> dict:
        return {k: float(getattr(self, k)[step, item]) for k in STAT_NAMES}

    def _check(self, start: int, stop: int) -> None:
        if not 0 <= start <= stop <= self.n_steps:
            raise BadParameterError(f"steps {start}..{stop} are out of range 0..{self.n_steps}")


#: Values summarised at a time: the float64 work of one chunk is about 20 bytes a value.
SUMMARY_CHUNK = 1 << 20


class ValueSummary:
    """min, max, mean, std and the NaN/Inf count of a tensor's values, given chunk by chunk.

    Memory stays that of one chunk, whatever the tensor's size. Non-finite values are counted and
    left out of the statistics. Chunks are merged exactly in float64 (Chan et al.'s pairwise update
    of the mean and the sum of squared deviations), so the result does not depend on the chunking
    beyond float64 rounding. ``std`` has Bessel's correction, as ``torch.std``.
    """

    def __init__(self):
        self.count = 0  # finite values
        self.nonfinite = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.min: Optional[float] = None
        self.max: Optional[float] = None

    def add(self, chunk) -> None:
        """Add a chunk of values (a tensor or array of any shape; converted to float32 as read)."""
        x = _as_tensor(chunk).reshape(-1)
        if x.dtype != torch.float32:
            x = x.to(torch.float32)
        if x.numel() == 0:
            return
        fin = torch.isfinite(x)
        n = int(fin.sum())
        self.nonfinite += x.numel() - n
        if n == 0:
            return
        if n != x.numel():
            x = x[fin]
        lo, hi = torch.aminmax(x)
        self.min = float(lo) if self.min is None else min(self.min, float(lo))
        self.max = float(hi) if self.max is None else max(self.max, float(hi))
        xd = x.to(torch.float64)
        mean = float(xd.mean())
        m2 = float(xd.sub_(mean).square_().sum())
        total = self.count + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.count * n / total
        self.count = total

    def result(self) -> dict:
        """{min, max, mean, std, nonfinite}; None for statistics that no finite value defines."""
        std = (self.m2 / (self.count - 1)) ** 0.5 if self.count > 1 else None
        return {"min": self.min, "max": self.max, "mean": self.mean if self.count else None, "std": std,
                "nonfinite": self.nonfinite}


def value_summary(tensor, chunk: int = SUMMARY_CHUNK) -> dict:
    """``ValueSummary`` of a whole tensor, a chunk of ``chunk`` values at a time (no full-size copy)."""
    x = _as_tensor(tensor).reshape(-1)
    acc = ValueSummary()
    for i in range(0, x.numel(), chunk):
        acc.add(x[i:i + chunk])
    return acc.result()


__all__ = ["STAT_NAMES", "FrameStats", "frame_stats", "one_frame_stats", "histogram", "StepStats", "ValueSummary",
           "value_summary"]
