"""Latent previews without a VAE: ComfyUI's latent2rgb, single channels, contrast and thumbnails.

Qt-free (numpy, torch, Pillow). Every function takes one frame, ``[C, H, W]`` or ``[C, T, H, W]``
(a 5-D video frame is shown at ``time_index``), as the raw latent a ``.latent`` file holds.

- ``to_model_space``: ComfyUI's ``LatentFormat.process_in``.
- ``latent_rgb_linear``: ComfyUI's ``Latent2RGBPreviewer``: ``F.linear(x_m.movedim(0, -1), factors^T, bias)``
  on the model-space latent ``x_m``; ``latent_to_rgb`` maps it for display as ComfyUI does,
  ``clamp((rgb + 1) / 2, 0, 1)``. Families without factors show their first three channels.
- Contrast: ``"fixed"`` is ComfyUI's mapping (model-space values -1..1 fill the range), ``"auto"``
  stretches each frame between its 0.5 and 99.5 percentiles, and a ``(lo, hi)`` pair is a range shared
  by many frames (``reference_range`` makes one from a reference frame).
"""
from __future__ import annotations

from typing import Sequence, Tuple, Union

import numpy as np
import torch

from .errors import BadParameterError
from .families import Family, get_family
from .formulas import process_in

#: Display modes: "rgb" or a channel number.
RGB = "rgb"
#: Contrast modes besides an explicit (lo, hi) pair.
CONTRAST_MODES = ("fixed", "auto")
#: ComfyUI's preview maps model-space values in this range to 0..255.
FIXED_RANGE = (-1.0, 1.0)
#: Percentiles of the automatic per-frame stretch.
AUTO_PERCENTILES = (0.5, 99.5)

Contrast = Union[str, Tuple[float, float]]
Mode = Union[str, int]


def _tensor(x) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise BadParameterError(f"expected a tensor or array, got {type(x).__name__}")
    return x.detach().to("cpu", torch.float32)


def _channel_axis(x: torch.Tensor, family: Family) -> int:
    """The channel axis of one frame ``[C, ...]`` or a block ``[N, C, ...]`` of this family's latents."""
    axis = x.dim() - (1 + family.latent.dimensions)
    if axis not in (0, 1) or x.shape[axis] != family.latent.channels:
        raise BadParameterError(
            f"a {family.display_name} latent has {family.latent.channels} channels and {family.latent.dimensions} spatial "
            f"dimensions; got a tensor of shape {list(x.shape)}")
    return axis


def _per_channel(values: Sequence[float], ndim: int, axis: int) -> torch.Tensor:
    v = torch.tensor(values, dtype=torch.float32).reshape(-1)
    shape = [1] * ndim
    shape[axis] = -1
    return v.view(shape)


def to_model_space(frames, family) -> torch.Tensor:
    """ComfyUI's ``process_in`` (raw VAE latent -> model space, float32) for one frame ``[C, ...]`` or a
    block ``[N, C, ...]``; the formula itself lives in ``core.formulas.process_in``."""
    fam = get_family(family)
    x = _tensor(frames)
    if _channel_axis(x, fam) == 0:
        return process_in(x.unsqueeze(0), fam)[0]
    return process_in(x, fam)


def _at_time(frame: torch.Tensor, time_index: int) -> torch.Tensor:
    """A 2-D frame [C, H, W]: a video frame [C, T, H, W] at ``time_index`` (clamped to the frame)."""
    if frame.dim() == 4:
        t = min(max(int(time_index), 0), frame.shape[1] - 1)
        return frame[:, t]
    if frame.dim() != 3:
        raise BadParameterError(f"a frame is [C, H, W] or [C, T, H, W], got shape {list(frame.shape)}")
    return frame


def _check_frame(frame, family: Family) -> torch.Tensor:
    x = _tensor(frame)
    if _channel_axis(x, family) != 0:
        raise BadParameterError(f"expected one frame [C, ...], got a block of shape {list(x.shape)}")
    return x


def latent_rgb_linear(frame, family, time_index: int = 0) -> np.ndarray:
    """ComfyUI's latent2rgb before the display mapping: float32 ``[H, W, 3]``, about -1..1 for a clean latent."""
    fam = get_family(family)
    x = _at_time(to_model_space(_check_frame(frame, fam), fam), time_index)
    factors = fam.latent.rgb_factors
    if factors is None:
        rgb = x[:3] if x.shape[0] >= 3 else x[:1].expand(3, *x.shape[1:])
        return np.ascontiguousarray(rgb.permute(1, 2, 0).numpy())
    reshape = fam.latent.rgb_factors_reshape
    if reshape and reshape.get("pixel_shuffle"):  # Flux2: 128 channels as 32 x 2 x 2, shown at twice the size
        x = torch.nn.functional.pixel_shuffle(x.unsqueeze(0), int(reshape["pixel_shuffle"]))[0]
    x = x[:len(factors)]  # packed audio-video latents (MiniMax H3): the factors cover the video channels
    w = torch.tensor(factors, dtype=torch.float32)  # [C, 3]
    bias = None if fam.latent.rgb_factors_bias is None else torch.tensor(fam.latent.rgb_factors_bias,
                                                                         dtype=torch.float32)
    rgb = torch.nn.functional.linear(x.movedim(0, -1), w.t(), bias)
    return np.ascontiguousarray(rgb.numpy())


def latent_to_rgb(frame, family, time_index: int = 0) -> np.ndarray:
    """ComfyUI's latent preview as float32 ``[H, W, 3]`` in 0..1: ``clamp((rgb + 1) / 2, 0, 1)``."""
    rgb = latent_rgb_linear(frame, family, time_index)
    return np.clip((rgb + 1.0) / 2.0, 0.0, 1.0, out=rgb)


def channel_image(frame, channel: int, time_index: int = 0, family=None) -> np.ndarray:
    """One channel as float32 ``[H, W]``: raw values, or model-space values when ``family`` is given."""
    x = _tensor(frame)
    if family is not None:
        fam = get_family(family)
        x = to_model_space(_check_frame(x, fam), fam)
    x = _at_time(x, time_index)
    if not 0 <= int(channel) < x.shape[0]:
        raise BadParameterError(f"channel {channel} is out of range: the latent has {x.shape[0]} channels")
    return np.ascontiguousarray(x[int(channel)].numpy())


def auto_range(img: np.ndarray, percentiles=AUTO_PERCENTILES) -> Tuple[float, float]:
    """The per-frame stretch: the (0.5, 99.5) percentiles of all values (all colours together)."""
    flat = np.asarray(img, dtype=np.float32).reshape(-1)
    finite = flat[np.isfinite(flat)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(finite, percentiles)
    return float(lo), float(hi)


def to_uint8(img: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Map ``lo..hi`` to 0..255 (clamped, rounded); a flat range maps everything to mid-grey."""
    a = np.asarray(img, dtype=np.float32)
    span = float(hi) - float(lo)
    if not np.isfinite(span) or span <= 0:
        return np.full(a.shape, 128, dtype=np.uint8)
    out = (a - np.float32(lo)) * np.float32(255.0 / span)
    np.clip(out, 0.0, 255.0, out=out)
    out += 0.5
    return np.nan_to_num(out, nan=0.0).astype(np.uint8)


def display_values(frame, family, mode: Mode = RGB, time_index: int = 0) -> np.ndarray:
    """What a view shows, before contrast: latent2rgb ``[H, W, 3]`` or one model-space channel ``[H, W]``."""
    if mode == RGB:
        return latent_rgb_linear(frame, family, time_index)
    return channel_image(frame, int(mode), time_index, family=family)


def contrast_range(values: np.ndarray, contrast: Contrast) -> Tuple[float, float]:
    """The (lo, hi) of a contrast setting for these display values."""
    if isinstance(contrast, str):
        if contrast == "fixed":
            return FIXED_RANGE
        if contrast == "auto":
            return auto_range(values)
        raise BadParameterError(f"contrast must be one of {', '.join(CONTRAST_MODES)} or a (lo, hi) pair, "
                                f"got {contrast!r}")
    lo, hi = contrast
    return float(lo), float(hi)


def reference_range(frame, family, mode: Mode = RGB, time_index: int = 0) -> Tuple[float, float]:
    """A contrast range to share across a sequence: the auto range of one reference frame (e.g. step 0)."""
    return auto_range(display_values(frame, family, mode, time_index))


def render(frame, family, mode: Mode = RGB, contrast: Contrast = "fixed", time_index: int = 0) -> np.ndarray:
    """A frame as uint8 ``[H, W, 3]`` at latent resolution (a channel is shown in grey)."""
    values = display_values(frame, family, mode, time_index)
    lo, hi = contrast_range(values, contrast)
    img = to_uint8(values, lo, hi)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return img


def fit_size(h: int, w: int, size: int) -> Tuple[int, int]:
    """(height, width) scaled so that the longer side is ``size``, keeping the aspect ratio."""
    s = max(1, int(size))
    if h >= w:
        return s, max(1, round(w * s / h))
    return max(1, round(h * s / w)), s


def resize(img: np.ndarray, size: int) -> np.ndarray:
    """Scale a uint8 ``[H, W, 3]`` image to fit ``size``: blocky (nearest) when enlarging, smooth when shrinking."""
    from PIL import Image

    h, w = img.shape[:2]
    th, tw = fit_size(h, w, size)
    if (th, tw) == (h, w):
        return img
    resample = Image.Resampling.NEAREST if th >= h else Image.Resampling.BOX
    out = Image.fromarray(img).resize((tw, th), resample=resample)
    return np.asarray(out, dtype=np.uint8)


def thumbnail(frame, family, size: int, mode: Mode = RGB, contrast: Contrast = "fixed",
              time_index: int = 0) -> np.ndarray:
    """A frame rendered and scaled so that its longer side is ``size``: contiguous uint8 ``[h, w, 3]``."""
    return np.ascontiguousarray(resize(render(frame, family, mode, contrast, time_index), size))


def mode_names(family) -> list:
    """Display mode labels for a family: "rgb" then each channel number."""
    fam = get_family(family)
    return [RGB] + list(range(fam.latent.channels))


def describe_contrast(contrast: Contrast) -> str:
    if isinstance(contrast, str):
        return {"fixed": "ComfyUI (fixed)", "auto": "auto per frame"}.get(contrast, contrast)
    return f"shared {contrast[0]:.3g}..{contrast[1]:.3g}"


__all__ = [
    "RGB", "CONTRAST_MODES", "FIXED_RANGE", "AUTO_PERCENTILES", "to_model_space", "latent_rgb_linear",
    "latent_to_rgb", "channel_image", "auto_range", "to_uint8", "display_values", "contrast_range",
    "reference_range", "render", "fit_size", "resize", "thumbnail", "mode_names", "describe_contrast",
]
