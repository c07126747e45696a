"""Diffusers model folders: the family from ``model_index.json`` and the component configs.

Only JSON is read: ``model_index.json`` names the pipeline class, ``unet/config.json`` or
``transformer/config.json`` separates the variants (SD1 vs SD2 by cross-attention width, Flux dev vs
schnell by ``guidance_embeds``, Wan 2.1 vs 2.2 by 48 output channels, ...), and
``scheduler/scheduler_config.json`` gives the prediction type and the flow shift. A folder holding
just one component (a ``config.json`` with a UNet or transformer class) works too.
"""
from __future__ import annotations

import json
import os
from typing import Callable, Optional

from .rules import ArchMatch
from ..errors import BadFileError
from ..families import get_family

MAX_JSON_BYTES = 4 << 20


def read_json(path: str) -> Optional[dict]:
    """A small JSON object from disk, None when the file is absent; ``BadFileError`` when it is corrupt."""
    if not os.path.isfile(path):
        return None
    try:
        if os.path.getsize(path) > MAX_JSON_BYTES:
            raise BadFileError(f"{path}: too large for a config file")
        with open(path, "rb") as f:
            obj = json.loads(f.read().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise BadFileError(f"{path}: corrupt JSON") from None
    except OSError as e:
        raise BadFileError(f"{path}: cannot read ({e.strerror or e})") from None
    if not isinstance(obj, dict):
        raise BadFileError(f"{path}: not a JSON object")
    return obj


class Unsupported(Exception):
    """The pipeline is known, but its model is not a family Unsampler supports."""


def _unet_family(cfg: dict) -> str:
    """SD1/SD2/SDXL/Refiner from a UNet2DConditionModel config."""
    ctx = cfg.get("cross_attention_dim")
    ctx = ctx[0] if isinstance(ctx, list) and ctx else ctx
    in_ch = cfg.get("in_channels", 4)
    if in_ch == 8:
        raise Unsupported("an InstructPix2Pix UNet (8 input channels)")
    family = {768: "SD15", 1024: "SD20", 2048: "SDXL", 1280: "SDXLRefiner"}.get(ctx)
    if family is None:
        raise Unsupported(f"a UNet with cross_attention_dim {ctx}, which matches no supported family")
    return family


def _sd3(cfg: dict) -> str:
    large = get_family("SD35_large").detection["unet_config"]["depth"]
    return "SD35_large" if cfg.get("num_layers") == large else "SD3"


def _flux(cfg: dict) -> str:
    if cfg.get("in_channels") == 384:
        raise Unsupported("Flux Fill (inpainting, ComfyUI class FluxInpaint)")
    return "Flux" if cfg.get("guidance_embeds", True) else "FluxSchnell"


def _wan(cfg: dict) -> str:
    if cfg.get("image_dim") or cfg.get("added_kv_proj_dim"):
        raise Unsupported("Wan image-to-video (WAN21_I2V)")
    return "WAN22_T2V" if cfg.get("out_channels") == 48 else "WAN21_T2V"


def _fixed(family: str) -> Callable[[dict], str]:
    return lambda cfg: family


def _unsupported(what: str) -> Callable[[dict], str]:
    def resolve(cfg: dict) -> str:
        raise Unsupported(what)
    return resolve


_SD = ("unet", _unet_family)
_SD3 = ("transformer", _sd3)
_FLUX = ("transformer", _flux)
#: pipeline class -> (component folder, family resolver from that component's config.json)
PIPELINES = {
    "StableDiffusionPipeline": _SD, "StableDiffusionImg2ImgPipeline": _SD, "StableDiffusionInpaintPipeline": _SD,
    "StableDiffusionXLPipeline": _SD, "StableDiffusionXLImg2ImgPipeline": _SD,
    "StableDiffusionXLInpaintPipeline": _SD,
    "StableVideoDiffusionPipeline": ("unet", _fixed("SVD_img2vid")),
    "StableDiffusion3Pipeline": _SD3, "StableDiffusion3Img2ImgPipeline": _SD3, "StableDiffusion3InpaintPipeline": _SD3,
    "FluxPipeline": _FLUX, "FluxImg2ImgPipeline": _FLUX, "FluxInpaintPipeline": _FLUX, "FluxKontextPipeline": _FLUX,
    "FluxFillPipeline": ("transformer", _unsupported("Flux Fill (inpainting, ComfyUI class FluxInpaint)")),
    "ChromaPipeline": ("transformer", _fixed("Chroma")),
    "AuraFlowPipeline": ("transformer", _fixed("AuraFlow")),
    "StableCascadePriorPipeline": ("prior", _fixed("Stable_Cascade_C")),
    "StableCascadeDecoderPipeline": ("decoder", _unsupported("Stable Cascade stage B (the decoder)")),
    "HunyuanVideoPipeline": ("transformer", _fixed("HunyuanVideo")),
    "HunyuanVideoImageToVideoPipeline": ("transformer", _unsupported("HunyuanVideo image-to-video")),
    "WanPipeline": ("transformer", _wan), "WanVideoToVideoPipeline": ("transformer", _wan),
    "WanImageToVideoPipeline": ("transformer", _unsupported("Wan image-to-video (WAN21_I2V)")),
    "WanVACEPipeline": ("transformer", _unsupported("Wan VACE")),
    "LTXPipeline": ("transformer", _fixed("LTXV")), "LTXImageToVideoPipeline": ("transformer", _fixed("LTXV")),
    "LTXConditionPipeline": ("transformer", _fixed("LTXV")),
    "MochiPipeline": ("transformer", _fixed("GenmoMochi")),
    "Lumina2Pipeline": ("transformer", _fixed("Lumina2")),
    "Lumina2Text2ImgPipeline": ("transformer", _fixed("Lumina2")),
    "HiDreamImagePipeline": ("transformer", _fixed("HiDream")),
    "QwenImagePipeline": ("transformer", _fixed("QwenImage")),
    "QwenImageImg2ImgPipeline": ("transformer", _fixed("QwenImage")),
    "QwenImageEditPipeline": ("transformer", _fixed("QwenImage")),
}
#: a lone component folder: its config.json class -> the pipeline it belongs to
COMPONENTS = {
    "UNet2DConditionModel": "StableDiffusionPipeline",
    "UNetSpatioTemporalConditionModel": "StableVideoDiffusionPipeline",
    "SD3Transformer2DModel": "StableDiffusion3Pipeline", "FluxTransformer2DModel": "FluxPipeline",
    "ChromaTransformer2DModel": "ChromaPipeline", "AuraFlowTransformer2DModel": "AuraFlowPipeline",
    "StableCascadeUNet": "StableCascadePriorPipeline", "HunyuanVideoTransformer3DModel": "HunyuanVideoPipeline",
    "WanTransformer3DModel": "WanPipeline", "LTXVideoTransformer3DModel": "LTXPipeline",
    "MochiTransformer3DModel": "MochiPipeline", "Lumina2Transformer2DModel": "Lumina2Pipeline",
    "HiDreamImageTransformer2DModel": "HiDreamImagePipeline", "QwenImageTransformer2DModel": "QwenImagePipeline",
}
_PREDICTIONS = {"epsilon": "EPS", "v_prediction": "V_PREDICTION"}


def _pipeline_class(folder: str) -> tuple:
    """(pipeline class, component config dict or None, evidence) of a diffusers folder."""
    index = read_json(os.path.join(folder, "model_index.json"))
    if index is not None:
        cls = index.get("_class_name")
        if cls not in PIPELINES:
            raise BadFileError(f"{folder}: diffusers pipeline {cls!r} is not a supported model family")
        component = PIPELINES[cls][0]
        cfg = read_json(os.path.join(folder, component, "config.json")) or {}
        return cls, cfg, [f"model_index.json: _class_name {cls}"], folder
    cfg = read_json(os.path.join(folder, "config.json"))
    if cfg is None:
        raise BadFileError(f"{folder}: not a diffusers folder (no model_index.json or config.json)")
    cls = COMPONENTS.get(cfg.get("_class_name"))
    if cls is None:
        raise BadFileError(f"{folder}: config.json class {cfg.get('_class_name')!r} is not a diffusion model "
                           "Unsampler knows")
    return cls, cfg, [f"config.json: _class_name {cfg.get('_class_name')} (a lone component)"], os.path.dirname(folder)


def _scheduler(root: str, family: str, evidence: list) -> tuple:
    """Family and sampling changes implied by scheduler_config.json (prediction type, zsnr, shift)."""
    sched = read_json(os.path.join(root, "scheduler", "scheduler_config.json")) or {}
    if not sched:
        return family, {}, None
    fam = get_family(family)
    changes, display = {}, None
    if fam.sampling.kind == "discrete":
        pred = _PREDICTIONS.get(sched.get("prediction_type"))
        if pred == "V_PREDICTION" and fam.sampling.prediction != pred:
            evidence.append("scheduler_config.json: prediction_type v_prediction")
            family = {"SD20": "SD21_768_v", "SDXL": "SDXL_v_pred"}.get(family, family)
            if get_family(family).sampling.prediction != pred:
                changes["prediction"], display = pred, f"{fam.display_name} (v-prediction)"
        if sched.get("rescale_betas_zero_snr"):
            evidence.append("scheduler_config.json: rescale_betas_zero_snr: zero terminal SNR schedule")
            changes.update(zsnr=True, table_sha256=None)
            display = f"{get_family(family).display_name} (zero terminal SNR)"
        if family == "SDXL" and "EDM" in str(sched.get("_class_name")) and sched.get("sigma_data") == 0.5:
            evidence.append(f"scheduler_config.json: {sched.get('_class_name')} with sigma_data 0.5: Playground v2.5")
            family = "PlaygroundV2_5"
    elif fam.sampling.kind == "flow":
        shift = sched.get("shift", sched.get("flow_shift"))
        if sched.get("use_dynamic_shifting"):
            evidence.append(f"scheduler_config.json: use_dynamic_shifting (resolution-dependent); keeping "
                            f"ComfyUI's shift {fam.sampling.shift:g}")
        elif isinstance(shift, (int, float)) and shift > 0 and float(shift) != fam.sampling.shift:
            evidence.append(f"scheduler_config.json: shift {float(shift):g} (ComfyUI's default for "
                            f"{family} is {fam.sampling.shift:g})")
            changes.update(shift=float(shift), table_sha256=None)
    return family, changes, display


def detect_diffusers(folder: str) -> ArchMatch:
    """Detect a diffusers folder's family, prediction type and shift from its JSON files."""
    cls, cfg, evidence, root = _pipeline_class(folder)
    component, resolve = PIPELINES[cls]
    try:
        family = resolve(cfg)
    except Unsupported as e:
        raise BadFileError(f"unsupported model: {folder} holds {e}, which Unsampler does not support") from None
    if cfg:
        shown = {k: cfg[k] for k in ("cross_attention_dim", "in_channels", "out_channels", "guidance_embeds",
                                     "num_layers", "block_out_channels") if k in cfg}
        evidence.append(f"{component}/config.json: _class_name {cfg.get('_class_name')}"
                        + "".join(f", {k} {v}" for k, v in shown.items()))
    family, changes, display = _scheduler(root, family, evidence)
    fam = get_family(family)
    model_type = fam.model_type if "prediction" not in changes else changes["prediction"]
    return ArchMatch(family, fam.comfy_class, model_type, "", dict(cfg), tuple(evidence), changes, display)
