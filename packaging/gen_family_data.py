"""Regenerate unsampler_gui/core/data/*.json from the reference data in ../shared/reference.

The reference files were produced by running ComfyUI's own code. This script only selects and
renames facts; it computes nothing. Run: python packaging/gen_family_data.py [REFERENCE_DIR]
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
}
SAMPLING_KIND = {
    "ModelSamplingDiscrete": "discrete", "StableCascadeSampling": "stable_cascade",
    "ModelSamplingContinuousEDM": "edm", "ModelSamplingDiscreteFlow": "flow", "ModelSamplingFlux": "flux",
}
KEEP_SAMPLING = ("num_timesteps", "linear_start", "linear_end", "zsnr", "sigma_data", "shift", "multiplier",
                 "noise_scale", "sigma_min", "sigma_max", "sigmas_len", "sigmas_first3", "sigmas_last3",
                 "sigmas_sha256_f32le", "log_sigmas_sha256_f32le")


def main():
    fam = json.loads((REF / "families.json").read_text())
    out = {"source": fam["source"], "families": {}}
    for name, e in fam["detected_families"].items():
        ms = e["model_sampling"]
        lat = e["latent"]
        out["families"][name] = {
            "display_name": DISPLAY[name],
            "comfy_class": e["supported_models_class"],
            "model_type": e["model_type"],
            "sampling": {"kind": SAMPLING_KIND[ms["class_composition"][0]], "prediction": ms["class_composition"][1],
                         "settings": e["sampling_settings_effective"],
                         **{k: ms[k] for k in KEEP_SAMPLING if k in ms}},
            "latent": {
                "format": lat["class"], "channels": lat["latent_channels"], "dimensions": lat["latent_dimensions"],
                "scale_factor": lat["scale_factor"], "shift_factor": lat["shift_factor"],
                "latents_mean": (lat.get("latents_mean") or {}).get("tensor"),
                "latents_std": (lat.get("latents_std") or {}).get("tensor"),
                "rgb_factors": lat["latent_rgb_factors"], "rgb_factors_bias": lat["latent_rgb_factors_bias"],
                "taesd_decoder": lat["taesd_decoder_name"], "process_formula": lat["process_formula"],
            },
            "detection": {
                "rule": e["rule"],
                "minimal_keys": e["minimal_detection_keys"],
                "extra_keys_with_values": e["extra_keys_with_values"],
                "unet_config": e["detected_unet_config_from_full_fake_checkpoint"],
            },
        }
    (OUT / "families.json").write_text(json.dumps(out, indent=1) + "\n")
    lists = json.loads((REF / "comfy_lists.json").read_text())
    newer = lists["newer_comfyui_samplers_py"]
    (OUT / "comfy_lists.json").write_text(json.dumps({
        "source": lists["source"], "samplers_source": f"{newer['repo']} {newer['file']} @ {newer['commit']}",
        "samplers": newer["SAMPLERS"], "schedulers": lists["SCHEDULERS"],
        "discard_penultimate_sigma_samplers": lists["DISCARD_PENULTIMATE_SIGMA_SAMPLERS"],
    }, indent=1) + "\n")


if __name__ == "__main__":
    main()
