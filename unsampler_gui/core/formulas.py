"""Noising formulas, reduced to per-step coefficients.

Every output frame is ``out_i = m + a_i * (x - m) + g_i * eps_i`` (per channel where the latent
format has per-channel statistics). The coefficients come from ComfyUI's path
``process_out(noise_scaling(sigma, eps, process_in(x)))``:

- additive models (EPS, V_PREDICTION, EDM, and CogVideoX's V_PREDICTION_DDPM):
  ``noise_scaling = x_m + sigma*eps``, so ``a = 1`` and ``g = sigma * std / scale_factor``; ``m`` cancels;
- flow models (CONST): ``noise_scaling = sigma*(noise_scale*eps) + (1-sigma)*x_m``, so ``a = 1 - sigma``,
  ``g = sigma * noise_scale * std / scale_factor`` and ``m`` is the shift_factor or the per-channel
  latents_mean. ``noise_scale`` is ModelSamplingDiscreteFlow's (1 but for HiDream-O1's 8);
- ``legacy`` (the node's own formula): ``a = 1``, ``g = sigma / scale_factor`` for every family.

With ``std = 1`` the model formula's ``g`` is the float32 division ``sigma / scale_factor``, the very
value of the node's sigmas, so ``model`` and ``legacy`` give bit-identical output for SD1.x and SDXL.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from .families import ADDITIVE_PREDICTIONS, Family

FORMULAS = ("model", "legacy")


@dataclass(frozen=True, eq=False)
class Coefficients:
    a: torch.Tensor  # [N] float32 signal scale
    g: torch.Tensor  # [N, C] float32 noise scale
    m: Optional[torch.Tensor]  # [C] float32 offset, or None when it cancels (a == 1) or is zero
    additive: bool  # a == 1 for every step

    def frame_shape_view(self, v: torch.Tensor, ndim_frame: int) -> torch.Tensor:
        """Reshape a [C] vector to broadcast over one frame [C, H, W] or [C, T, H, W]."""
        return v.view(-1, *([1] * (ndim_frame - 1)))


def channel_offset_and_std(family: Family, channels: int):
    """The per-channel (mean, std) of process_in: ``(x - mean) * scale / std``; None where trivial."""
    lat = family.latent
    mean = std = None
    if lat.latents_mean is not None:
        mean = torch.tensor(lat.latents_mean, dtype=torch.float32).reshape(-1)
        std = torch.tensor(lat.latents_std, dtype=torch.float32).reshape(-1)
    elif lat.shift_factor:
        mean = torch.full((channels,), float(lat.shift_factor), dtype=torch.float32)
    return mean, std


def coefficients(family: Family, model_sigmas: torch.Tensor, raw_sigmas: torch.Tensor, formula: str,
                 channels: int) -> Coefficients:
    """Per-step coefficients of ``out = m + a*(x - m) + g*eps`` for a formula ('model' or 'legacy')."""
    n = model_sigmas.numel()
    if formula == "legacy":
        return Coefficients(a=torch.ones(n), g=raw_sigmas.reshape(n, 1).expand(n, channels).contiguous(),
                            m=None, additive=True)
    mean, std = channel_offset_and_std(family, channels)
    g = raw_sigmas.reshape(n, 1).expand(n, channels)
    s = family.sampling
    if s.is_flow and s.noise_scale != 1.0:
        g = g * s.noise_scale
    if std is not None:
        g = g * std.reshape(1, channels)
    g = g.contiguous()
    if s.is_flow:
        return Coefficients(a=(1 - model_sigmas).to(torch.float32), g=g, m=mean, additive=False)
    if s.prediction not in ADDITIVE_PREDICTIONS:  # pragma: no cover - the registry only holds known predictions
        raise ValueError(f"no noise scaling known for prediction {s.prediction!r}")
    return Coefficients(a=torch.ones(n), g=g, m=None, additive=True)


def trajectory_increments(coef: Coefficients) -> tuple:
    """Scales for a forward-diffusion path whose every frame has the exact marginal.

    ``y_i = r_i * y_{i-1} + d_i * eta_i`` with ``y = out - m``, ``r_i = a_i / a_{i-1}`` and
    ``d_i = sqrt(g_i^2 - r_i^2 g_{i-1}^2)``, so Var(y_i - a_i (x - m)) = g_i^2 for every i
    (the Markov forward process of DDPM / rectified flow). Computed in float64, returned float32.
    Returns (r [N], d [N, C]); r_0 and d_0 are unused (frame 0 is drawn directly).
    """
    a = coef.a.double()
    g = coef.g.double()
    prev = torch.roll(a, 1)
    r = torch.where(prev == 0, torch.zeros_like(a), a / torch.where(prev == 0, torch.ones_like(prev), prev))
    r[0] = 1.0
    var = g ** 2 - (r.reshape(-1, 1) ** 2) * torch.roll(g, 1, dims=0) ** 2
    d = var.clamp_min(0).sqrt()
    d[0] = g[0]
    return r.float(), d.float()


def _channel_view(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A [C] vector shaped to broadcast over a batch [N, C, ...]."""
    return v.to(x.device).view(1, -1, *([1] * (x.dim() - 2)))


def process_in(x: torch.Tensor, family: Family) -> torch.Tensor:
    """ComfyUI's ``latent_format.process_in``: raw VAE latents [N, C, ...] to model space."""
    mean, std = channel_offset_and_std(family, x.shape[1])
    y = x if mean is None else x - _channel_view(mean, x)
    y = y * family.latent.scale_factor
    return y if std is None else y / _channel_view(std, x)


def process_out(x: torch.Tensor, family: Family) -> torch.Tensor:
    """ComfyUI's ``latent_format.process_out``: model space back to raw VAE latents."""
    mean, std = channel_offset_and_std(family, x.shape[1])
    y = x if std is None else x * _channel_view(std, x)
    y = y / family.latent.scale_factor
    return y if mean is None else y + _channel_view(mean, x)
