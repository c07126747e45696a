"""ComfyUI's ModelSampling objects as small pure functions over torch float32 tensors.

Each function reproduces the float32 arithmetic of ``comfy/model_sampling.py`` operation by operation,
because the order of float32 operations decides the last bit (see the reference README). A
``ModelSampling`` bundles a family's table with its ``sigma(t)`` and ``timestep(sigma)`` maps.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import torch

from .families import Sampling


#: The float32 kernels ``sigma()`` calls besides exactly rounded operations (+ - * /, floor, ceil, frac, clamp,
#: indexing): the ones whose results on a vector and on one 0-d tensor could differ. Each goes through ``kernel``.
_KERNELS = {"exp": torch.exp, "cos": torch.cos, "log": torch.log, "sigmoid": torch.sigmoid,
            "square": lambda t: t ** 2, "pow_half": lambda t: t ** 0.5,
            "pow_rho": lambda t: t ** 7.0, "tan": torch.tan}  # the last two: karras and kl_optimal
#: Where each kernel is probed: the ranges sigma() feeds it (log-sigmas; cosine phases; logSNRs; sigmas).
_PROBE_RANGES = {"exp": (-12.0, 8.0), "cos": (0.0, 1.6), "log": (1e-6, 1e6), "sigmoid": (-20.0, 20.0),
                 "square": (-2.0, 2.0), "pow_half": (0.0, 1e4), "pow_rho": (0.0, 2.5), "tan": (0.0, 1.57)}
PROBE_VALUES = 2048


@lru_cache(maxsize=None)
def vector_kernel_is_scalar(op: str) -> bool:
    """True when torch's float32 CPU kernel ``op`` gives, on a whole vector, each element the bits it gives on
    one 0-d tensor: then ComfyUI's loop of ``sigma()`` over 0-d timesteps can be one vector call.

    Checked once per process on ``PROBE_VALUES`` values (vector body and tail) spread over the range
    ``sigma()`` uses. Where a build's kernels differ (as ``sigmoid`` does here: its vector body uses a faster
    exp), they differ on about 1 value in 25 to 100, so a build that passes the probe by chance is
    vanishingly unlikely (below 1e-9); such a build keeps the one-at-a-time loop.
    """
    fn, (lo, hi) = _KERNELS[op], _PROBE_RANGES[op]
    g = torch.Generator().manual_seed(20241)
    x = torch.rand(PROBE_VALUES + 3, generator=g) * (hi - lo) + lo
    one_by_one = torch.stack([fn(v) for v in x.unbind()])
    return torch.equal(fn(x).view(torch.int32), one_by_one.view(torch.int32))


def kernel(op: str, x: torch.Tensor) -> torch.Tensor:
    """torch's float32 ``op`` of ``x`` with the bits ComfyUI's loop of ``sigma()`` over 0-d timesteps gets:
    one vector call where this build rounds a vector as it rounds one element, else one 0-d element at a
    time (as ComfyUI does)."""
    fn = _KERNELS[op]
    if x.dim() == 0 or x.numel() <= 1 or vector_kernel_is_scalar(op):
        return fn(x)
    return torch.stack([fn(v) for v in x.reshape(-1).unbind()]).view(x.shape)


def _rescale_zero_terminal_snr_sigmas(sigmas: torch.Tensor) -> torch.Tensor:
    """Zero terminal SNR rescaling (Lin et al. 2023), as ComfyUI's ``rescale_zero_terminal_snr_sigmas``."""
    alphas_cumprod = 1 / ((sigmas * sigmas) + 1)
    alphas_bar_sqrt = alphas_cumprod.sqrt()
    a0 = alphas_bar_sqrt[0].clone()
    at = alphas_bar_sqrt[-1].clone()
    alphas_bar_sqrt -= at
    alphas_bar_sqrt *= a0 / (a0 - at)
    alphas_bar = alphas_bar_sqrt ** 2
    alphas_bar[-1] = 4.8973451890853435e-08
    return ((1 - alphas_bar) / alphas_bar) ** 0.5


def edm_table(sigma_min: float, sigma_max: float) -> torch.Tensor:
    """ModelSamplingContinuousEDM: 1000 log-spaced float32 sigmas."""
    return torch.linspace(math.log(sigma_min), math.log(sigma_max), 1000).exp()


def time_snr_shift(alpha: float, t: torch.Tensor) -> torch.Tensor:
    """SD3's timestep shift: alpha*t / (1 + (alpha-1)*t)."""
    if alpha == 1.0:
        return t
    return alpha * t / (1 + (alpha - 1) * t)


def flux_time_shift(mu: float, sigma: float, t: torch.Tensor) -> torch.Tensor:
    """Flux's timestep shift: e^mu / (e^mu + (1/t - 1)^sigma)."""
    return math.exp(mu) / (math.exp(mu) + (1 / t - 1) ** sigma)


def flow_sigma(shift: float, multiplier: float, timestep: torch.Tensor) -> torch.Tensor:
    return time_snr_shift(shift, timestep / multiplier)


def flow_table(shift: float, multiplier: float, timesteps: int = 1000) -> torch.Tensor:
    """ModelSamplingDiscreteFlow: sigma((arange(1, T+1) / T) * multiplier)."""
    return flow_sigma(shift, multiplier, (torch.arange(1, timesteps + 1, 1) / timesteps) * multiplier)


def flux_table(shift: float, timesteps: int = 10000) -> torch.Tensor:
    """ModelSamplingFlux: flux_time_shift(shift, 1, arange(1, T+1) / T)."""
    return flux_time_shift(shift, 1.0, torch.arange(1, timesteps + 1, 1) / timesteps)


class _CascadeConst:
    """Stable Cascade's cosine schedule constants, as float32 0-d tensors."""

    def __init__(self, cosine_s: float = 8e-3):
        self.cosine_s = torch.tensor(cosine_s)
        self.init_alpha_cumprod = torch.cos(self.cosine_s / (1 + self.cosine_s) * torch.pi * 0.5) ** 2


def cascade_sigma(shift: float, c: _CascadeConst, timestep) -> torch.Tensor:
    """StableCascadeSampling.sigma: cosine alpha-cumprod, logSNR shifted by 2*log(1/shift), clamped."""
    alpha_cumprod = (kernel("square", kernel("cos", (timestep + c.cosine_s) / (1 + c.cosine_s) * torch.pi * 0.5))
                     / c.init_alpha_cumprod)
    if shift != 1.0:
        var = alpha_cumprod
        log_snr = kernel("log", var / (1 - var))
        log_snr += 2 * torch.log(1.0 / torch.tensor(shift))
        alpha_cumprod = kernel("sigmoid", log_snr)
    alpha_cumprod = alpha_cumprod.clamp(0.0001, 0.9999)
    return kernel("pow_half", (1 - alpha_cumprod) / alpha_cumprod)


def cascade_timestep(c: _CascadeConst, sigma: torch.Tensor) -> torch.Tensor:
    var = 1 / ((sigma * sigma) + 1)
    var = var.clamp(0, 1.0)
    s, min_var = c.cosine_s, c.init_alpha_cumprod
    return (((var * min_var) ** 0.5).acos() / (torch.pi * 0.5)) * (1 + s) - s


def cascade_table(shift: float, num_timesteps: int = 10000) -> torch.Tensor:
    """StableCascadeSampling's table: sigma((x+1)/T) evaluated one Python float at a time, as ComfyUI does."""
    c = _CascadeConst()
    out = torch.empty((num_timesteps,), dtype=torch.float32)
    for x in range(num_timesteps):
        out[x] = cascade_sigma(shift, c, (x + 1) / num_timesteps)
    return out


@dataclass(frozen=True, eq=False)
class ModelSampling:
    """A family's float32 sigma table plus ComfyUI's ``sigma(t)`` and ``timestep(sigma)`` for it."""

    sigmas: torch.Tensor  # float32, ascending, as ComfyUI's ``model_sampling.sigmas``
    sigma: Callable[[torch.Tensor], torch.Tensor]
    timestep: Callable[[torch.Tensor], torch.Tensor]
    sigmas_list: tuple  # the same table as Python floats (exact float32 values), for fast indexing
    #: True when ``sigma(t)`` uses only IEEE arithmetic (+ - * /, each correctly rounded), so a whole vector gives
    #: the bits ComfyUI's one-0-d-tensor-at-a-time loop gives. False where it calls exp/log/cos/acos/sigmoid,
    #: whose float32 kernels round differently in vector bodies, tails and single elements.
    sigma_is_arithmetic: bool = False

    @property
    def sigma_min(self) -> torch.Tensor:
        return self.sigmas[0]

    @property
    def sigma_max(self) -> torch.Tensor:
        return self.sigmas[-1]


def _discrete_fns(sigmas: torch.Tensor, log_sigmas: torch.Tensor):
    def timestep(sigma):
        dists = sigma.log() - log_sigmas[:, None]
        return dists.abs().argmin(dim=0).view(sigma.shape)

    def sigma(timestep):
        t = torch.clamp(timestep.float(), min=0, max=(len(sigmas) - 1))
        low_idx = t.floor().long()
        high_idx = t.ceil().long()
        w = t.frac()
        log_sigma = (1 - w) * log_sigmas[low_idx] + w * log_sigmas[high_idx]
        return kernel("exp", log_sigma)

    return sigma, timestep


def _edm_fns():
    return (lambda timestep: kernel("exp", timestep / 0.25)), (lambda sigma: 0.25 * sigma.log())


@lru_cache(maxsize=64)
def model_sampling(s: Sampling) -> ModelSampling:
    """Build (once, then cached) the ModelSampling of a family's ``Sampling`` parameters."""
    arithmetic = s.kind in ("flow", "flow_av", "flux")
    if s.kind == "discrete":
        sig64 = discrete_table_f64(s.num_timesteps, s.linear_start, s.linear_end, s.zsnr)
        table, log_table = sig64.float(), sig64.log().float()
        sigma, timestep = _discrete_fns(table, log_table)
    elif s.kind == "stable_cascade":
        table = cascade_table(s.shift, 10000)
        log_table = table.log().float()
        c = _CascadeConst()
        sigma = lambda t, _s=s.shift, _c=c: cascade_sigma(_s, _c, t)  # noqa: E731
        timestep = lambda sg, _c=c: cascade_timestep(_c, sg)  # noqa: E731
    elif s.kind == "edm":
        table = edm_table(s.edm_sigma_min, s.edm_sigma_max)
        sigma, timestep = _edm_fns()
    elif s.kind in ("flow", "flow_av"):  # ModelSamplingAV is ModelSamplingDiscreteFlow for the (video) schedule
        table = flow_table(s.shift, s.multiplier, 1000)
        sigma = lambda t, _s=s.shift, _m=s.multiplier: flow_sigma(_s, _m, t)  # noqa: E731
        timestep = lambda sg, _m=s.multiplier: sg * _m  # noqa: E731
    elif s.kind == "flux":
        table = flux_table(s.shift, 10000)
        sigma = lambda t, _s=s.shift: flux_time_shift(_s, 1.0, t)  # noqa: E731
        timestep = lambda sg: sg  # noqa: E731
    else:  # pragma: no cover - the registry only holds known kinds
        raise ValueError(f"unknown sampling kind {s.kind!r}")
    table = table.contiguous()
    table.requires_grad_(False)
    return ModelSampling(sigmas=table, sigma=sigma, timestep=timestep, sigmas_list=tuple(table.tolist()),
                         sigma_is_arithmetic=arithmetic)


def discrete_table_f64(num_timesteps: int, linear_start: float, linear_end: float, zsnr: bool) -> torch.Tensor:
    """The float64 sigmas ModelSamplingDiscrete computes before casting (its log table is taken from these)."""
    betas = torch.linspace(linear_start ** 0.5, linear_end ** 0.5, num_timesteps, dtype=torch.float64) ** 2
    alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
    sigmas = ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5
    if zsnr:
        sigmas = _rescale_zero_terminal_snr_sigmas(sigmas)
    return sigmas
