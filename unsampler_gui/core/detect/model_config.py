"""ComfyUI's model classes as an ordered match table, and the registry family each one gives.

``comfy.supported_models.models`` is tried in order; the first class whose ``unet_config`` dict is
a subset of the detected config wins. For the classes Unsampler supports, the values to match are
not copied here: they are read from the family's own ``detection.unet_config`` (ComfyUI's detected
config for that family), so the registry stays the one source. Classes Unsampler does not support
are listed with their literal match values so that they are named, never mistaken for a neighbour.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

from ..families import get_family


@dataclass(frozen=True)
class ModelClass:
    comfy_class: str
    match: object  # tuple of config keys (values from `family`'s unet_config) or a literal dict
    family: Optional[str] = None  # registry family; None = not supported by Unsampler
    label: str = ""  # what to call an unsupported class in messages
    required_keys: tuple = ()

    def match_dict(self) -> dict:
        if isinstance(self.match, dict):
            return self.match
        cfg = get_family(self.family).detection["unet_config"]
        return {k: cfg.get(k) for k in self.match}


_UNET = ("context_dim", "model_channels", "use_linear_in_transformer", "adm_in_channels", "use_temporal_attention")
_XL = ("model_channels", "use_linear_in_transformer", "transformer_depth", "context_dim", "adm_in_channels",
       "use_temporal_attention")
_SVD = ("model_channels", "in_channels", "use_linear_in_transformer", "transformer_depth", "context_dim",
        "adm_in_channels", "use_temporal_attention", "use_temporal_resblock")
_XL_BASE = {"model_channels": 320, "use_linear_in_transformer": True, "context_dim": 2048,
            "adm_in_channels": 2816, "use_temporal_attention": False}
_SD15_BASE = {"context_dim": 768, "model_channels": 320, "use_linear_in_transformer": False,
              "adm_in_channels": None, "use_temporal_attention": False}
_SD2_BASE = {"context_dim": 1024, "model_channels": 320, "use_linear_in_transformer": True,
             "use_temporal_attention": False}
_SV3D = {"model_channels": 320, "in_channels": 8, "use_linear_in_transformer": True,
         "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0], "context_dim": 1024, "use_temporal_attention": True,
         "use_temporal_resblock": True}


def _wan(model_type: str, **extra) -> dict:
    return {"image_model": "wan2.1", "model_type": model_type, **extra}


#: comfy.supported_models.models at a125cd84, in order (SVD_img2vid is appended last there too).
MODEL_CLASSES = (
    ModelClass("LotusD", {"model_channels": 320, "use_linear_in_transformer": True, "use_temporal_attention": False,
                          "adm_in_channels": 4, "in_channels": 4}, label="Lotus depth/normal estimator"),
    ModelClass("Stable_Zero123", {**_SD15_BASE, "in_channels": 8}, label="Stable Zero123",
               required_keys=("cc_projection.weight", "cc_projection.bias")),
    ModelClass("SD15_instructpix2pix", {**_SD15_BASE, "in_channels": 8}, label="SD1.5 InstructPix2Pix"),
    ModelClass("SD15", _UNET, "SD15"),
    ModelClass("SD20", _UNET, "SD20"),
    ModelClass("SD21UnclipL", {**_SD2_BASE, "adm_in_channels": 1536}, label="SD2.1 unCLIP-L"),
    ModelClass("SD21UnclipH", {**_SD2_BASE, "adm_in_channels": 2048}, label="SD2.1 unCLIP-H"),
    ModelClass("SDXL_instructpix2pix", {**_XL_BASE, "transformer_depth": [0, 0, 2, 2, 10, 10], "in_channels": 8},
               label="SDXL InstructPix2Pix"),
    ModelClass("SDXLRefiner", _XL, "SDXLRefiner"),
    ModelClass("SDXL", _XL, "SDXL"),
    ModelClass("SSD1B", _XL, "SSD1B"),
    ModelClass("KOALA_700M", {**_XL_BASE, "transformer_depth": [0, 2, 5]}, label="KOALA 700M"),
    ModelClass("KOALA_1B", {**_XL_BASE, "transformer_depth": [0, 2, 6]}, label="KOALA 1B"),
    ModelClass("Segmind_Vega", {**_XL_BASE, "transformer_depth": [0, 0, 1, 1, 2, 2]}, label="Segmind Vega"),
    ModelClass("SD_X4Upscaler", {"context_dim": 1024, "model_channels": 256, "in_channels": 7,
                                 "use_linear_in_transformer": True, "adm_in_channels": None,
                                 "use_temporal_attention": False}, label="SD x4 upscaler"),
    ModelClass("Stable_Cascade_C", ("stable_cascade_stage",), "Stable_Cascade_C"),
    ModelClass("Stable_Cascade_B", {"stable_cascade_stage": "b"}, label="Stable Cascade stage B"),
    ModelClass("SV3D_u", {**_SV3D, "adm_in_channels": 256}, label="SV3D-u"),
    ModelClass("SV3D_p", {**_SV3D, "adm_in_channels": 1280}, label="SV3D-p"),
    ModelClass("SD3", ("in_channels", "pos_embed_scaling_factor"), "SD3"),
    ModelClass("StableAudio", {"audio_model": "dit1.0"}, label="Stable Audio (an audio model)"),
    ModelClass("AuraFlow", ("cond_seq_dim",), "AuraFlow"),
    ModelClass("PixArt", {"image_model": "pixart"}, label="PixArt"),
    ModelClass("PixArt", {"image_model": "pixart_diffusers"}, label="PixArt (diffusers layout)"),
    ModelClass("HunyuanDiT", {"image_model": "hydit"}, label="Hunyuan-DiT"),
    ModelClass("HunyuanDiT1", {"image_model": "hydit1"}, label="Hunyuan-DiT 1.x"),
    ModelClass("FluxInpaint", {"image_model": "flux", "guidance_embed": True, "in_channels": 96},
               label="Flux Fill (inpainting)"),
    ModelClass("Flux", ("image_model", "guidance_embed"), "Flux"),
    ModelClass("FluxSchnell", ("image_model", "guidance_embed"), "FluxSchnell"),
    ModelClass("GenmoMochi", ("image_model",), "GenmoMochi"),
    ModelClass("LTXV", ("image_model",), "LTXV"),
    ModelClass("HunyuanImage21Refiner", {"image_model": "hunyuan_video", "patch_size": [1, 1, 1], "vec_in_dim": None},
               label="HunyuanImage 2.1 refiner"),
    ModelClass("HunyuanImage21", {"image_model": "hunyuan_video", "vec_in_dim": None},
               label="HunyuanImage 2.1 (no `vector_in`)"),
    ModelClass("HunyuanVideoSkyreelsI2V", {"image_model": "hunyuan_video", "in_channels": 32},
               label="SkyReels HunyuanVideo image-to-video"),
    ModelClass("HunyuanVideoI2V", {"image_model": "hunyuan_video", "in_channels": 33},
               label="HunyuanVideo image-to-video"),
    ModelClass("HunyuanVideo", ("image_model",), "HunyuanVideo"),
    ModelClass("Cosmos", {"image_model": "cosmos"}, label="Cosmos"),
    ModelClass("CosmosPredict2", {"image_model": "cosmos_predict2"}, label="Cosmos Predict2"),
    ModelClass("Lumina2", ("image_model",), "Lumina2"),
    ModelClass("WAN22_T2V", ("image_model", "model_type", "out_dim"), "WAN22_T2V"),
    ModelClass("WAN21_T2V", ("image_model", "model_type"), "WAN21_T2V"),
    ModelClass("WAN21_I2V", _wan("i2v", in_dim=36), label="Wan image-to-video (`img_emb`)"),
    ModelClass("WAN21_FunControl2V", _wan("i2v", in_dim=48), label="Wan Fun Control"),
    ModelClass("WAN21_Vace", _wan("vace"), label="Wan VACE"),
    ModelClass("WAN21_Camera", _wan("camera", in_dim=32), label="Wan 2.1 camera control"),
    ModelClass("WAN22_Camera", _wan("camera_2.2", in_dim=36), label="Wan 2.2 camera control"),
    ModelClass("WAN22_S2V", _wan("s2v"), label="Wan 2.2 speech-to-video"),
    ModelClass("WAN21_HuMo", _wan("humo"), label="Wan HuMo"),
    ModelClass("WAN22_Animate", _wan("animate"), label="Wan 2.2 Animate"),
    ModelClass("Hunyuan3Dv2", {"image_model": "hunyuan3d2"}, label="Hunyuan3D 2 (a 3D model)"),
    ModelClass("HiDream", ("image_model",), "HiDream"),
    ModelClass("Chroma", ("image_model",), "Chroma"),
    ModelClass("ChromaRadiance", {"image_model": "chroma_radiance"}, label="Chroma Radiance (pixel space)"),
    ModelClass("ACEStep", {"audio_model": "ace"}, label="ACE-Step (an audio model)"),
    ModelClass("Omnigen2", {"image_model": "omnigen2"}, label="OmniGen2"),
    ModelClass("QwenImage", ("image_model",), "QwenImage"),
    ModelClass("SVD_img2vid", _SVD, "SVD_img2vid"),
)


@lru_cache(maxsize=1)
def _compiled() -> tuple:
    return tuple((mc, mc.match_dict()) for mc in MODEL_CLASSES)


def match_class(config: dict, has_key) -> Optional[ModelClass]:
    """The first class whose match dict is a subset of ``config`` (and whose required keys exist)."""
    for mc, want in _compiled():
        if all(k in config and config[k] == v for k, v in want.items()) and all(has_key(k) for k in mc.required_keys):
            return mc
    return None
