"""From a checkpoint's keys to a registry family: prefix, branch, ComfyUI class, sampling variant.

The steps mirror ComfyUI's loader:
1. ``unet_prefix_from_state_dict``: the diffusion model sits under ``model.diffusion_model.``,
   ``model.model.`` or ``net.`` when more than 5 keys are there; otherwise ``model.``. We then also
   try the other prefixes that hold keys, and no prefix at all (diffusion-model-only files).
2. ``detect_unet_config``: the first branch whose marker key is present reads the config
   (``unet_config``).
3. ``model_config_from_unet_config``: the first class in ComfyUI's order whose match dict fits
   (``model_config``).
4. ``model_type(state_dict)``: the variant the file's contents imply (``model_type``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from .unet_config import find_branch
from .model_config import MODEL_CLASSES, match_class
from .state_dict import KeyIndex, KeyView
from .not_a_model import not_a_model, refuse_early
from .unet_config_ldm import IncompleteModel
from .model_type import VARIANT_RULES, Variant
from ..errors import BadFileError
from ..families import get_family

#: ComfyUI's candidate prefixes, in its order; more than 5 keys under one of them selects it.
COMFY_PREFIXES = ("model.diffusion_model.", "model.model.", "net.")
PREFIX_MIN_KEYS = 5
#: Further prefixes tried when the above find nothing; "" is a diffusion-model-only file.
OTHER_PREFIXES = ("model.", "diffusion_model.", "")
#: Components that sit beside the diffusion model in full checkpoints.
COMPANIONS = (("text encoder", ("cond_stage_model.", "conditioner.embedders.", "text_encoders.")),
              ("VAE", ("first_stage_model.", "vae.")))
_SHOWN_CONFIG = ("image_model", "audio_model", "model_type", "stable_cascade_stage", "in_channels", "in_dim",
                 "out_dim", "model_channels", "context_dim", "adm_in_channels", "transformer_depth",
                 "use_linear_in_transformer", "use_temporal_attention", "guidance_embed", "vec_in_dim", "patch_size",
                 "depth", "qk_norm", "cond_seq_dim", "c_cond")

#: What a deciding config value means in terms of keys, for the evidence.
_WHY = {("guidance_embed", True): "`guidance_in.*` present", ("guidance_embed", False): "no `guidance_in.*`",
        ("image_model", "chroma"): "`distilled_guidance_layer.*` present",
        ("out_dim", 48): "`head.head.weight` rows / 4 == 48", ("model_type", "t2v"): "no `img_emb.*`",
        ("use_linear_in_transformer", True): "`proj_in.weight` is 2-D",
        ("use_linear_in_transformer", False): "`proj_in.weight` is a 4-D conv",
        ("use_temporal_attention", True): "`time_stack.*` present"}



def _why(key: str, value) -> str:
    """``key value``, with what it means in terms of keys when that is known."""
    hashable = isinstance(value, (bool, int, float, str, type(None)))
    return f"{key} {value}" + (f": {_WHY[key, value]}" if hashable and (key, value) in _WHY else "")


@dataclass(frozen=True)
class ArchMatch:
    """What the keys of one checkpoint prove."""

    family: str
    comfy_class: str
    model_type: str
    prefix: str
    config: dict = field(compare=False)
    evidence: tuple = ()
    sampling: dict = field(default_factory=dict, compare=False)  # changes to the family's Sampling
    display_name: Optional[str] = None


def prefix_order(index: KeyIndex) -> list:
    """The prefixes to try, ComfyUI's own choice first, each with its key count."""
    counts = dict.fromkeys(COMFY_PREFIXES, 0)
    for name in index.shapes:
        for c in COMFY_PREFIXES:
            if name.startswith(c):
                counts[c] += 1
                break
    top = max(COMFY_PREFIXES, key=lambda c: counts[c])
    order = [top] if counts[top] > PREFIX_MIN_KEYS else []
    order += sorted((c for c in COMFY_PREFIXES if counts[c] and c not in order), key=lambda c: -counts[c])
    order += [p for p in OTHER_PREFIXES if p not in order]
    return order


def config_summary(config: dict) -> str:
    """The deciding config values, as ``key value, ...``."""
    return ", ".join(f"{k} {config[k]}" for k in _SHOWN_CONFIG if k in config and config[k] is not None) or "-"


def _where(index: KeyIndex, view: KeyView) -> str:
    """Where the diffusion model is, and which other components sit beside it."""
    if view.prefix:
        where = f"diffusion model under `{view.prefix}` ({len(view)} keys)"
        if len(view) <= PREFIX_MIN_KEYS:
            where += f"; only {len(view)} keys there: a partial checkpoint"
    else:
        where = f"diffusion model only, without a prefix ({len(view)} keys)"
    blob = "\n" + "\n".join(index.shapes)
    beside = [f"{what} (`{p}*`)" for what, prefixes in COMPANIONS for p in prefixes if "\n" + p in blob]
    return where + ("; beside it: " + ", ".join(beside) if beside else "")


def _classify(index: KeyIndex, view: KeyView, branch, config: dict) -> ArchMatch:
    found = f"found `{branch.marker}`: {branch.name}; {config_summary(config)}"
    mc = match_class(config, lambda k: k in index.shapes)
    if mc is None:
        raise BadFileError(f"unknown architecture: {branch.name} with {config_summary(config)} matches no "
                           "ComfyUI model class")
    if mc.family is None:
        supported = ", ".join(sorted({m.family for m in MODEL_CLASSES if m.family}))
        raise BadFileError(f"unsupported model: this is {mc.label} (ComfyUI class {mc.comfy_class}), which "
                           f"Unsampler does not support; supported: {supported}")
    matched = ", ".join(_why(k, v) for k, v in mc.match_dict().items())
    rule = VARIANT_RULES.get(mc.comfy_class)
    variant = rule(index, view, config) if rule else Variant(mc.family, get_family(mc.family).model_type)
    evidence = (_where(index, view), found, f"ComfyUI class {mc.comfy_class} (matched on {matched})") + variant.evidence
    return ArchMatch(variant.family, mc.comfy_class, variant.model_type, view.prefix, config, evidence,
                     dict(variant.sampling), variant.display_name)


def detect_architecture(index: KeyIndex) -> ArchMatch:
    """Detect the family of the diffusion model in ``index``; ``BadFileError`` when there is none."""
    refuse_early(index)
    incomplete = None
    for prefix in prefix_order(index):
        view = KeyView(index, prefix)
        if not len(view):
            continue
        branch = find_branch(view)
        if branch is None:
            continue
        try:
            config = branch.config(view)
        except IncompleteModel as e:
            incomplete = incomplete or f"incomplete model: found `{branch.marker}` ({branch.name}) but {e}"
            continue
        return _classify(index, view, branch, config)
    if incomplete:
        raise BadFileError(incomplete)
    raise not_a_model(index)
