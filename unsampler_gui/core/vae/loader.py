"""Load a VAE from a ComfyUI file, offline and strictly: ``load_vae`` and ``load_taesd``.

- ``load_vae(path)``: a ``models/vae`` file (``sdxl_vae.safetensors``, ``ae.safetensors``, ``flux2-vae``,
  ``wan_2.1_vae``, ``qwen_image_vae``, ...), a full checkpoint (its ``first_stage_model.*`` or ``vae.*``), or
  one TAESD file;
- ``load_taesd(encoder=..., decoder=...)``: ComfyUI's ``models/vae_approx`` pair (``taesdxl_encoder.pth``,
  ``taesdxl_decoder.pth``), or either one alone. Its scale and shift are ComfyUI's VAELoader values for the
  name in the file name, or for the family's TAESD when the name says nothing.

Only the VAE's own tensors are read from a file. Every one of them must be used by the network, and the
network must get every weight it has; anything else is a ``BadFileError`` that names the keys.
"""
from __future__ import annotations

import os
from typing import Optional

import torch

from ..devices import resolve_device
from ..errors import BadFileError, BadParameterError
from . import facts
from .layouts import Layout, UnsupportedVae, find_layout, to_diffusers
from .model import Vae
from .networks import build
from .weights import as_float32, open_weights


def _device(device) -> torch.device:
    if isinstance(device, torch.device):
        return device
    return resolve_device(str(device))


def _named(path: str, e: BadFileError) -> BadFileError:
    name = os.path.basename(path)
    msg = str(e)
    return type(e)(msg if msg.startswith(name) else f"{name}: {msg}")


def _read(path: str):
    """(layout, the VAE's tensors in diffusers' keys, float32) of one file."""
    wf = open_weights(path)
    layout = find_layout(wf.shapes)
    raw = wf.load(layout.keys)
    tensors = as_float32({k[len(layout.prefix):]: v for k, v in raw.items()})
    state = to_diffusers(layout, tensors)
    if layout.network == "flux2" and "bn.num_batches_tracked" not in state:
        state["bn.num_batches_tracked"] = torch.zeros((), dtype=torch.long)  # a counter some exports leave out
    return layout, state


def _ratio(layout: Layout) -> int:
    cfg = layout.config
    if layout.network == "wan21":
        return 2 ** len(cfg["temperal_downsample"])
    if layout.network == "taesd":
        return 2 ** (len(cfg["num_encoder_blocks"]) - 1)
    return 2 ** (len(cfg["block_out_channels"]) - 1) * (2 if layout.network == "flux2" else 1)


def load_vae(path, device="auto", family=None) -> Vae:
    """The VAE in a ``models/vae`` file, a full checkpoint, or a TAESD file (see ``load_taesd``)."""
    p = os.fspath(path)
    try:
        layout, state = _read(p)
    except BadFileError as e:
        raise _named(p, e) from None
    if layout.network == "taesd":
        if layout.style == "taesd_encoder":
            return load_taesd(encoder=p, family=family, device=device)
        if layout.style == "taesd_decoder":
            return load_taesd(decoder=p, family=family, device=device)
    spec = facts.network_spec(layout.network)
    try:
        net = build(spec["class"], layout.config, state, spec["class"])
    except BadFileError as e:
        raise _named(p, e) from None
    where = f"the VAE of {os.path.basename(p)}" if layout.prefix else os.path.basename(p)
    dev = _device(device)
    return Vae(network=net.to(dev), network_name=layout.network, class_name=spec["class"],
               label=f"{where} ({spec['what']}, {layout.latent_channels}-channel latents)", sources=(p,),
               latent_channels=layout.latent_channels, latent_dims=3 if layout.network == "wan21" else 2,
               spatial_ratio=_ratio(layout), can_encode=True, can_decode=True, device=dev)


def taesd_name_of(path) -> Optional[str]:
    """``taesdxl`` from ``.../taesdxl_decoder.pth`` (ComfyUI's ``<name>_encoder.*`` / ``<name>_decoder.*``)."""
    stem = os.path.basename(os.fspath(path)).lower()
    for part in ("_encoder.", "_decoder."):
        if part in stem:
            return stem.split(part, 1)[0]
    return None


def _taesd_scale(paths, family) -> tuple:
    names = {n for n in (taesd_name_of(p) for p in paths) if n and facts.taesd_entry(n)}
    if len(names) > 1:
        raise BadParameterError(f"the TAESD encoder and decoder are of different kinds ({', '.join(sorted(names))})")
    name = next(iter(names), None)
    if name is None and family is not None:
        name = facts.taesd_name(family)
    entry = facts.taesd_entry(name) if name else None
    if entry is None:
        raise BadParameterError(f"cannot tell which TAESD {os.path.basename(paths[0])} is: name it as ComfyUI does "
                                "(taesd_, taesdxl_, taesd3_ or taef1_ + decoder/encoder), or choose the model family")
    if "unsupported" in entry:
        raise UnsupportedVae(entry["unsupported"])
    return name, float(entry["scale"]), float(entry["shift"])


def load_taesd(encoder=None, decoder=None, family=None, device="auto") -> Vae:
    """A TAESD from its encoder and/or decoder file (``models/vae_approx``), as ComfyUI's VAELoader builds it."""
    paths = {part: os.fspath(p) for part, p in (("encoder", encoder), ("decoder", decoder)) if p is not None}
    if not paths:
        raise BadParameterError("a TAESD needs an encoder file, a decoder file, or both")
    state, configs = {}, []
    for part, p in paths.items():
        try:
            layout, st = _read(p)
            if layout.network != "taesd":
                raise BadFileError(f"not a TAESD {part} but {layout.describe()}")
            if layout.style not in (f"taesd_{part}", "taesd_both"):
                raise BadFileError(f"a TAESD {layout.style.split('_')[1]}, given as the {part}")
        except BadFileError as e:
            raise _named(p, e) from None
        state.update({k: v for k, v in st.items() if k.startswith(part + ".")})
        configs.append(layout.config)
    if len({c["latent_channels"] for c in configs}) > 1:
        raise BadParameterError("the TAESD encoder and decoder make latents of different channel counts")
    name, scale, shift = _taesd_scale(list(paths.values()), family)
    spec = facts.network_spec("taesd")
    first = next(iter(paths.values()))
    try:
        net = build(spec["class"], configs[0], state, f"TAESD {' and '.join(paths)}", parts=tuple(paths))
    except BadFileError as e:
        raise _named(first, e) from None
    dev = _device(device)
    files = " + ".join(os.path.basename(p) for p in paths.values())
    return Vae(network=net.to(dev), network_name="taesd", class_name=spec["class"],
               label=f"TAESD {name} ({files}), approximate", sources=tuple(paths.values()),
               latent_channels=configs[0]["latent_channels"], latent_dims=2, spatial_ratio=8,
               can_encode="encoder" in paths, can_decode="decoder" in paths, approximate=True,
               taesd_scale=scale, taesd_shift=shift, device=dev)


def fits(vae: Vae, family) -> Optional[str]:
    """None when ``vae`` makes this family's latents; otherwise why not, in one line."""
    from ..families import get_family

    fam = get_family(family)
    lat = fam.latent
    if vae.latent_channels != lat.channels or vae.latent_dims != lat.dimensions:
        kind = "video" if vae.latent_dims == 3 else "image"
        return (f"{vae.label} makes {vae.latent_channels}-channel {kind} latents; {fam.display_name} uses "
                f"{lat.channels}-channel {'video' if lat.dimensions == 3 else 'image'} latents")
    return None
