"""The shipped VAE facts (``data/vae.json``) and the per-family facts a VAE needs.

``spatial_ratio`` and ``taesd_name`` prefer the family registry's own fields
(``LatentFormat.spacial_downscale_ratio`` and ``taesd_decoder_name``, ComfyUI's latent_formats.py) and
fall back to the ``formats`` table here for a registry that does not carry them yet.
"""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Optional

from ..families import get_family


@lru_cache(maxsize=None)
def data() -> dict:
    text = resources.files(__package__).joinpath("data").joinpath("vae.json").read_text(encoding="utf-8")
    return json.loads(text)


def network_spec(name: str) -> dict:
    """``{"class", "what", "config"}`` of a weight layout (``kl``, ``flux2``, ``wan21``, ``taesd``)."""
    spec = data()["networks"][name]
    return {"class": spec["class"], "what": spec["what"], "config": dict(spec["config"])}


def taesd_entry(name: str) -> Optional[dict]:
    """ComfyUI's VAELoader facts for a TAESD name (``scale``/``shift``, or ``unsupported``); None if unknown."""
    return data()["taesd"].get(name)


def _format(family) -> dict:
    return data()["formats"].get(get_family(family).latent.name, {})


def spatial_ratio(family) -> int:
    """How many pixels one latent cell covers, per side (ComfyUI's ``spacial_downscale_ratio``)."""
    lat = get_family(family).latent
    ratio = getattr(lat, "spacial_downscale_ratio", None)
    return int(ratio or _format(family).get("ratio") or 8)


def taesd_name(family) -> Optional[str]:
    """The TAESD that fits a family (``taesd``, ``taesdxl``, ``taef1``, ...), or None."""
    lat = get_family(family).latent
    name = getattr(lat, "taesd_decoder_name", None)
    if name is None:
        name = _format(family).get("taesd")
    if not name:
        return None
    return name[: -len("_decoder")] if name.endswith("_decoder") else name


def name_hints(family) -> tuple:
    """Words that name this family's VAE files (``sdxl``, ``ae.``, ...), lowercase."""
    fam = get_family(family)
    return tuple(_format(fam).get("hints", ())) + (fam.name.lower(),)
