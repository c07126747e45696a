"""Pictures in and real pictures out: ComfyUI's VAEs and TAESDs, run through diffusers networks, offline.

Qt-free; diffusers is imported only when a network is built (``networks.import_diffusers``). The app's calls:

- ``read_picture(path)`` -> ``Picture`` (pixels as LoadImage gives them, PNG text chunks);
- ``picture_latent(picture, family, vae_file=, checkpoint=, comfy_root=, allow_approximate=, device=, cancel=,
  progress=)`` -> ``PictureLatent`` (the raw latent, how it was made, notes);
- ``vae_choices(family, checkpoint=, comfy_root=, user_file=)`` -> the VAEs to offer, in order; ``VaeChoice.load()``;
- ``load_vae(path)`` / ``load_taesd(encoder=, decoder=)`` -> ``Vae``; ``Vae.encode(pixels)``;
  ``decode_to_uint8(vae, latents, time_index=, batch=, cancel=, progress=)`` -> uint8 frames;
- ``comfyui_settings(path)`` -> ``ComfySettings`` from a ComfyUI picture or workflow ``.json``.

``cancel`` is a callable returning True to stop (``Cancelled`` is raised between network stages); ``progress``
is ``progress(done, total)``. ``device`` is "cpu", "cuda" or "auto" (CUDA when there is one).
"""
from __future__ import annotations

import os

from .images import PICTURE_EXTENSIONS, Picture, read_picture, read_text_chunks, save_png, sniff_picture
from .workflow import SETTING_KEYS, ComfySettings, settings_from_chunks, settings_from_json_file

#: The networks' side, imported on first use: a command that only checks whether a file is a picture (the
#: command line's ``run --latent``) never loads the VAE's finders, loaders and models.
_LAZY = {"APPROXIMATE_METHOD": ("approx", "METHOD"), "approximate_latent": ("approx", None),
         "NoVaeFound": ("encode", None), "PictureLatent": ("encode", None), "crop_box": ("encode", None),
         "decode_to_uint8": ("encode", None), "picture_latent": ("encode", None),
         "VaeChoice": ("find", None), "checkpoint_vae": ("find", None), "folder_vaes": ("find", None),
         "taesd_choice": ("find", None), "vae_choices": ("find", None), "where_a_vae_goes": ("find", None),
         "fits": ("loader", None), "load_taesd": ("loader", None), "load_vae": ("loader", None),
         "NotAbleError": ("model", None), "Vae": ("model", None), "to_uint8": ("model", None)}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f".{module}", __name__), attr or name)
        globals()[name] = value  # once: later lookups are plain attributes (and can be patched as before)
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
