"""Decoded previews: which decoders a family's frames can be shown through, and the decoders, loaded once.

The viewer and the thumbnails show a frame in one of three modes:

- ``latent2rgb``: ComfyUI's linear latent preview (``core.preview``), always there, the default;
- ``taesd``: the family's TAESD decoder (``models/vae_approx/<name>_decoder.*``, ComfyUI's previewer),
  about 1 s per 512x512 frame on two CPU cores;
- ``vae``: the full VAE (the checkpoint's own, a ``models/vae`` file, or a file the user picked), on demand.

``preview_options(family, checkpoint=, comfy_root=, user_file=)`` says, per mode, which ``VaeChoice``
decodes it, or why none does and what file to add where (the tooltip of a disabled mode). It reads names
and headers only. ``DecoderShelf`` loads a choice once (thread-safe: the viewer and the thumbnails share
it) on the core's device choice ("auto": CUDA when there is one). ``decode_frame`` is one frame through it.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..errors import BadFileError
from ..families import get_family
from . import facts
from .find import VaeChoice, layout_fits, vae_choices, where_a_vae_goes
from .layouts import find_layout
from .model import Cancel, Progress
from .weights import open_weights

LATENT2RGB, TAESD, VAE = "latent2rgb", "taesd", "vae"
MODES = (LATENT2RGB, TAESD, VAE)
MODE_LABELS = {LATENT2RGB: "latent2rgb", TAESD: "TAESD", VAE: "Full VAE"}

#: (channels, dimensions) of the latents a network Unsampler runs can decode (``data/vae.json`` networks).
DECODABLE = {(4, 2): "kl", (16, 2): "kl", (128, 2): "flux2", (16, 3): "wan21"}


@dataclass(frozen=True)
class DecoderOption:
    """One preview mode for a family: the decoder (``choice``), or why there is none (``reason``)."""

    mode: str
    choice: Optional[VaeChoice] = None
    reason: str = ""

    @property
    def available(self) -> bool:
        return self.mode == LATENT2RGB or self.choice is not None

    @property
    def label(self) -> str:
        return self.choice.label if self.choice is not None else MODE_LABELS[self.mode]


def _user_choice(path) -> tuple:
    """(the mode a picked file decodes, its VaeChoice or None, why not)."""
    p = os.fspath(path)
    name = os.path.basename(p)
    try:
        layout = find_layout(open_weights(p).shapes)
    except BadFileError as e:
        return VAE, None, f"{name}: {e}"
    if layout.network == "taesd":
        if layout.style == "taesd_encoder":
            return TAESD, None, f"{name} is a TAESD encoder: previews need its decoder ({name.replace('encoder', 'decoder')})"
        return TAESD, VaeChoice("taesd", f"TAESD ({name}), approximate", decoder=p), ""
    return VAE, VaeChoice("file", name, path=p), ""


def _taesd_reason(fam, comfy_root) -> str:
    name = facts.taesd_name(fam)
    if not name:
        return f"no TAESD exists for {fam.display_name}: use latent2rgb or the full VAE"
    entry = facts.taesd_entry(name)
    if entry is None:
        return f"{name} (a tiny video decoder) is not supported: diffusers has no network for it"
    if "unsupported" in entry:
        return entry["unsupported"]
    where = os.path.join(str(comfy_root), "models", "vae_approx") if comfy_root else "<ComfyUI>/models/vae_approx"
    tail = "" if comfy_root else " and choose that folder (Settings > ComfyUI folder)"
    return f"add {name}_decoder.pth (or .safetensors) to {where}{tail}, or pick it (View > VAE file for previews)"


def _vae_reason(fam, comfy_root, notes) -> str:
    lat = fam.latent
    if (lat.channels, lat.dimensions) not in DECODABLE:
        if (lat.channels, lat.dimensions) == (48, 3):
            return "a Wan 2.2 VAE (48 channels): diffusers has no single-file converter for it yet"
        kind = "video" if lat.dimensions == 3 else "image"
        return (f"no VAE network Unsampler runs (diffusers AutoencoderKL, AutoencoderKLFlux2, AutoencoderKLWan) "
                f"decodes {fam.display_name}'s {lat.channels}-channel {kind} latents")
    advice = where_a_vae_goes(fam, comfy_root).split(", or TAESD")[0]
    return "; ".join([advice] + list(notes[:2]))


def preview_options(family, checkpoint=None, comfy_root=None, user_file=None) -> dict:
    """``{mode: DecoderOption}`` for the family's frames (headers only; nothing is loaded)."""
    fam = get_family(family)
    lat = fam.latent
    picked = {}
    picked_why = {}
    if user_file:
        mode, choice, why = _user_choice(user_file)
        if choice is not None and choice.kind == "file":
            bad = layout_fits(choice.path, fam)
            if bad is not None:
                choice, why = None, f"{os.path.basename(os.fspath(user_file))}: {bad}"
        if choice is not None and choice.kind == "taesd" and lat.dimensions != 2:
            choice, why = None, f"a TAESD decodes image latents; {fam.display_name} makes video latents"
        if choice is not None:
            picked[mode] = choice
        else:
            picked_why[mode] = why
    choices, notes = vae_choices(fam, checkpoint=checkpoint, comfy_root=comfy_root)
    taesd = picked.get(TAESD) or next((c for c in choices if c.kind == "taesd" and c.can_decode), None)
    vae = picked.get(VAE) or next((c for c in choices if c.kind != "taesd"), None)
    if taesd is not None and taesd.decoder is not None and lat.dimensions == 2:
        t_opt = DecoderOption(TAESD, taesd)
    else:
        t_opt = DecoderOption(TAESD, None, picked_why.get(TAESD) or _taesd_reason(fam, comfy_root))
    v_opt = DecoderOption(VAE, vae) if vae is not None else DecoderOption(
        VAE, None, picked_why.get(VAE) or _vae_reason(fam, comfy_root, notes))
    return {LATENT2RGB: DecoderOption(LATENT2RGB), TAESD: t_opt, VAE: v_opt}


class DecoderShelf:
    """Loaded decoders, one per ``VaeChoice`` (and family), loaded on first use; safe from any thread.

    Two threads asking for the same choice load it once (a lock per choice); different choices load
    side by side. A file that cannot be loaded raises the same error again, without being read again.
    ``keep`` forgets the decoders no longer offered (and the failures)."""

    def __init__(self, device: str = "auto"):
        self.device = device
        self._lock = threading.Lock()
        self._slots: dict = {}  # (choice, family name) -> [lock, Vae or None]

    def get(self, choice: VaeChoice, family):
        fam = get_family(family)
        key = (choice, fam.name)
        with self._lock:
            slot = self._slots.setdefault(key, [threading.Lock(), None])
        with slot[0]:
            if slot[1] is None:
                try:
                    slot[1] = choice.load(family=fam, device=self.device)
                except Exception as e:  # noqa: BLE001 - kept and raised again: the file is not read twice
                    slot[1] = e.with_traceback(None)
            if isinstance(slot[1], BaseException):
                raise slot[1]
            return slot[1]

    def loaded(self, choice: VaeChoice, family) -> bool:
        with self._lock:
            slot = self._slots.get((choice, get_family(family).name))
        return slot is not None and slot[1] is not None and not isinstance(slot[1], BaseException)

    def keep(self, choices) -> None:
        keep = set(choices)
        with self._lock:
            for key in [k for k in self._slots if k[0] not in keep]:
                del self._slots[key]


def decode_frame(vae, frame, time_index: int = 0, cancel: Cancel = None, progress: Progress = None) -> np.ndarray:
    """One frame ``[C, h, w]`` (or ``[C, T, h, w]``, decoded at ``time_index``) -> uint8 ``[H, W, 3]``."""
    from .encode import decode_to_uint8

    return decode_to_uint8(vae, frame[None], time_index=time_index, cancel=cancel, progress=progress)[0]


def decode_frames(vae, frames, time_index: int = 0, batch: int = 4, cancel: Cancel = None) -> np.ndarray:
    """Frames (a list of ``[C, ...]``) -> uint8 ``[N, H, W, 3]``, ``batch`` at a time."""
    import torch

    from .encode import decode_to_uint8

    return decode_to_uint8(vae, torch.stack(list(frames)), time_index=time_index, batch=batch, cancel=cancel)


__all__ = ["LATENT2RGB", "TAESD", "VAE", "MODES", "MODE_LABELS", "DecoderOption", "preview_options", "DecoderShelf",
           "decode_frame", "decode_frames"]
