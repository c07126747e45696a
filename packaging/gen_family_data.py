"""Regenerate unsampler_gui/core/data/*.json from the reference data in ../shared/reference.

The reference files were produced by running ComfyUI's own code. This script only selects and
renames facts; it computes nothing. Run: python packaging/gen_family_data.py [REFERENCE_DIR]

- ``families.json``: the 24 families of ``families.json`` (ComfyUI a125cd84) and then the 39 of
  ``families_newest.json`` (ComfyUI master 783545f6), each as a family definition in the format of
  ``unsampler_gui/core/family_format.py`` (the same format users write). The old families take the
  attributes that only the newest tree has (downscale ratios, TAESD decoder names) from
  ``families_newest.json["latent_formats"]``; nothing else changed for them (see the reference README).
- ``comfy_lists.json``: ComfyUI master's sampler and scheduler lists (``comfy_lists_newest.json``).
"""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REF = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "reference"
OUT = ROOT / "unsampler_gui" / "core" / "data"

DISPLAY = {
    "SD15": "Stable Diffusion 1.5", "SD20": "Stable Diffusion 2.x (eps)", "SD21_768_v": "Stable Diffusion 2.1 768-v",
    "SDXL": "SDXL", "SDXL_v_pred": "SDXL v-prediction", "PlaygroundV2_5": "Playground v2.5",
    "SDXLRefiner": "SDXL Refiner", "SSD1B": "SSD-1B", "SVD_img2vid": "Stable Video Diffusion",
    "SD3": "SD3 Medium", "SD35_large": "SD3.5 Large", "Flux": "Flux.1 dev", "FluxSchnell": "Flux.1 schnell",
    "Chroma": "Chroma", "AuraFlow": "AuraFlow", "Stable_Cascade_C": "Stable Cascade (stage C)",
    "HunyuanVideo": "HunyuanVideo", "WAN21_T2V": "Wan 2.1 T2V", "WAN22_T2V": "Wan 2.2 T2V (5B)",
    "LTXV": "LTX-Video", "GenmoMochi": "Mochi", "Lumina2": "Lumina 2", "HiDream": "HiDream",
    "QwenImage": "Qwen-Image",
    # ComfyUI master (783545f6)
    "Flux2": "FLUX.2 dev", "Flux2_Klein_4B": "FLUX.2 [klein] 4B", "Flux2_Klein_9B": "FLUX.2 [klein] 9B",
    "ZImage": "Z-Image", "ZImagePixelSpace": "Z-Image (pixel space)", "Lumina2_new_keys": "Lumina Image 2.0",
    "NewBie": "NewBie-image", "HunyuanVideo15": "HunyuanVideo 1.5",
    "HunyuanVideo15_SR_Distilled": "HunyuanVideo 1.5 SR (distilled)", "HunyuanImage21": "HunyuanImage 2.1",
    "Kandinsky5": "Kandinsky 5.0 T2V Lite", "Kandinsky5_Pro": "Kandinsky 5.0 T2V Pro",
    "Kandinsky5Image": "Kandinsky 5.0 Image Lite", "LTXAV": "LTX-2", "QwenImage_Edit_2511": "Qwen-Image-Edit-2511",
    "QwenImage_Layered": "Qwen-Image-Layered", "ChromaRadiance": "Chroma Radiance", "HiDreamO1": "HiDream-O1",
    "WAN21_I2V": "Wan 2.1 I2V", "WAN22_I2V_A14B": "Wan 2.2 I2V A14B", "WAN21_Vace": "Wan 2.1 VACE",
    "WAN22_Animate": "Wan 2.2 Animate", "WAN_Animate2": "Wan Animate 2", "WAN21_CausalAR_T2V": "Wan 2.1 CausalAR T2V",
    "LongCatImage": "LongCat-Image", "FluxInpaint": "FLUX.1 Fill", "Lens": "Lens", "Krea2": "Krea 2",
    "Ideogram4": "Ideogram 4", "ErnieImage": "ERNIE-Image", "Boogu": "Boogu-Image", "MageFlow": "Mage-Flow",
    "JoyImage": "JoyImage", "Anima": "Anima", "CogVideoX_5B": "CogVideoX 5B", "CogVideoX_2B": "CogVideoX 2B",
    "SeedVR2_3B": "SeedVR2 3B", "PixelDiTT2I": "PixelDiT", "MiniMaxH3": "MiniMax H3",
}
SAMPLING_KIND = {
    "ModelSamplingDiscrete": "discrete", "StableCascadeSampling": "stable_cascade",
    "ModelSamplingContinuousEDM": "edm", "ModelSamplingDiscreteFlow": "flow", "ModelSamplingFlux": "flux",
    "ModelSamplingAV": "flow_av",
}
#: The parameters of each kind, as ComfyUI's ``sampling_settings`` names them (what the ModelSampling reads).
KIND_PARAMS = {
    "discrete": ("num_timesteps", "linear_start", "linear_end", "zsnr"),
    "edm": ("sigma_min", "sigma_max", "sigma_data"),
    "stable_cascade": ("shift",),
    "flow": ("shift", "multiplier", "noise_scale"),
    "flow_av": ("shift", "multiplier", "noise_scale", "audio_shift"),
    "flux": ("shift",),
}
#: ComfyUI's defaults where the ModelSampling object does not record the parameter itself.
EDM_DEFAULTS = {"sigma_min": 0.002, "sigma_max": 120.0, "sigma_data": 1.0}
REFERENCE_KEYS = ("sigma_min", "sigma_max", "sigmas_len", "sigmas_first3", "sigmas_last3", "sigmas_sha256_f32le",
                  "log_sigmas_sha256_f32le")
#: Preview reshapes that ComfyUI gives as a lambda (the reference file records them as null):
#: Flux2's ``latent_rgb_factors_reshape`` regroups 128 channels as 32 x 2 x 2 and interleaves the 2 x 2 into the
#: height and width, which is ``torch.nn.functional.pixel_shuffle(x, 2)``.
RGB_RESHAPE = {"Flux2": {"pixel_shuffle": 2}}
#: Formats whose process_in/out ComfyUI overrides ("custom (see class ...)" in the reference file) with the
#: identity: ``Flux2.process_in`` and ``ChromaRadiance.process_in`` (and its pixel-space subclasses) return the
#: latent unchanged. With scale_factor 1 and no shift that is the generic formula.
IDENTITY_FORMATS = ("Flux2", "ChromaRadiance")


def _process_formula(lat: dict) -> str:
    text = lat["process_formula"]
    if text.startswith("custom"):
        if lat["process_in_defined_in"] not in IDENTITY_FORMATS or lat["scale_factor"] != 1.0 or lat["shift_factor"]:
            raise SystemExit(f"unknown custom process_in of {lat['class']}")
        return "process_in: x ; process_out: x"
    return text


def _sampling(e: dict) -> dict:
    ms = e["model_sampling"]
    cls, prediction = ms["class_composition"]
    kind = SAMPLING_KIND[cls]
    settings = e["sampling_settings_effective"]
    out = {"kind": kind, "prediction": prediction}
    for k in KIND_PARAMS[kind]:
        if kind == "edm":
            out[k] = settings.get(k, EDM_DEFAULTS[k]) if k != "sigma_data" else ms["sigma_data"]
        else:
            out[k] = ms[k] if ms.get(k) is not None else settings[k]
    return out


def _flat(v):
    """ComfyUI's [1, C, 1, 1(, 1)] mean/std tensors as a plain list of C numbers."""
    if v is None:
        return None
    out = []
    for x in v:
        out.extend(_flat(x) if isinstance(x, list) else [x])
    return out


def _latent(lat: dict, newest_format: dict) -> dict:
    def attr(k):
        return lat[k] if k in lat else newest_format.get(k)

    mean, std = lat.get("latents_mean"), lat.get("latents_std")
    return {
        "format": lat["class"], "channels": lat["latent_channels"], "dimensions": lat["latent_dimensions"],
        "scale_factor": lat["scale_factor"], "shift_factor": lat["shift_factor"],
        "latents_mean": _flat((mean or {}).get("tensor")), "latents_std": _flat((std or {}).get("tensor")),
        "latent_rgb_factors": lat["latent_rgb_factors"], "latent_rgb_factors_bias": lat["latent_rgb_factors_bias"],
        "latent_rgb_factors_reshape": RGB_RESHAPE.get(lat["class"]),
        "taesd_decoder_name": newest_format.get("taesd_decoder_name", lat.get("taesd_decoder_name")),
        "spacial_downscale_ratio": attr("spacial_downscale_ratio"),
        "temporal_downscale_ratio": attr("temporal_downscale_ratio"),
        "process_formula": _process_formula(lat),
    }


def _rule(e: dict, sm: dict) -> str:
    """The detection rule in words: the file's own text, or (newest file) the class's match facts."""
    if e.get("rule"):
        return e["rule"]
    text = f"ComfyUI class {e['supported_models_class']}: detected unet_config contains {sm['unet_config_match']}"
    if sm.get("required_keys"):
        text += f", required keys {sm['required_keys']}"
    if e.get("safetensors_metadata"):
        text += f"; safetensors metadata {e['safetensors_metadata']}"
    return text + (f" ({e['note']})" if e.get("note") else "")


def _definition(name: str, e: dict, supported_models: dict, latent_formats: dict, source: str) -> dict:
    ms = e["model_sampling"]
    sm = supported_models[e["supported_models_class"]]
    lat = e["latent"]
    d = {
        "name": name, "display_name": DISPLAY[name], "comfy_class": e["supported_models_class"],
        "model_type": e["model_type"],
    }
    if e.get("note"):
        d["note"] = e["note"]
    d["sampling"] = _sampling(e)
    d["latent"] = _latent(lat, latent_formats[lat["class"]])
    d["detection"] = {
        "rule": _rule(e, sm),
        "unet_config_match": sm["unet_config_match"],
        "required_keys": sm.get("required_keys", []),
        "minimal_keys": e["minimal_detection_keys"],
        "extra_keys_with_values": e["extra_keys_with_values"],
        "unet_config": e["detected_unet_config_from_full_fake_checkpoint"],
        "safetensors_metadata": e.get("safetensors_metadata"),
    }
    d["reference"] = {"comfyui": source, **{k: ms[k] for k in REFERENCE_KEYS if k in ms}}
    return d


def _class_defaults(families: dict, supported_models: dict) -> dict:
    """ComfyUI class name -> the family ComfyUI builds for that class when the state dict adds nothing.

    Only classes whose default family has another name are listed (a family named as its class is the default).
    The default is the first family of the class whose ModelType is the class's ``model_type_without_state_dict``
    and whose latent format is the class's own ``latent_format``.
    """
    out = {}
    classes = {d["comfy_class"] for d in families.values()}
    for cls in sorted(classes):
        if cls in families:
            continue
        sm = supported_models[cls]
        fits = [n for n, d in families.items() if d["comfy_class"] == cls
                and d["model_type"] == sm["model_type_without_state_dict"] and d["latent"]["format"] == sm["latent_format"]]
        if not fits:
            raise SystemExit(f"no default family for class {cls}")
        out[cls] = fits[0]
    return out


def main():
    old = json.loads((REF / "families.json").read_text())
    new = json.loads((REF / "families_newest.json").read_text())
    latent_formats = new["latent_formats"]
    old_src = old["source"]["comfyui"]
    new_src = f"Comfy-Org/ComfyUI {new['source']['comfyui_source']} ({new['source']['comfyui_commit_date'][:10]})"
    families = {}
    for name, e in old["detected_families"].items():
        families[name] = _definition(name, e, old["supported_models"], latent_formats, old_src)
    for name, e in new["detected_families"].items():
        if name in families:
            raise SystemExit(f"{name} is in both files")
        families[name] = _definition(name, e, new["supported_models"], latent_formats, new_src)
    out = {
        "source": {"families": old["source"], "families_newest": new["source"]},
        "format": "unsampler-family/1",
        "class_defaults": _class_defaults(families, new["supported_models"]),
        "families": families,
    }
    (OUT / "families.json").write_text(json.dumps(out, indent=1) + "\n")
    lists = json.loads((REF / "comfy_lists_newest.json").read_text())
    (OUT / "comfy_lists.json").write_text(json.dumps({
        "source": lists["source"], "samplers": lists["SAMPLERS"], "schedulers": lists["SCHEDULERS"],
        "discard_penultimate_sigma_samplers": lists["DISCARD_PENULTIMATE_SIGMA_SAMPLERS"],
    }, indent=1) + "\n")


if __name__ == "__main__":
    main()
