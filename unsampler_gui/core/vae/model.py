"""A loaded VAE: pictures to raw latents and back, as ComfyUI's ``comfy.sd.VAE`` does.

Facts from ComfyUI (``comfy/sd.py`` VAE.encode / decode, ``comfy/ldm/models/autoencoder.py``,
``comfy/taesd/taesd.py``, ``nodes.py`` VAELoader):

- pixels are ``[B, H, W, 3]`` float in 0..1; ``vae_encode_crop_pixels`` crops each side to a multiple of the
  VAE's spatial ratio, centred (offset ``(size % ratio) // 2``); ``process_input`` maps them to ``2x - 1``;
- the latent is the posterior's **mean** (``DiagonalGaussianRegularizer(sample=False)`` takes ``mode()``;
  Wan's encoder returns ``mu``), raw: no ``process_in``, no scale factor;
- FLUX.2 (``batch_norm_latent``): the 32-channel mean is cut into 2x2 patches, ``c (i pi) (j pj) ->
  (c pi pj) i j``, and normalised with the file's BatchNorm running statistics (eps 1e-4); decoding undoes both;
- a Wan VAE (``latent_dim == 3``) sees the pictures as the frames of one video, ``[1, 3, B, H, W]``;
- TAESD: ``encode(x) = taesd_encoder(x * 0.5 + 0.5) / vae_scale + vae_shift`` and
  ``decode(z) = taesd_decoder((z - vae_shift) * vae_scale) * 2 - 1``, with VAELoader's scale and shift per name;
- decoding gives ``[-1, 1]``; ``process_output`` is ``clamp((x + 1) / 2, 0, 1)``.

Everything runs in float32 (ComfyUI's CPU dtype; on CUDA ComfyUI prefers bfloat16, see the README).
A ``Vae`` serialises its calls (one lock); cancel and progress are checked between the network's stages.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch

from ..errors import BadParameterError, Cancelled, UnsamplerError

Cancel = Optional[Callable[[], bool]]
Progress = Optional[Callable[[int, int], None]]


class NotAbleError(UnsamplerError, ValueError):
    """The VAE cannot do what was asked (a TAESD decoder alone cannot encode)."""


def crop_to_multiple(pixels: torch.Tensor, ratio: int) -> torch.Tensor:
    """ComfyUI's ``vae_encode_crop_pixels``: each side of ``[B, H, W, C]`` cut to a multiple of ``ratio``, centred."""
    for axis in (1, 2):
        size = pixels.shape[axis]
        keep = (size // ratio) * ratio
        if keep == 0:
            raise BadParameterError(f"the picture is {pixels.shape[2]}x{pixels.shape[1]} pixels; this VAE needs at "
                                    f"least {ratio}x{ratio}")
        if keep != size:
            pixels = pixels.narrow(axis, (size % ratio) // 2, keep)
    return pixels


def patchify(z: torch.Tensor) -> torch.Tensor:
    """``c (i 2) (j 2) -> (c 2 2) i j`` on ``[B, C, H, W]`` (ComfyUI's FLUX.2 latent patching)."""
    b, c, h, w = z.shape
    return z.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(b, c * 4, h // 2, w // 2)


def unpatchify(z: torch.Tensor) -> torch.Tensor:
    """The inverse of ``patchify``: ``(c 2 2) i j -> c (i 2) (j 2)``."""
    b, c4, h, w = z.shape
    return z.reshape(b, c4 // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(b, c4 // 4, h * 2, w * 2)


class _Stages:
    """Forward pre-hooks on a network part's stages (its down/mid/up blocks): cancel and progress in a pass."""

    def __init__(self, part: torch.nn.Module, cancel: Cancel, progress: Progress, passes: int):
        self.modules = _stage_modules(part)
        self.cancel, self.progress = cancel, progress
        self.total = max(1, passes) * len(self.modules)
        self.done = 0
        self.handles = []

    def _hook(self, module, args):
        if self.cancel is not None and self.cancel():
            raise Cancelled("cancelled")
        self.done = min(self.done + 1, self.total)
        if self.progress is not None:
            self.progress(self.done, self.total)

    def finish_pass(self, index: int) -> None:
        done = (index + 1) * len(self.modules)
        if done != self.done and self.progress is not None:
            self.progress(done, self.total)
        self.done = done

    def __enter__(self):
        self.handles = [m.register_forward_pre_hook(self._hook) for m in self.modules]
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()
        return False


def _stage_modules(part: torch.nn.Module) -> list:
    out = []
    for attr in ("down_blocks", "mid_block", "up_blocks", "layers"):
        m = getattr(part, attr, None)
        if isinstance(m, (torch.nn.ModuleList, torch.nn.Sequential)):
            out.extend(m)
        elif isinstance(m, torch.nn.Module):
            out.append(m)
    return out or [part]


@dataclass(eq=False)
class Vae:
    """A VAE ready to run. ``network`` is the diffusers module; the rest says what it does."""

    network: torch.nn.Module
    network_name: str  # kl, flux2, wan21, taesd
    class_name: str  # the diffusers class
    label: str  # what to show a user: "sdxl_vae.safetensors (an LDM AutoencoderKL, 4-channel latents)"
    sources: tuple  # the files it came from
    latent_channels: int
    latent_dims: int  # 2 (image latents [B, C, H, W]) or 3 (video latents [B, C, T, H, W])
    spatial_ratio: int
    can_encode: bool
    can_decode: bool
    approximate: bool = False  # TAESD: a fast approximation of the model's own VAE
    taesd_scale: float = 1.0
    taesd_shift: float = 0.0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def to(self, device) -> "Vae":
        with self._lock:
            self.network.to(device)
            self.device = torch.device(device)
        return self

    # ---- encode ---------------------------------------------------------------------------------

    def encode(self, pixels, cancel: Cancel = None, progress: Progress = None) -> torch.Tensor:
        """Pictures ``[B, H, W, 3]`` (float 0..1, numpy or torch) -> the raw latent, as ComfyUI's VAE Encode.

        Returns float32 on the CPU: ``[B, C, h, w]``, or ``[1, C, t, h, w]`` for a video VAE.
        """
        if not self.can_encode:
            raise NotAbleError(f"{self.label} has no encoder (a TAESD decoder alone cannot encode)")
        x = _pixels(pixels)
        x = crop_to_multiple(x, self.spatial_ratio)
        x = (x * 2.0 - 1.0).movedim(-1, 1)  # process_input, channels first
        if self.latent_dims == 3:
            x = x.movedim(1, 0).unsqueeze(0)  # the pictures are the frames of one video
        x = x.contiguous()
        with self._lock, torch.inference_mode(), _Stages(self.network.encoder, cancel, progress, 1) as st:
            z = self._encode(x.to(self.device))
            st.finish_pass(0)
        return z.to("cpu", torch.float32)

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        net = self.network
        if self.network_name == "taesd":
            return net.encode(x).latents / self.taesd_scale + self.taesd_shift
        z = net.encode(x).latent_dist.mean
        if self.network_name == "flux2":
            bn = net.bn
            z = torch.nn.functional.batch_norm(patchify(z), bn.running_mean, bn.running_var, training=False,
                                               momentum=bn.momentum, eps=bn.eps)
        return z

    # ---- decode ---------------------------------------------------------------------------------

    def check_latent(self, latents: torch.Tensor) -> None:
        if latents.dim() not in (4, 5) or latents.shape[1] != self.latent_channels:
            raise BadParameterError(f"{self.label} decodes {self.latent_channels}-channel latents; got a latent of "
                                    f"shape {list(latents.shape)}")

    def decode(self, latents, time_index: int = 0, batch: int = 1, cancel: Cancel = None,
               progress: Progress = None) -> np.ndarray:
        """Raw latents ``[N, C, h, w]`` or ``[N, C, T, h, w]`` -> pictures ``[N, H, W, 3]`` float32 in 0..1.

        A 5-D latent is decoded at ``time_index`` (clamped), one latent frame on its own; ``batch`` frames go
        through the network at a time.
        """
        if not self.can_decode:
            raise NotAbleError(f"{self.label} has no decoder")
        z = _tensor(latents)
        c = self.latent_channels
        if z.dim() == 1 + self.latent_dims and z.shape[0] == c and not (z.dim() == 4 and z.shape[1] == c):
            z = z.unsqueeze(0)  # one frame [C, h, w] / [C, T, h, w]
        self.check_latent(z)
        if z.dim() == 5:
            t = min(max(int(time_index), 0), z.shape[2] - 1)
            z = z[:, :, t:t + 1] if self.latent_dims == 3 else z[:, :, t]
        elif self.latent_dims == 3:
            z = z.unsqueeze(2)
        n = z.shape[0]
        batch = max(1, int(batch))
        passes = -(-n // batch)
        out = []
        with self._lock, torch.inference_mode(), _Stages(self.network.decoder, cancel, progress, passes) as st:
            for i in range(passes):
                x = self._decode(z[i * batch:(i + 1) * batch].contiguous().to(self.device))
                if x.dim() == 5:
                    x = x[:, :, 0]
                out.append(((x.float() + 1.0) / 2.0).clamp_(0.0, 1.0).movedim(1, -1).cpu())
                st.finish_pass(i)
        return torch.cat(out).numpy()

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        net = self.network
        if self.network_name == "taesd":
            return net.decode((z - self.taesd_shift) * self.taesd_scale).sample
        if self.network_name == "flux2":
            bn = net.bn
            s = torch.sqrt(bn.running_var.view(1, -1, 1, 1) + bn.eps)
            z = unpatchify(z * s + bn.running_mean.view(1, -1, 1, 1))
        return net.decode(z).sample


def _tensor(x) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise BadParameterError(f"expected a tensor or array, got {type(x).__name__}")
    return x.detach().to("cpu", torch.float32)


def _pixels(pixels) -> torch.Tensor:
    x = _tensor(pixels)
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4 or x.shape[-1] != 3:
        raise BadParameterError(f"pictures are [B, H, W, 3] RGB in 0..1; got shape {list(x.shape)}")
    return x


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """ComfyUI's SaveImage: ``clip(255 * x, 0, 255)`` truncated to uint8."""
    return np.clip(np.asarray(pixels, dtype=np.float32) * 255.0, 0, 255).astype(np.uint8)
