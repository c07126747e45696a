"""A picture becomes the source latent: ``picture_latent``, what ``unsampler encode`` and the app's Open call.

The VAE is, in this order: the one the user names (``vae_file``: a ``models/vae`` file, a checkpoint or a
TAESD file); the checkpoint's own; a ``models/vae`` file that fits the family; the family's TAESD encoder. With
none of them, and only when asked (``allow_approximate``), the least-squares inverse of the latent preview
(``approx.py``), labelled as approximate, with the advice of where a VAE would go.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import BadParameterError
from ..families import get_family
from . import approx
from .facts import spatial_ratio
from .find import VaeChoice, vae_choices, where_a_vae_goes
from .images import Picture, read_picture
from .loader import fits
from .model import Cancel, Progress


class NoVaeFound(BadParameterError):
    """No VAE for the family was given or found (the message says where one would go)."""


@dataclass
class PictureLatent:
    latent: torch.Tensor  # the raw latent ([1, C, h, w], or [1, C, 1, h, w] for video families), float32 CPU
    picture: Picture
    method: str  # "vae", "taesd" or "approximate"
    encoder: str  # what made it: the VAE's label, or approx.METHOD
    crop: tuple  # (left, top, width, height) of the part of the picture that was encoded
    notes: list = field(default_factory=list)

    @property
    def approximate(self) -> bool:
        return self.method != "vae"

    def metadata(self) -> dict:
        """What a ``.latent`` made from this picture records about its making."""
        return {"source": os.path.basename(self.picture.path), "width": self.picture.width,
                "height": self.picture.height, "crop": list(self.crop), "method": self.method,
                "encoder": self.encoder, "approximate": self.approximate}


def crop_box(width: int, height: int, ratio: int) -> tuple:
    """VAE Encode's centred crop to a multiple of ``ratio``: (left, top, width, height)."""
    w, h = (width // ratio) * ratio, (height // ratio) * ratio
    return ((width % ratio) // 2, (height % ratio) // 2, w, h)


def _candidates(family, vae_file, checkpoint, comfy_root) -> tuple:
    if vae_file is not None:
        return [VaeChoice("file", os.path.basename(os.fspath(vae_file)), path=os.fspath(vae_file))], []
    choices, notes = vae_choices(family, checkpoint=checkpoint, comfy_root=comfy_root)
    return [c for c in choices if c.can_encode], notes


def picture_latent(picture, family, vae_file=None, checkpoint=None, comfy_root=None,
                   allow_approximate: bool = False, device="auto", cancel: Cancel = None,
                   progress: Progress = None) -> PictureLatent:
    """The family's raw latent of a picture (a path or a ``Picture``), as ComfyUI's VAE Encode would make it."""
    fam = get_family(family)
    pic = picture if isinstance(picture, Picture) else read_picture(picture)
    choices, notes = _candidates(fam, vae_file, checkpoint, comfy_root)
    for choice in choices:
        vae = choice.load(family=fam, device=device)
        why = fits(vae, fam)
        if why is not None:
            if vae_file is not None:
                raise BadParameterError(why)
            notes.append(why)
            continue
        z = vae.encode(pic.pixels, cancel=cancel, progress=progress)
        box = crop_box(pic.width, pic.height, vae.spatial_ratio)
        return PictureLatent(z, pic, "taesd" if vae.approximate else "vae", vae.label, box, notes)
    advice = where_a_vae_goes(fam, comfy_root)
    if not allow_approximate:
        raise NoVaeFound(f"no VAE found for {fam.display_name}: {advice}")
    z = approx.approximate_latent(pic.pixels, fam)
    box = crop_box(pic.width, pic.height, spatial_ratio(fam))
    return PictureLatent(z, pic, "approximate", approx.METHOD, box, notes + [f"approximate latent; {advice}"])


def decode_to_uint8(vae, latents, time_index: int = 0, batch: int = 1, cancel: Cancel = None,
                    progress: Progress = None) -> np.ndarray:
    """Frames as ComfyUI's VAE Decode + SaveImage would show them: uint8 ``[N, H, W, 3]``."""
    from .model import to_uint8

    return to_uint8(vae.decode(latents, time_index=time_index, batch=batch, cancel=cancel, progress=progress))
