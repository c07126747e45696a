"""A latent from a picture without any VAE: the least-squares inverse of the family's latent2rgb preview.

APPROXIMATE. This is not a VAE encoding: it is the latent whose ComfyUI preview (``Latent2RGBPreviewer``,
``rgb = z_m @ F + bias`` shown as ``(rgb + 1) / 2``) best matches the picture, as
``packaging/make_sample_latent.py`` makes the bundled sample:

1. crop to a multiple of the family's spatial ratio as VAE Encode does, then the mean of each ratio x ratio
   block (one latent cell);
2. ``rgb = 2 * value - 1 - bias``; per cell the minimum-norm least-squares ``z_m = rgb @ pinv(F)``;
3. ``process_out`` (model space -> the raw space a ``.latent`` holds).

Computed in float64, rounded once to float32.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import BadParameterError
from ..families import get_family
from ..formulas import process_out
from .facts import spatial_ratio
from .model import crop_to_multiple

METHOD = "approximate: least-squares inverse of the latent preview (latent2rgb), not a VAE encoding"


def block_mean(rgb: np.ndarray, k: int) -> np.ndarray:
    """``[H, W, C]`` (both multiples of ``k``) -> ``[H/k, W/k, C]``, the mean of each k x k block, float64."""
    h, w, c = rgb.shape
    return rgb.astype(np.float64).reshape(h // k, k, w // k, k, c).mean(axis=(1, 3))


def approximate_latent(pixels, family) -> torch.Tensor:
    """A picture ``[H, W, 3]`` (float 0..1) -> the family's raw latent ``[1, C, h, w]`` (``[1, C, 1, h, w]``
    for video families), by the least-squares inverse of its latent2rgb factors."""
    fam = get_family(family)
    lat = fam.latent
    if lat.rgb_factors is None:
        raise BadParameterError(f"{fam.display_name} has no latent preview factors, so no approximate latent can "
                                "be made from a picture; use a VAE")
    f = np.asarray(lat.rgb_factors, dtype=np.float64)
    if f.shape != (lat.channels, 3):
        raise BadParameterError(f"{fam.display_name}'s preview factors ({f.shape[0]} rows) do not map its "
                                f"{lat.channels} channels one to one; use a VAE")
    bias = np.zeros(3) if lat.rgb_factors_bias is None else np.asarray(lat.rgb_factors_bias, dtype=np.float64)
    r = spatial_ratio(fam)
    x = torch.as_tensor(np.asarray(pixels, dtype=np.float32))
    if x.dim() != 3 or x.shape[-1] != 3:
        raise BadParameterError(f"a picture is [H, W, 3]; got shape {list(x.shape)}")
    cells = block_mean(crop_to_multiple(x.unsqueeze(0), r)[0].numpy(), r)
    z_model = (cells * 2.0 - 1.0 - bias) @ np.linalg.pinv(f)  # [h, w, C]
    z = torch.from_numpy(np.ascontiguousarray(z_model.transpose(2, 0, 1))[None])  # [1, C, h, w] float64
    raw = process_out(z, fam).to(torch.float32)
    return raw.unsqueeze(2) if lat.dimensions == 3 else raw
