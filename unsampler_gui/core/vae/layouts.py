"""Which VAE a weight file holds, from its key names and shapes, and its keys in diffusers' layout.

The checks follow ComfyUI's ``comfy.sd.VAE.__init__`` (the key that marks each kind) and its checkpoint
loader (a full checkpoint keeps its VAE under ``first_stage_model.``, FLUX-style ones under ``vae.``):

- ``decoder.middle.0.residual.0.gamma``: Wan's video VAE (Wan 2.1 and Qwen-Image; Wan 2.2 adds
  ``decoder.upsamples.0.upsamples.0.residual.2.weight``);
- ``decoder.conv_in.weight`` (4-D): an LDM AutoencoderKL (SD1.x, SDXL, SD3, Flux.1); with ``bn.running_mean``
  FLUX.2's (latent batch norm over 2x2 patches);
- ``decoder.up_blocks.0.resnets.0.norm1.weight``: an AutoencoderKL already in diffusers' layout;
- TAESD files from ``models/vae_approx``: a ``torch.nn.Sequential``'s ``<index>.<...>`` keys; the decoder's
  first layer (a clamp) has no weights, so its keys start at ``1.``.

Sizes (channels per level, blocks per level, latent channels) come from the shapes, the rest from the
shipped configs (``facts.network_spec``). Key renaming uses diffusers' own single-file converters
(``convert_ldm_vae_checkpoint``, ``convert_wan_vae_to_diffusers``), pure functions that need no hub.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import BadFileError
from . import facts

#: Where full checkpoints keep their VAE (ComfyUI's vae_key_prefix values for image models).
CHECKPOINT_PREFIXES = ("first_stage_model.", "vae.")
#: Training-only parts saved beside a VAE in some full checkpoints (the GAN loss and LPIPS networks).
TRAINING_ONLY = ("loss.",)


class UnsupportedVae(BadFileError):
    """A VAE that ComfyUI knows but Unsampler cannot run (no diffusers network for it)."""


@dataclass(frozen=True)
class Layout:
    network: str  # facts network name: kl, flux2, wan21, taesd
    style: str  # ldm, diffusers, wan, taesd_encoder, taesd_decoder, taesd_both
    prefix: str  # the VAE's key prefix in the file ("" for a models/vae file)
    keys: tuple  # the file's keys that make the VAE (with prefix)
    config: dict = field(compare=False)
    latent_channels: int = 4  # channels of the raw latent (FLUX.2: 128, after 2x2 patching)
    ignored: tuple = ()  # keys under the prefix that are not part of the VAE (training-only)

    def describe(self) -> str:
        return facts.network_spec(self.network)["what"]


def _vae_keys(shapes: dict) -> tuple:
    """(prefix, the keys of the VAE): a full checkpoint's ``first_stage_model.`` / ``vae.`` part, or all keys."""
    for prefix in CHECKPOINT_PREFIXES:
        keys = [k for k in shapes if k.startswith(prefix)]
        if any(k.startswith(prefix + "decoder.") or k.startswith(prefix + "encoder.") for k in keys):
            return prefix, keys
    return "", list(shapes)


def _count(stripped: dict, pattern: str) -> int:
    rx = re.compile(pattern)
    found = {int(m.group(1)) for k in stripped for m in [rx.match(k)] if m}
    return max(found) + 1 if found else 0


def _kl_config(s: dict, network: str, ldm: bool) -> dict:
    cfg = facts.network_spec(network)["config"]
    down, res = (r"encoder\.down\.(\d+)\.", "encoder.down.{}.block.0.conv1.weight") if ldm else (
        r"encoder\.down_blocks\.(\d+)\.", "encoder.down_blocks.{}.resnets.0.conv1.weight")
    n = _count(s, down)
    if n == 0 or any(res.format(i) not in s for i in range(n)):
        raise BadFileError("an AutoencoderKL without its encoder blocks (incomplete file)")
    layers = _count(s, r"encoder\.down\.0\.block\.(\d+)\." if ldm else r"encoder\.down_blocks\.0\.resnets\.(\d+)\.")
    cfg.update(
        block_out_channels=[int(s[res.format(i)][0]) for i in range(n)], layers_per_block=layers,
        down_block_types=["DownEncoderBlock2D"] * n, up_block_types=["UpDecoderBlock2D"] * n,
        latent_channels=int(s["decoder.conv_in.weight"][1]),
        use_quant_conv="quant_conv.weight" in s, use_post_quant_conv="post_quant_conv.weight" in s,
        mid_block_add_attention=("encoder.mid.attn_1.q.weight" if ldm else
                                 "encoder.mid_block.attentions.0.to_q.weight") in s)
    return cfg


def _wan_config(s: dict) -> dict:
    cfg = facts.network_spec("wan21")["config"]
    for k in ("encoder.conv1.weight", "decoder.head.2.weight", "conv2.weight"):
        if k not in s:
            raise BadFileError(f"a Wan VAE without {k} (incomplete file)")
    cfg.update(base_dim=int(s["encoder.conv1.weight"][0]), z_dim=int(s["conv2.weight"][0]),
               in_channels=int(s["encoder.conv1.weight"][1]), out_channels=int(s["decoder.head.2.weight"][0]))
    return cfg


def _sequential_index(key: str):
    head = key.split(".", 1)[0]
    return int(head) if head.isdigit() else None


def _taesd_config(s: dict, style: str) -> dict:
    cfg = facts.network_spec("taesd")["config"]
    if any(".pool." in k for k in s):
        raise UnsupportedVae(facts.taesd_entry("taef2")["unsupported"])
    if style == "taesd_decoder":
        first = s["1.weight"]
        cfg["latent_channels"], width = int(first[1]), int(first[0])
    elif style == "taesd_encoder":
        last = max(i for i in (_sequential_index(k) for k in s) if i is not None)
        if f"{last}.weight" not in s or "0.weight" not in s:
            raise BadFileError("a TAESD encoder without its first or last convolution (incomplete file)")
        cfg["latent_channels"], width = int(s[f"{last}.weight"][0]), int(s["0.weight"][0])
    else:
        cfg["latent_channels"], width = int(s["decoder.layers.0.weight"][1]), int(s["decoder.layers.0.weight"][0])
    cfg["encoder_block_out_channels"] = cfg["decoder_block_out_channels"] = [width] * 4
    return cfg


def _unsupported(s: dict) -> None:
    if "decoder.upsamples.0.upsamples.0.residual.2.weight" in s:
        raise UnsupportedVae("a Wan 2.2 VAE (48 channels): diffusers has no single-file converter for it yet")
    if "decoder.mid.block_1.mix_factor" in s:
        raise UnsupportedVae("a video (temporal) decoder VAE such as SVD's: not supported for pictures")
    conv_in = s.get("decoder.conv_in.weight")
    if conv_in is not None and (len(conv_in) != 4 or conv_in[1] == 64):
        raise UnsupportedVae(f"a VAE whose decoder input is {list(conv_in)} (HunyuanImage or a video VAE): "
                             "not supported")


def _classify(s: dict):
    """(network, style) of a VAE state dict with its prefix removed."""
    _unsupported(s)
    if "decoder.middle.0.residual.0.gamma" in s:
        return "wan21", "wan"
    if "decoder.conv_in.weight" in s and "encoder.down.0.block.0.conv1.weight" in s:
        return ("flux2" if "bn.running_mean" in s else "kl"), "ldm"
    if "decoder.up_blocks.0.resnets.0.norm1.weight" in s:
        return ("flux2" if "bn.running_mean" in s else "kl"), "diffusers"
    if "decoder.layers.0.weight" in s and "encoder.layers.0.weight" in s:
        return "taesd", "taesd_both"
    indices = [_sequential_index(k) for k in s]
    if s and all(i is not None for i in indices):
        if "1.weight" in s and "0.weight" not in s:
            return "taesd", "taesd_decoder"
        if "0.weight" in s:
            return "taesd", "taesd_encoder"
    return None, None


def _top_prefixes(keys, limit: int = 4) -> str:
    seen = []
    for k in keys:
        head = k.split(".", 1)[0]
        if head not in seen:
            seen.append(head)
        if len(seen) > limit:
            break
    return ", ".join(seen[:limit]) + (", ..." if len(seen) > limit else "")


def find_layout(shapes: dict) -> Layout:
    """The VAE in a weight file, from its names and shapes only (nothing is read)."""
    prefix, keys = _vae_keys(shapes)
    ignored = tuple(k for k in keys if k[len(prefix):].startswith(TRAINING_ONLY))
    keys = [k for k in keys if k not in ignored]
    s = {k[len(prefix):]: tuple(shapes[k]) for k in keys}
    network, style = _classify(s)
    if network is None:
        raise BadFileError(f"not a VAE that Unsampler can load (its keys start with {_top_prefixes(shapes)}); "
                           "expected an AutoencoderKL, a Wan VAE, or a TAESD encoder/decoder")
    if network == "wan21":
        cfg = _wan_config(s)
        latent = cfg["z_dim"]
    elif network == "taesd":
        cfg = _taesd_config(s, style)
        latent = cfg["latent_channels"]
    else:
        cfg = _kl_config(s, network, style == "ldm")
        latent = cfg["latent_channels"] * (4 if network == "flux2" else 1)
    return Layout(network, style, prefix, tuple(keys), cfg, int(latent), ignored)


def _ldm_to_diffusers(tensors: dict, layout: Layout) -> dict:
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    out = convert_ldm_vae_checkpoint(dict(tensors), layout.config)
    if layout.network == "flux2":
        out.update({k: v for k, v in tensors.items() if k.startswith("bn.")})
    return out


def _taesd_to_diffusers(tensors: dict, style: str) -> dict:
    if style == "taesd_encoder":
        return {f"encoder.layers.{k}": v for k, v in tensors.items()}
    if style == "taesd_decoder":  # ComfyUI's Decoder starts with a weightless Clamp; diffusers' DecoderTiny does not
        out = {}
        for k, v in tensors.items():
            i, rest = k.split(".", 1)
            if int(i) < 1:
                raise BadFileError(f"a TAESD decoder with weights in its clamp layer ({k})")
            out[f"decoder.layers.{int(i) - 1}.{rest}"] = v
        return out
    return dict(tensors)


def to_diffusers(layout: Layout, tensors: dict) -> dict:
    """The VAE's tensors (keys without the prefix) renamed to the diffusers network's state dict keys.

    Every tensor given must come out (the converters drop what they do not know); a dropped one is an error.
    """
    if layout.style == "ldm":
        from . import networks

        networks.import_diffusers()
        out = _ldm_to_diffusers(tensors, layout)
    elif layout.style == "wan":
        from . import networks

        networks.import_diffusers()
        from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

        out = convert_wan_vae_to_diffusers(dict(tensors))
    elif layout.style.startswith("taesd"):
        out = _taesd_to_diffusers(tensors, layout.style)
    else:
        out = dict(tensors)
    kept = {v.data_ptr() for v in out.values()}
    dropped = [k for k, v in tensors.items() if v.numel() and v.data_ptr() not in kept]
    if dropped:
        raise BadFileError(f"{len(dropped)} key(s) of the VAE do not belong to {layout.describe()} "
                           f"(e.g. {', '.join(dropped[:3])})")
    return out
