"""Files that are not diffusion models: LoRAs, VAEs, text encoders, upscalers, ControlNets, ...

When no diffusion-model branch matches, ``not_a_model`` names what the file most likely is, from
its key names alone, so the user gets "looks like a VAE (`encoder.*`/`decoder.*` keys)" instead of
a wrong guess. LoRAs and ControlNets are also checked *before* detection (``refuse_early``): a
ControlNet carries a UNet's ``input_blocks.*`` and must not be taken for one.
"""
from __future__ import annotations

import re
from typing import Optional

from .state_dict import KeyIndex, top_level_prefixes
from ..errors import BadFileError

_LORA = re.compile(r"(^lora_(unet|te\d?|transformer)_)|(\.lora_(up|down|A|B)\.)|(\.lora\.(up|down)\.)|"
                   r"(\.(hada|lokr)_w\d)|(\.lora_(linear_layer|mid)\.)|(\.alpha$)|(\.dora_scale$)")
#: Cheap substring tests that every LoRA key pattern above contains at least one of.
_LORA_WORDS = ("lora", "hada_w", "lokr_w", ".alpha\n", ".dora_scale\n")


class Names(list):
    """Tensor names, with one newline-joined string for fast prefix and substring tests."""

    def __init__(self, names):
        super().__init__(names)
        self.blob = "\n" + "\n".join(self) + "\n"


def _stems(names: Names, stems) -> Optional[str]:
    """The first of ``stems`` that some name starts with (or contains, for stems starting with '.')."""
    for stem in stems:
        if (stem if stem.startswith(".") else "\n" + stem) in names.blob:
            return stem
    return None


def _lora_hits(names: Names) -> list:
    blob = names.blob
    maybe = any(w in blob for w in _LORA_WORDS)
    return [n for n in names if _LORA.search(n)] if maybe else []


def _lora(names: Names) -> Optional[str]:
    hits = _lora_hits(names)
    if not hits:
        return None
    if hits[0].startswith("lora_"):
        return "`" + hits[0].split("_", 2)[0] + "_" + hits[0].split("_", 2)[1] + "_*` keys"
    return f"LoRA weight keys like `{hits[0]}`"


def _controlnet(names) -> Optional[str]:
    stem = _stems(names, ("control_model.", "input_hint_block.", "zero_convs.", "controlnet_", "middle_block_out.",
                          ".input_hint_block.", ".zero_convs."))
    return f"`{stem.strip('.')}*` keys" if stem else None


def _text_encoder(names) -> Optional[str]:
    stem = _stems(names, ("text_model.", "transformer.text_model.", "cond_stage_model.", "conditioner.embedders.",
                          "text_encoders.", "encoder.block.", "shared.weight", "model.layers.", "model.embed_tokens.",
                          "transformer.resblocks.", "text_projection", "logit_scale", "token_embedding.",
                          "model.language_model.", "language_model.", "embed_tokens."))
    return f"`{stem}*` keys" if stem else None


def _vae(names) -> Optional[str]:
    enc = _stems(names, ("encoder.", "first_stage_model.encoder.", "vae.encoder."))
    dec = _stems(names, ("decoder.", "first_stage_model.decoder.", "vae.decoder."))
    if enc or dec:
        return "`encoder.*`/`decoder.*` keys"
    stem = _stems(names, ("first_stage_model.", "vae.", "post_quant_conv.", "quant_conv."))
    return f"`{stem}*` keys" if stem else None


def _upscaler(names) -> Optional[str]:
    stem = _stems(names, ("conv_first.", "RRDB_trunk.", "body.0.rdb", "conv_body.", "upconv1.",
                          "layers.0.residual_group.", "model.1.sub."))
    if stem is None and "\nmodel.0.weight\n" in names.blob:
        stem = "model.0."
    return f"ESRGAN-style keys like `{stem}*`" if stem else None


def _other_kinds(names) -> Optional[tuple]:
    stem = _stems(names, ("ip_adapter.", "image_proj."))
    if stem:
        return "an IP-Adapter", f"`{stem}*` keys"
    stem = _stems(names, ("vision_model.", "visual.transformer."))
    if stem:
        return "a CLIP vision encoder", f"`{stem}*` keys"
    stem = _stems(names, ("emb_params", "string_to_param.", "clip_l", "clip_g"))
    if stem and len(names) <= 4:
        return "a textual-inversion embedding", f"`{stem}` key"
    stem = _stems(names, ("adapter.body.", "body.0.block1."))
    if stem:
        return "a T2I-Adapter", f"`{stem}*` keys"
    return None


#: What a non-model file looks like, checked in this order (text encoders before VAEs: T5 has `encoder.*`).
_KINDS = (
    ("a LoRA", _lora),
    ("a ControlNet", _controlnet),
    ("a text encoder", _text_encoder),
    ("a VAE", _vae),
    ("an upscaler", _upscaler),
)


def _refusal(kind: str, why: str, hint: str = "") -> BadFileError:
    return BadFileError(f"not a diffusion model checkpoint: looks like {kind} ({why}){hint}")


def refuse_early(index: KeyIndex) -> None:
    """Refuse LoRAs (most keys are LoRA weights) and ControlNets before any architecture is guessed."""
    names = Names(index.shapes)
    if len(_lora_hits(names)) * 2 > len(names):
        raise _refusal("a LoRA", _lora(names))
    why = _controlnet(names)
    if why:
        raise _refusal("a ControlNet", why)


def not_a_model(index: KeyIndex) -> BadFileError:
    """The error for a file in which no diffusion model was found: what it looks like, or its prefixes."""
    names = Names(index.shapes)
    for kind, test in _KINDS:
        why = test(names)
        if why:
            return _refusal(kind, why)
    other = _other_kinds(names)
    if other:
        return _refusal(*other)
    layout = _stems(names, ("down_blocks.", "single_transformer_blocks.", "transformer_blocks.0.attn.add_q_proj."))
    if layout:
        return BadFileError(f"diffusers-layout weights (`{layout}*` keys): open the diffusers folder (with its "
                            "model_index.json or config.json) instead of the weights file")
    arch = index.metadata.get("modelspec.architecture")
    hint = f"; its metadata says modelspec.architecture={arch!r}" if arch else ""
    if not names:
        return BadFileError(f"not a diffusion model checkpoint: the file holds no tensors{hint}")
    seen = ", ".join(top_level_prefixes(names))
    return BadFileError(f"unknown architecture: no known diffusion model keys (top-level key prefixes: {seen}){hint}")
