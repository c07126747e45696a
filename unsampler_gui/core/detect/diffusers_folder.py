"""Diffusers model folders: the family from ``model_index.json`` and the component configs.

Only JSON is read: ``model_index.json`` names the pipeline class, ``unet/config.json`` or
``transformer/config.json`` separates the variants (SD1 vs SD2 by cross-attention width, Flux dev vs
schnell by ``guidance_embeds``, Wan 2.1 vs 2.2 by 48 output channels, ...), and
``scheduler/scheduler_config.json`` gives the prediction type and the flow shift. A folder holding
just one component (a ``config.json`` with a UNet or transformer class) works too.

The JSON is untrusted: every value is read through a typed accessor (``_text``, ``_int``, ``_flag``),
and a value of the wrong type, or a shift outside its range, is ignored and said in the evidence.
"""
from __future__ import annotations

import json
import os
from typing import Callable, Optional

from .rules import ArchMatch
from ..atomic import open_regular
from ..errors import BadFileError, printable, reading
from ..families import get_family
from ..overrides import shift_problem, shift_rule

MAX_JSON_BYTES = 4 << 20


def read_json(path: str) -> Optional[dict]:
    """A small JSON object from disk, None when the file is absent; ``BadFileError`` when it is corrupt."""
    if not os.path.lexists(path):
        return None
    with open_regular(path) as f:  # refuses a FIFO or a device named config.json
        raw = f.read(MAX_JSON_BYTES + 1)
    if len(raw) > MAX_JSON_BYTES:
        raise BadFileError(f"{path}: too large for a config file")
    try:
        obj = json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise BadFileError(f"{path}: corrupt JSON (nested too deeply)") from None
    except ValueError:  # not UTF-8, not JSON, or a number of more digits than Python converts
        raise BadFileError(f"{path}: corrupt JSON") from None
    if not isinstance(obj, dict):
        raise BadFileError(f"{path}: not a JSON object")
    return obj


def _shown(value) -> str:
    return printable(repr(value), 40)


def _text(cfg: dict, key: str, evidence: Optional[list] = None, where: str = "") -> Optional[str]:
    """A string value, or None (absent, or of another type: then said in ``evidence``)."""
    v = cfg.get(key)
    if v is None or isinstance(v, str):
        return v
    if evidence is not None:
        evidence.append(f"{where}: {key} {_shown(v)} ignored (not a string)")
    return None


def _int(cfg: dict, key: str, evidence: Optional[list] = None, where: str = "") -> Optional[int]:
    """An int value (not a bool), or None; a list's first int (cross_attention_dim may be per block)."""
    v = cfg.get(key)
    if isinstance(v, list) and v and key == "cross_attention_dim":
        v = v[0]
    if v is None or (isinstance(v, int) and not isinstance(v, bool)):
        return v
    if evidence is not None:
        evidence.append(f"{where}: {key} {_shown(v)} ignored (not an integer)")
    return None


def _flag(cfg: dict, key: str, default: bool, evidence: Optional[list] = None, where: str = "") -> bool:
    v = cfg.get(key, default)
    if isinstance(v, bool):
        return v
    if evidence is not None:
        evidence.append(f"{where}: {key} {_shown(v)} ignored (not true or false); taken as {str(default).lower()}")
    return default


class Unsupported(Exception):
    """The pipeline is known, but its model is not a family Unsampler supports."""


def _unet_family(cfg: dict) -> str:
    """SD1/SD2/SDXL/Refiner from a UNet2DConditionModel config."""
    ctx = _int(cfg, "cross_attention_dim")
    in_ch = _int(cfg, "in_channels")
    if in_ch == 8:
        raise Unsupported("an InstructPix2Pix UNet (8 input channels)")
    family = {768: "SD15", 1024: "SD20", 2048: "SDXL", 1280: "SDXLRefiner"}.get(ctx)
    if family is None:
        raise Unsupported(f"a UNet with cross_attention_dim {_shown(cfg.get('cross_attention_dim'))}, which "
                          "matches no supported family")
    return family


def _sd3(cfg: dict) -> str:
    large = get_family("SD35_large").detection["unet_config"]["depth"]
    return "SD35_large" if _int(cfg, "num_layers") == large else "SD3"


def _flux(cfg: dict) -> str:
    if _int(cfg, "in_channels") == 384:
        raise Unsupported("Flux Fill (inpainting, ComfyUI class FluxInpaint)")
    return "Flux" if _flag(cfg, "guidance_embeds", True) else "FluxSchnell"


def _wan(cfg: dict) -> str:
    if _int(cfg, "image_dim") or _int(cfg, "added_kv_proj_dim"):
        raise Unsupported("Wan image-to-video (WAN21_I2V)")
    return "WAN22_T2V" if _int(cfg, "out_channels") == 48 else "WAN21_T2V"


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
        if not isinstance(cls, str):
            raise BadFileError(f"{folder}: model_index.json's _class_name is {_shown(cls)}, not a pipeline name")
        if cls not in PIPELINES:
            raise BadFileError(f"{folder}: diffusers pipeline {_shown(cls)} is not a supported model family")
        component = PIPELINES[cls][0]
        cfg = read_json(os.path.join(folder, component, "config.json")) or {}
        return cls, cfg, [f"model_index.json: _class_name {cls}"], folder
    cfg = read_json(os.path.join(folder, "config.json"))
    if cfg is None:
        raise BadFileError(f"{folder}: not a diffusers folder (no model_index.json or config.json)")
    cls = COMPONENTS.get(_text(cfg, "_class_name") or "")
    if cls is None:
        raise BadFileError(f"{folder}: config.json class {_shown(cfg.get('_class_name'))} is not a diffusion model "
                           "Unsampler knows")
    return cls, cfg, [f"config.json: _class_name {cfg.get('_class_name')} (a lone component)"], os.path.dirname(folder)


def _scheduler(root: str, family: str, evidence: list) -> tuple:
    """Family and sampling changes implied by scheduler_config.json (prediction type, zsnr, shift)."""
    sched = read_json(os.path.join(root, "scheduler", "scheduler_config.json")) or {}
    if not sched:
        return family, {}, None
    where = "scheduler_config.json"
    fam = get_family(family)
    changes, display = {}, None
    if fam.sampling.kind == "discrete":
        pred = _PREDICTIONS.get(_text(sched, "prediction_type", evidence, where) or "")
        if pred == "V_PREDICTION" and fam.sampling.prediction != pred:
            evidence.append("scheduler_config.json: prediction_type v_prediction")
            family = {"SD20": "SD21_768_v", "SDXL": "SDXL_v_pred"}.get(family, family)
            if get_family(family).sampling.prediction != pred:
                changes["prediction"], display = pred, f"{fam.display_name} (v-prediction)"
        if _flag(sched, "rescale_betas_zero_snr", False, evidence, where):
            evidence.append("scheduler_config.json: rescale_betas_zero_snr: zero terminal SNR schedule")
            changes.update(zsnr=True, table_sha256=None)
            display = f"{get_family(family).display_name} (zero terminal SNR)"
        sched_class = _text(sched, "_class_name", evidence, where) or ""
        if family == "SDXL" and "EDM" in sched_class and sched.get("sigma_data") == 0.5:
            evidence.append(f"scheduler_config.json: {sched_class} with sigma_data 0.5: Playground v2.5")
            family = "PlaygroundV2_5"
    elif fam.sampling.kind == "flow":
        key = "shift" if "shift" in sched else "flow_shift"
        shift = sched.get(key)
        if _flag(sched, "use_dynamic_shifting", False, evidence, where):
            evidence.append(f"scheduler_config.json: use_dynamic_shifting (resolution-dependent); keeping "
                            f"ComfyUI's shift {fam.sampling.shift:g}")
        elif shift is not None and shift_problem(shift, fam.sampling.kind) is not None:
            evidence.append(f"scheduler_config.json: {key} {_shown(shift)} ignored ({shift_rule(fam.sampling.kind)}); "
                            f"keeping ComfyUI's shift {fam.sampling.shift:g} for {family}")
        elif shift is not None and float(shift) != fam.sampling.shift:
            evidence.append(f"scheduler_config.json: shift {float(shift):g} (ComfyUI's default for "
                            f"{family} is {fam.sampling.shift:g})")
            changes.update(shift=float(shift), table_sha256=None)
    return family, changes, display


def detect_diffusers(folder: str) -> ArchMatch:
    """Detect a diffusers folder's family, prediction type and shift from its JSON files."""
    with reading(folder, "the diffusers folder"):
        return _detect_diffusers(folder)


def _detect_diffusers(folder: str) -> ArchMatch:
    cls, cfg, evidence, root = _pipeline_class(folder)
    component, resolve = PIPELINES[cls]
    try:
        family = resolve(cfg)
    except Unsupported as e:
        raise BadFileError(f"unsupported model: {folder} holds {e}, which Unsampler does not support") from None
    if cfg:
        shown = {k: cfg[k] for k in ("cross_attention_dim", "in_channels", "out_channels", "guidance_embeds",
                                     "num_layers", "block_out_channels") if k in cfg}
        evidence.append(f"{component}/config.json: _class_name {printable(cfg.get('_class_name'), 60)}"
                        + "".join(f", {k} {_shown(v)}" for k, v in shown.items()))
    family, changes, display = _scheduler(root, family, evidence)
    fam = get_family(family)
    model_type = fam.model_type if "prediction" not in changes else changes["prediction"]
    return ArchMatch(family, fam.comfy_class, model_type, "", dict(cfg), tuple(evidence), changes, display)
