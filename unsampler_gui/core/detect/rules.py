"""From a checkpoint's keys to a registry family: prefix, branch, ComfyUI class, variant, fit.

The steps mirror ComfyUI's loader (master 783545f6):
1. ``unet_prefix_from_state_dict``: the diffusion model sits under ``model.diffusion_model.``,
   ``model.model.`` or ``net.`` when more than 5 keys are there; otherwise ``model.``. We then also
   try the other prefixes that hold keys, and no prefix at all (diffusion-model-only files).
2. ``detect_unet_config``: the first branch whose markers are present reads the config
   (``unet_config``); Wan, LTX and MiniMax H3 let ``__metadata__["config"]`` update it.
3. ``model_config_from_unet_config``: the first class in ComfyUI's order whose match dict fits
   (``model_config``).
4. ``model_type(state_dict)`` and the variant tables: which of the class's families (``model_type``).
5. Our fit checks (``fit``): the keys must fit that family exactly.
Every doubt is a refusal (``refusal``) that names the nearest families and how to go on.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Optional

from .fit import check_fit, check_partial_features, is_whole
from .model_config import NO_CLASS_LABELS, ModelClass, match_class, nearest_classes
from .model_type import VARIANT_RULES, Variant
from .not_a_model import not_a_model, refuse_early
from .refusal import refuse
from .state_dict import KeyIndex, KeyView
from .unet_config import Branch, find_branch, near_misses
from .unet_config_ldm import IncompleteModel
from ..errors import BadFileError, BadParameterError
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
                 "out_dim", "out_channels", "model_channels", "context_dim", "adm_in_channels", "transformer_depth",
                 "use_linear_in_transformer", "use_temporal_attention", "guidance_embed", "vec_in_dim",
                 "context_in_dim", "hidden_size", "dim", "cap_feat_dim", "clip_text_dim", "model_dim",
                 "visual_embed_dim", "vision_in_dim", "num_attention_heads", "vid_dim", "causal_ar",
                 "default_ref_method", "patch_size", "depth", "qk_norm", "cond_seq_dim", "c_cond")
#: The most bytes of ``__metadata__["config"]`` we parse (ComfyUI's configs are a few kB).
MAX_CONFIG_CHARS = 1 << 20

#: What a deciding config value means in terms of keys, for the evidence.
_WHY = {("guidance_embed", True): "`guidance_in.*` present", ("guidance_embed", False): "no `guidance_in.*`",
        ("image_model", "chroma"): "`distilled_guidance_layer.*` present",
        ("image_model", "flux2"): "`double_stream_modulation_img.lin.weight` present",
        ("image_model", "ltxav"): "`audio_adaln_single.linear.weight` present",
        ("image_model", "anima"): "`llm_adapter.*` present",
        ("out_dim", 48): "`head.head.weight` rows / 4 == 48", ("model_type", "t2v"): "no `img_emb.*`",
        ("model_type", "i2v"): "`img_emb.proj.0.bias` present",
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


def metadata_config(index: KeyIndex) -> Optional[dict]:
    """``json.loads(__metadata__["config"])["transformer"]`` as ComfyUI reads it, or None when absent."""
    raw = index.metadata.get("config")
    if raw is None:
        return None
    if not isinstance(raw, str) or len(raw) > MAX_CONFIG_CHARS:
        raise BadFileError("the file's __metadata__ `config` is not a JSON text of a sane size")
    try:
        doc = json.loads(raw)
    except ValueError:
        raise BadFileError("the file's __metadata__ `config` is not valid JSON (ComfyUI could not load it "
                           "either)") from None
    trans = doc.get("transformer", {}) if isinstance(doc, dict) else None
    if not isinstance(trans, dict):
        raise BadFileError("the file's __metadata__ `config` has a `transformer` entry that is not an object")
    return trans


def _apply_metadata(index: KeyIndex, branch: Branch, config: dict) -> list:
    """ComfyUI's ``dit_config.update(metadata config["transformer"])``; the evidence lines."""
    trans = metadata_config(index) if branch.reads_metadata else None
    if not trans:
        return []
    for k in ("image_model", "audio_model"):
        if k in trans and trans[k] != config.get(k):
            raise refuse(f"the keys are a {branch.name} ({k} {config.get(k)!r}) but the file's __metadata__ config "
                         f"says {k} {trans[k]!r}", kind="contradictory file")
    config.update(trans)
    shown = ", ".join(f"{k} {v!r}" for k, v in list(trans.items())[:6])
    return [f"metadata: `config` transformer sets {shown} (ComfyUI reads it for this architecture)"]


def _marker_found(view: KeyView, branch: Branch) -> str:
    names = []
    for m in branch.markers:
        if m.endswith("."):
            m = next((m + s for s in ("weight", "scale") if view.has(m + s)), m + "*")
        names.append(f"`{m}`")
    return " + ".join(names)


def _nearest_text(config: dict) -> str:
    parts = []
    for mc, diff in nearest_classes(config):
        name = mc.families[0] if mc.families else f"{mc.comfy_class} ({mc.label}, unsupported)"
        parts.append(f"{name} ({'; '.join(diff)})")
    return ", ".join(parts)


def _supported_example(mc_list) -> Optional[str]:
    return next((mc.families[0] for mc, _ in mc_list if mc.families), None)


def _no_class(branch: Branch, config: dict) -> BadFileError:
    label = NO_CLASS_LABELS.get(config.get("image_model"))
    if label:
        return refuse(f"this is {label}, which ComfyUI does not load as a checkpoint", kind="unsupported model")
    near = nearest_classes(config)
    return refuse(f"{branch.name} with {config_summary(config)} matches no ComfyUI model class",
                  nearest=_nearest_text(config), example=_supported_example(near), kind="unknown architecture")


def _unsupported(mc: ModelClass) -> BadFileError:
    return refuse(f"this is {mc.label} (ComfyUI class {mc.comfy_class}), which no Unsampler family schedules",
                  kind="unsupported model")


def _variant(index: KeyIndex, view: KeyView, mc: ModelClass, config: dict, whole: bool) -> Variant:
    rule = VARIANT_RULES.get(mc.comfy_class)
    if rule is not None:
        return rule(index, view, config, whole=whole)
    try:
        fam = get_family(mc.families[0])
    except BadParameterError:
        raise refuse(f"this is {mc.label} (ComfyUI class {mc.comfy_class}), but this Unsampler's registry has no "
                     f"family {mc.families[0]!r}", kind="unsupported model") from None
    return Variant(fam.name, fam.model_type)


def _classify(index: KeyIndex, view: KeyView, branch: Branch, config: dict, meta_evidence: list) -> ArchMatch:
    found = f"found {_marker_found(view, branch)}: {branch.name}; {config_summary(config)}"
    mc = match_class(config, lambda k: k in index.shapes, view.prefix)
    if mc is None:
        raise _no_class(branch, config)
    if not mc.families:
        check_partial_features(view, branch, f"{mc.label} (ComfyUI class {mc.comfy_class})")
        raise _unsupported(mc)
    matched = ", ".join(_why(k, v) for k, v in mc.match_dict().items())
    variant = _variant(index, view, mc, config, is_whole(view, branch))
    family = get_family(variant.family)
    label = f"{variant.family} (ComfyUI class {mc.comfy_class})"
    fit = check_fit(view, branch, config, family, label)
    evidence = (_where(index, view), found, *meta_evidence, f"ComfyUI class {mc.comfy_class} (matched on {matched})",
                *variant.evidence, *fit)
    return ArchMatch(variant.family, mc.comfy_class, variant.model_type, view.prefix, config, evidence,
                     dict(variant.sampling), variant.display_name)


def _near_miss_error(index: KeyIndex) -> Optional[BadFileError]:
    """A refusal for keys that hold part of what one of ComfyUI's multi-key rules needs."""
    for prefix in prefix_order(index):
        view = KeyView(index, prefix)
        if not len(view):
            continue
        misses = near_misses(view)
        if misses:
            branch, have, missing = misses[0]
            return refuse(f"found {', '.join(f'`{k}`' for k in have)} ({branch.name}) but not "
                          f"{', '.join(f'`{k}`' for k in missing)}, which ComfyUI's rule also needs",
                          kind="incomplete model")
    return None


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
            incomplete = incomplete or refuse(f"found {_marker_found(view, branch)} ({branch.name}) but {e}",
                                              kind="incomplete model")
            continue
        if not config:
            raise refuse(f"{branch.name}: ComfyUI reads no model configuration from these keys",
                         kind="unknown architecture")
        meta_evidence = _apply_metadata(index, branch, config)
        return _classify(index, view, branch, config, meta_evidence)
    if incomplete:
        raise incomplete
    raise _near_miss_error(index) or not_a_model(index)
