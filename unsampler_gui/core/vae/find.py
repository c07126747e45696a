"""Which VAE to use for a family, in the order the issue asks: the checkpoint's own, a ``models/vae`` file, a
TAESD from ``models/vae_approx``. Everything here reads names and headers only; nothing is loaded.

A ``models/vae`` file fits a family when its layout makes latents of the family's channel count and rank
(``layouts.find_layout``). SD1.x and SDXL VAEs have the same layout, so files are ranked by the words in their
names (``sdxl``, ``vae-ft-mse``, ``ae.``, ...; ``facts.name_hints``); all fitting files are offered.
TAESD files are found by ComfyUI's names, ``<name>_encoder.*`` and ``<name>_decoder.*``, ``name`` being the
family's TAESD (``taesd``, ``taesdxl``, ``taesd3``, ``taef1``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

from .. import comfy_paths
from ..errors import BadFileError, BadParameterError
from ..families import get_family
from . import facts
from .layouts import find_layout
from .weights import WEIGHT_EXTENSIONS, open_weights


@dataclass(frozen=True)
class VaeChoice:
    kind: str  # "checkpoint", "file" or "taesd"
    label: str
    path: Optional[str] = None  # checkpoint / file
    encoder: Optional[str] = None  # taesd
    decoder: Optional[str] = None  # taesd

    @property
    def approximate(self) -> bool:
        return self.kind == "taesd"

    @property
    def can_encode(self) -> bool:
        return self.kind != "taesd" or self.encoder is not None

    @property
    def can_decode(self) -> bool:
        return self.kind != "taesd" or self.decoder is not None

    def load(self, family=None, device="auto"):
        from .loader import load_taesd, load_vae

        if self.kind == "taesd":
            return load_taesd(encoder=self.encoder, decoder=self.decoder, family=family, device=device)
        return load_vae(self.path, family=family, device=device)


def layout_fits(path, family) -> Optional[str]:
    """None when the file's VAE makes the family's latents, else why not (headers only)."""
    fam = get_family(family)
    try:
        layout = find_layout(open_weights(path).shapes)
    except BadFileError as e:
        return str(e)
    dims = 3 if layout.network == "wan21" else 2
    if layout.network == "taesd":
        return "a TAESD file (it belongs in models/vae_approx)"
    if layout.latent_channels != fam.latent.channels or dims != fam.latent.dimensions:
        return (f"its VAE makes {layout.latent_channels}-channel {'video' if dims == 3 else 'image'} latents; "
                f"{fam.display_name} needs {fam.latent.channels}-channel ones")
    return None


def checkpoint_vae(path, family) -> Optional[VaeChoice]:
    """The VAE a full checkpoint carries (``first_stage_model.*`` / ``vae.*``), if it fits the family."""
    try:
        layout = find_layout(open_weights(path).shapes)
    except BadFileError:
        return None
    if not layout.prefix or layout_fits(path, family) is not None:
        return None
    return VaeChoice("checkpoint", f"the VAE inside {os.path.basename(os.fspath(path))}", path=os.fspath(path))


def _rank(name: str, hints: tuple) -> int:
    low = name.lower()
    return 0 if any(h in low for h in hints) else 1


def folder_vaes(comfy_root, family) -> tuple:
    """``([VaeChoice], [notes])``: the ``models/vae`` files (and extra_model_paths.yaml's) that fit the family."""
    fam = get_family(family)
    hints = facts.name_hints(fam)
    found, notes = [], []
    for name, path in comfy_paths.list_model_files(comfy_root, "vae", WEIGHT_EXTENSIONS):
        why = layout_fits(path, fam)
        if why is None:
            found.append((_rank(name, hints), name, VaeChoice("file", f"models/vae/{name}", path=str(path))))
        else:
            notes.append(f"models/vae/{name}: {why}")
    return [c for _, _, c in sorted(found, key=lambda t: (t[0], t[1]))], notes


def taesd_choice(comfy_root, family) -> Optional[VaeChoice]:
    """The family's TAESD pair (or half of it) in ``models/vae_approx``."""
    name = facts.taesd_name(family)
    entry = facts.taesd_entry(name) if name else None
    if entry is None or "unsupported" in entry:
        return None
    files = comfy_paths.list_model_files(comfy_root, "vae_approx", WEIGHT_EXTENSIONS)
    enc = next((str(p) for n, p in files if os.path.basename(n).lower().startswith(f"{name}_encoder.")), None)
    dec = next((str(p) for n, p in files if os.path.basename(n).lower().startswith(f"{name}_decoder.")), None)
    if enc is None and dec is None:
        return None
    parts = " + ".join(os.path.basename(p) for p in (enc, dec) if p)
    return VaeChoice("taesd", f"TAESD {name} (models/vae_approx/{parts}), approximate", encoder=enc, decoder=dec)


def _diffusers_folder_vae(folder) -> Optional[str]:
    """A diffusers pipeline folder's ``vae/diffusion_pytorch_model.safetensors``, if it has one."""
    p = os.fspath(folder)
    if not os.path.isdir(p):
        return None
    for name in ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"):
        candidate = os.path.join(p, "vae", name)
        if os.path.isfile(candidate):
            return candidate
    return None


def user_vae(path) -> VaeChoice:
    """A VAE file the user chose."""
    p = os.fspath(path)
    return VaeChoice("file", os.path.basename(p), path=p)


def vae_choices(family, checkpoint=None, comfy_root=None, user_file=None, insist: bool = False) -> tuple:
    """``([VaeChoice], [notes])`` in the order to try: the checkpoint's VAE (a diffusers folder's ``vae/``),
    ``user_file`` (a VAE file the user chose) when it fits the family, ``models/vae`` files, TAESD. With
    ``insist`` (the user chose it just now) ``user_file`` is offered even when its header says it does not
    fit, so that loading it says why."""
    fam = get_family(family)
    out, notes = [], []
    mine = user_vae(user_file) if user_file else None
    folder_vae = _diffusers_folder_vae(checkpoint) if checkpoint is not None else None
    if folder_vae is not None:
        why = layout_fits(folder_vae, fam)
        if why is None:
            out.append(VaeChoice("checkpoint", f"the VAE of {os.path.basename(os.path.normpath(checkpoint))}",
                                 path=folder_vae))
        else:
            notes.append(f"{folder_vae}: {why}")
    elif checkpoint is not None and os.path.isfile(os.fspath(checkpoint)):
        own = checkpoint_vae(checkpoint, fam)
        if own is not None:
            out.append(own)
        else:
            notes.append(f"{os.path.basename(os.fspath(checkpoint))} holds no VAE for {fam.display_name}")
    if mine is not None:
        why = None if insist else layout_fits(mine.path, fam)
        if why is None:
            out.append(mine)
        else:
            notes.append(f"{mine.label}: {why}")
    if comfy_root:
        try:
            files, why = folder_vaes(comfy_root, fam)
            out += [c for c in files if mine is None or c.path != mine.path]
            notes += why
            tae = taesd_choice(comfy_root, fam)
            if tae is not None:
                out.append(tae)
        except BadParameterError as e:
            notes.append(str(e))
    return out, notes


def where_a_vae_goes(family, comfy_root=None) -> str:
    """The one-line advice for a family with no VAE found."""
    fam = get_family(family)
    root = str(comfy_root) if comfy_root else "<ComfyUI>"
    tae = facts.taesd_name(fam)
    taesd = f", or TAESD's {tae}_encoder.pth in {os.path.join(root, 'models', 'vae_approx')}" if (
        tae and facts.taesd_entry(tae) and "unsupported" not in facts.taesd_entry(tae)) else ""
    return (f"for the real {fam.display_name} latent, open a checkpoint that holds its VAE, choose a VAE file, or put "
            f"one in {os.path.join(root, 'models', 'vae')}{taesd}")
