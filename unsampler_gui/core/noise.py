"""Counter-based seeding: every frame's noise comes from its own generator, seeded from
(seed, schedule step, batch item). The output is then the same whatever the chunk size, the thread
count, or the subset of frames computed.
"""
from __future__ import annotations

import numpy as np
import torch

_MASK64 = (1 << 64) - 1
#: Stream tags keep the noise of different uses apart.
TAG_FRAME = 0x4652414D        # "FRAM": independent / trajectory increments on the CPU
TAG_SHARED = 0x53484152       # "SHAR": the one eps of shared mode
TAG_CUDA_BLOCK = 0x43554441   # "CUDA": a block of frames drawn on the GPU


def splitmix64(x: int) -> int:
    """SplitMix64 finaliser (Steele et al. 2014): a bijective 64-bit mix."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def frame_seed(seed: int, tag: int, step: int, item: int) -> int:
    """A 63-bit generator seed for one (seed, tag, step, item); distinct inputs give unrelated seeds."""
    h = splitmix64(int(seed) & _MASK64)
    for v in (tag, step, item):
        h = splitmix64(h ^ (int(v) & _MASK64))
    return h >> 1


def _splitmix64_np(x: np.ndarray) -> np.ndarray:
    """``splitmix64`` on a uint64 array (numpy's uint64 arithmetic wraps modulo 2**64, as the mix needs)."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def frame_seeds(seed: int, tag: int, steps, items) -> list:
    """``frame_seed`` for every (step, item) pair of two equal-length sequences, vectorised: one call per
    chunk instead of four Python-level mixes per frame (the worker threads hold the GIL less)."""
    steps = np.asarray(steps, dtype=np.int64).astype(np.uint64)
    items = np.asarray(items, dtype=np.int64).astype(np.uint64)
    h = np.full(steps.shape, splitmix64(int(seed) & _MASK64), dtype=np.uint64)
    h = _splitmix64_np(h ^ np.uint64(int(tag) & _MASK64))
    h = _splitmix64_np(h ^ steps)
    h = _splitmix64_np(h ^ items)
    return (h >> np.uint64(1)).tolist()


def normal_(out: torch.Tensor, gen: torch.Generator, seed: int) -> torch.Tensor:
    """Fill ``out`` with standard normal noise from ``gen`` re-seeded to ``seed``."""
    gen.manual_seed(seed)
    return out.normal_(generator=gen)
