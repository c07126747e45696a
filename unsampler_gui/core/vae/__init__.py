"""Pictures in and real pictures out: ComfyUI's VAEs and TAESDs, run through diffusers networks, offline.

Qt-free; diffusers is imported only when a network is built (``networks.import_diffusers``). The app's calls:

- ``read_picture(path)`` -> ``Picture`` (pixels as LoadImage gives them, PNG text chunks);
- ``picture_latent(picture, family, vae_file=, checkpoint=, comfy_root=, allow_approximate=, device=, cancel=,
  progress=)`` -> ``PictureLatent`` (the raw latent, how it was made, notes);
- ``vae_choices(family, checkpoint=, comfy_root=)`` -> the VAEs to offer, in order; ``VaeChoice.load()``;
- ``load_vae(path)`` / ``load_taesd(encoder=, decoder=)`` -> ``Vae``; ``Vae.encode(pixels)``;
  ``decode_to_uint8(vae, latents, time_index=, batch=, cancel=, progress=)`` -> uint8 frames;
- ``comfyui_settings(path)`` -> ``ComfySettings`` from a ComfyUI picture or workflow ``.json``.

``cancel`` is a callable returning True to stop (``Cancelled`` is raised between network stages); ``progress``
is ``progress(done, total)``. ``device`` is "cpu", "cuda" or "auto" (CUDA when there is one).
"""
from __future__ import annotations

import os

from .approx import METHOD as APPROXIMATE_METHOD, approximate_latent
from .encode import NoVaeFound, PictureLatent, crop_box, decode_to_uint8, picture_latent
from .find import VaeChoice, checkpoint_vae, folder_vaes, taesd_choice, vae_choices, where_a_vae_goes
from .images import PICTURE_EXTENSIONS, Picture, read_picture, read_text_chunks, save_png, sniff_picture
from .loader import fits, load_taesd, load_vae
from .model import NotAbleError, Vae, to_uint8
from .workflow import SETTING_KEYS, ComfySettings, settings_from_chunks, settings_from_json_file


def comfyui_settings(path):
    """The sampler settings a ComfyUI picture (PNG text chunks) or workflow ``.json`` carries; None if none."""
    p = os.fspath(path)
    if p.lower().endswith(".json") and not sniff_picture(p):
        return settings_from_json_file(p)
    return settings_from_chunks(read_text_chunks(p))


__all__ = [
    "APPROXIMATE_METHOD", "approximate_latent", "NoVaeFound", "PictureLatent", "crop_box", "decode_to_uint8", "picture_latent",
    "VaeChoice", "checkpoint_vae", "folder_vaes", "taesd_choice", "vae_choices", "where_a_vae_goes",
    "PICTURE_EXTENSIONS", "Picture", "read_picture", "read_text_chunks", "save_png", "sniff_picture",
    "fits", "load_taesd", "load_vae", "NotAbleError", "Vae", "to_uint8",
    "SETTING_KEYS", "ComfySettings", "settings_from_chunks", "settings_from_json_file", "comfyui_settings",
]
