"""The noising formula of every family against ComfyUI's ``noise_scaling``, written out here on its own.

ComfyUI (comfy/model_sampling.py, 783545f6), in model space ``x_m = process_in(x)``:
- EPS, V_PREDICTION, EDM and V_PREDICTION_DDPM: ``noise * sigma + x_m``;
- CONST: ``sigma * (noise_scale * noise) + (1 - sigma) * x_m``, noise_scale from ModelSamplingDiscreteFlow (1.0
  when the ModelSampling has none, as ModelSamplingFlux);
then ``process_out``. The latent formats' process_in/out are written from their facts (scale, shift,
per-channel mean/std) independently of ``formulas.py``.
"""
import dataclasses

import pytest
import torch

from unsampler_gui.core import family_names, get_family, model_space_sigmas, node_sigmas, run_unsample
from unsampler_gui.core.formulas import coefficients
from unsampler_gui.core.unsample import UnsampleSpec


def _process_in(x, lat):
    x = x.double()
    view = (1, -1) + (1,) * (x.dim() - 2)
    if lat.latents_mean is not None:
        mean = torch.tensor(lat.latents_mean, dtype=torch.float64).view(view)
        std = torch.tensor(lat.latents_std, dtype=torch.float64).view(view)
        return (x - mean) * lat.scale_factor / std
    return (x - (lat.shift_factor or 0.0)) * lat.scale_factor


def _process_out(z, lat):
    view = (1, -1) + (1,) * (z.dim() - 2)
    if lat.latents_mean is not None:
        mean = torch.tensor(lat.latents_mean, dtype=torch.float64).view(view)
        std = torch.tensor(lat.latents_std, dtype=torch.float64).view(view)
        return z * std / lat.scale_factor + mean
    return z / lat.scale_factor + (lat.shift_factor or 0.0)


def comfy_noise_scaling(fam, sigma: float, noise, x_m):
    s = fam.sampling
    if s.prediction == "CONST":
        scale = s.noise_scale if s.kind in ("flow", "flow_av") else 1.0
        return sigma * (scale * noise) + (1.0 - sigma) * x_m
    assert s.prediction in ("EPS", "V_PREDICTION", "EDM", "V_PREDICTION_DDPM")
    return noise * sigma + x_m


def _shape(fam, b=2):
    c = fam.latent.channels
    return (b, c, 2, 4, 4) if fam.latent.dimensions == 3 else (b, c, 4, 4)


@pytest.mark.parametrize("family", family_names())
def test_coefficients_follow_comfyuis_noise_scaling(family):
    fam = get_family(family)
    shape = _shape(fam)
    g = torch.Generator().manual_seed(7)
    x = torch.randn(shape, generator=g) * 0.7 + 0.1
    eps = torch.randn(shape, generator=g)
    model = model_space_sigmas(fam, "euler", "karras", 6)
    raw = node_sigmas(fam, "euler", "karras", 6)
    coef = coefficients(fam, model, raw, "model", shape[1])
    view = (1, -1) + (1,) * (len(shape) - 2)
    for i in range(len(model)):
        want = _process_out(comfy_noise_scaling(fam, float(model[i]), eps.double(), _process_in(x, fam.latent)),
                            fam.latent)
        m = 0.0 if coef.m is None else coef.m.double().view(view)
        got = m + float(coef.a[i]) * (x.double() - m) + coef.g[i].double().view(view) * eps.double()
        assert torch.allclose(got, want, rtol=2e-6, atol=2e-6 * (1 + float(model[i]) * 8)), (family, i)


def test_noise_scale_multiplies_the_noise_only():
    """HiDream-O1 (noise_scale 8): the same run with noise_scale 1 has exactly 1/8 of the noise term."""
    fam = get_family("HiDreamO1")
    assert fam.sampling.noise_scale == 8.0
    plain = dataclasses.replace(fam, sampling=dataclasses.replace(fam.sampling, noise_scale=1.0))
    x = torch.rand(1, 3, 16, 16)
    runs = [run_unsample(UnsampleSpec(family=f, latent=x, steps=9, noise="shared", seed=4)) for f in (fam, plain)]
    sig = runs[0].sigmas.view(-1, 1, 1, 1)
    assert torch.equal(runs[0].sigmas, runs[1].sigmas)
    n8 = runs[0].latent.double() - (1 - sig.double()) * x.double()
    n1 = runs[1].latent.double() - (1 - sig.double()) * x.double()
    assert torch.allclose(n8, 8 * n1, atol=1e-5)
    assert n1.abs().max() > 0.1


def test_v_prediction_ddpm_is_additive():
    """CogVideoX noises as ``x + sigma * noise`` (V_PREDICTION_DDPM.noise_scaling), in raw space ``/ scale``."""
    fam = get_family("CogVideoX_2B")
    model = model_space_sigmas(fam, "euler", "normal", 5)
    raw = node_sigmas(fam, "euler", "normal", 5)
    coef = coefficients(fam, model, raw, "model", 16)
    assert coef.additive and coef.m is None and bool((coef.a == 1).all())
    assert torch.equal(coef.g[:, 0], raw)
