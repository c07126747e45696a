"""ComfyUI's nine schedulers as a registry of small pure functions.

Each handler does the float32 torch operations of ``comfy/samplers.py`` (and ``k_diffusion/sampling.py``)
in ComfyUI's order, on tensors of the same shapes, so that its last bit is what ComfyUI gives on the same
machine and torch build (float32 exp/tan/cos kernels round differently between hosts, and between vector
bodies, tails and single elements; see the reference README):

- karras, exponential and kl_optimal: one vector op chain of length n, as ComfyUI (pow, exp, tan_);
- normal and sgm_uniform: ``sigma()`` of the whole vector of timesteps, with the bits of ComfyUI's loop over
  0-d tensors: its arithmetic is exactly rounded, and each float32 kernel in it (exp, cos, log, sigmoid, ...)
  is one vector call only where this build rounds a vector as it rounds one element, else one element at a
  time (``model_sampling.kernel``);
- simple, ddim_uniform, beta and linear_quadratic only index the table or use Python floats.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np
import torch

from .devices import one_intraop_thread
from .model_sampling import ModelSampling, vector_kernel_is_scalar


def _float_tensor(values) -> torch.Tensor:
    """``torch.FloatTensor(list_of_python_floats)``: each value rounded to float32."""
    return torch.from_numpy(np.asarray(values, dtype=np.float64).astype(np.float32))


def simple_scheduler(ms: ModelSampling, steps: int) -> torch.Tensor:
    """'simple': every (len/steps)-th table entry from the top, then 0."""
    table = ms.sigmas_list
    ss = len(table) / steps
    idx = [-(1 + int(x * ss)) for x in range(steps)]
    return _float_tensor([table[i] for i in idx] + [0.0])


def ddim_scheduler(ms: ModelSampling, steps: int) -> torch.Tensor:
    """'ddim_uniform': table[1::len//steps], reversed, with a leading 0 unless table[1] is ~0."""
    table = ms.sigmas_list
    if math.isclose(table[1], 0, abs_tol=0.00001):
        steps += 1
        sigs = []
    else:
        sigs = [0.0]
    ss = max(len(table) // steps, 1)
    sigs += list(table[1::ss])
    return _float_tensor(sigs[::-1])


def normal_scheduler(ms: ModelSampling, steps: int, sgm: bool = False) -> torch.Tensor:
    """'normal' (and 'sgm_uniform' with sgm=True): timesteps evenly spaced between sigma_max and sigma_min."""
    start = ms.timestep(ms.sigma_max)
    end = ms.timestep(ms.sigma_min)
    append_zero = True
    if sgm:
        timesteps = torch.linspace(start, end, steps + 1)[:-1]
    else:
        if math.isclose(float(ms.sigma(end)), 0, abs_tol=0.00001):
            steps += 1
            append_zero = False
        timesteps = torch.linspace(start, end, steps)
    # ComfyUI calls sigma() on one 0-d timestep at a time; on the whole vector every element gets those bits
    # (exact arithmetic, and each kernel vectorised only where it rounds a vector alike: ``model_sampling.kernel``),
    # so how torch splits the vector between threads cannot matter: one thread, which on a busy machine saves
    # waiting for a descheduled OpenMP thread at every op (0.1-0.2 ms instead of 80-230 ms, SD1.5 x 10000)
    with one_intraop_thread():
        sigs = ms.sigma(timesteps).to(torch.float32)
    if append_zero:
        sigs = torch.cat([sigs, sigs.new_zeros([1])])
    return sigs


@lru_cache(maxsize=32)
def _beta_indices(steps: int, total_timesteps: int, alpha: float, beta: float) -> tuple:
    """Table indices at the Beta(alpha, beta) quantiles, duplicates dropped (cached: ~7 ms for 10k steps)."""
    from scipy.stats import beta as beta_dist  # imported lazily: scipy is slow to import

    ts = 1 - np.linspace(0, 1, steps, endpoint=False)
    ts = np.rint(beta_dist.ppf(ts, alpha, beta) * total_timesteps)
    idx = []
    last_t = -1
    for t in ts:
        if t != last_t:
            idx.append(int(t))
        last_t = t
    return tuple(idx)


def beta_scheduler(ms: ModelSampling, steps: int, alpha: float = 0.6, beta: float = 0.6) -> torch.Tensor:
    """'beta': table entries at the Beta(0.6, 0.6) quantiles (Lee et al. 2024), duplicates dropped, then 0."""
    table = ms.sigmas_list
    return _float_tensor([table[i] for i in _beta_indices(steps, len(table) - 1, alpha, beta)] + [0.0])


def linear_quadratic_schedule(ms: ModelSampling, steps: int, threshold_noise: float = 0.025,
                              linear_steps=None) -> torch.Tensor:
    """'linear_quadratic': Mochi's linear-then-quadratic curve, scaled by sigma_max."""
    if steps == 1:
        sigma_schedule = [1.0, 0.0]
    else:
        if linear_steps is None:
            linear_steps = steps // 2
        linear_sigma_schedule = [i * threshold_noise / linear_steps for i in range(linear_steps)]
        threshold_noise_step_diff = linear_steps - threshold_noise * steps
        quadratic_steps = steps - linear_steps
        quadratic_coef = threshold_noise_step_diff / (linear_steps * quadratic_steps ** 2)
        linear_coef = threshold_noise / linear_steps - 2 * threshold_noise_step_diff / (quadratic_steps ** 2)
        const = quadratic_coef * (linear_steps ** 2)
        quadratic_sigma_schedule = [quadratic_coef * (i ** 2) + linear_coef * i + const
                                    for i in range(linear_steps, steps)]
        sigma_schedule = linear_sigma_schedule + quadratic_sigma_schedule + [1.0]
        sigma_schedule = [1.0 - x for x in sigma_schedule]
    return _float_tensor(sigma_schedule) * ms.sigma_max


def karras_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """'karras': Karras et al. (2022) rho-spaced sigmas, then 0."""
    ramp = torch.linspace(0, 1, n)
    min_inv_rho = sigma_min ** (1 / rho)
    max_inv_rho = sigma_max ** (1 / rho)
    sigmas = (max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho
    return torch.cat([sigmas, sigmas.new_zeros([1])])


def exponential_sigmas(n: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """'exponential': log-linear from sigma_max to sigma_min, then 0."""
    sigmas = torch.linspace(math.log(sigma_max), math.log(sigma_min), n).exp()
    return torch.cat([sigmas, sigmas.new_zeros([1])])


def kl_optimal_sigmas(n: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    """'kl_optimal' (Sabour et al. 2024): tan of a linear blend of atan(sigma_max), atan(sigma_min).

    With n == 1 this is 0/0, so ComfyUI returns ``[nan, 0]``; we return the same values.
    """
    adj_idxs = torch.arange(n, dtype=torch.float).div_(n - 1)
    sigmas = adj_idxs.new_zeros(n + 1)
    sigmas[:-1] = (adj_idxs * math.atan(sigma_min) + (1 - adj_idxs) * math.atan(sigma_max)).tan_()
    return sigmas


@dataclass(frozen=True)
class Scheduler:
    name: str
    handler: Callable
    uses_model_sampling: bool  # False: called as handler(n, float(sigma_min), float(sigma_max))
    description: str
    #: The float32 kernels ComfyUI's handler applies to a whole vector (``model_sampling.vector_kernel_is_scalar``).
    kernels: tuple = ()

    def __call__(self, ms: ModelSampling, steps: int) -> torch.Tensor:
        # where each of those kernels rounds its vector body as its tail, how torch splits the vector between
        # threads cannot change a bit: one thread then (on a busy machine, waiting for a descheduled OpenMP
        # thread at every op cost 10-200 ms)
        one = all(vector_kernel_is_scalar(k) for k in self.kernels)
        with one_intraop_thread() if one else contextlib.nullcontext():
            if self.uses_model_sampling:
                return self.handler(ms, steps)
            return self.handler(n=steps, sigma_min=ms.sigmas_list[0], sigma_max=ms.sigmas_list[-1])


#: ComfyUI's SCHEDULER_HANDLERS, in ComfyUI's order (the order of its combo box).
SCHEDULERS = {s.name: s for s in (
    Scheduler("simple", simple_scheduler, True, "evenly strided table entries"),
    Scheduler("sgm_uniform", lambda ms, steps: normal_scheduler(ms, steps, sgm=True), True,
              "uniform timesteps, SGM style (last sigma dropped before the 0)"),
    Scheduler("karras", karras_sigmas, False, "Karras rho=7 spacing", ("pow_rho",)),
    Scheduler("exponential", exponential_sigmas, False, "log-linear spacing", ("exp",)),
    Scheduler("ddim_uniform", ddim_scheduler, True, "DDIM stride over the table (length varies)"),
    Scheduler("beta", beta_scheduler, True, "Beta(0.6, 0.6) quantiles, duplicates dropped"),
    Scheduler("normal", normal_scheduler, True, "uniform timesteps"),
    Scheduler("linear_quadratic", linear_quadratic_schedule, True, "Mochi's linear-quadratic curve"),
    Scheduler("kl_optimal", kl_optimal_sigmas, False, "KL-optimal (Align Your Steps paper); NaN for 1 step",
              ("tan",)),
)}
