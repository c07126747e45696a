"""ComfyUI's model classes as an ordered match table, and the registry families each one gives.

``comfy.supported_models.models`` (master 783545f6, 101 classes) is tried in order; the first
class whose ``unet_config`` dict is a subset of the detected config (and whose ``required_keys``
exist, with ``{}`` standing for the model prefix) wins: ComfyUI's ``model_config_from_unet_config``.
The match dicts are ComfyUI's facts, checked against ``reference/families_newest.json`` by the
tests. ``families`` names the registry families of a class (several when ComfyUI's class covers
variants that we name apart, see ``model_type``); a class with none is one Unsampler cannot
schedule, and ``label`` names it in the refusal.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class ModelClass:
    comfy_class: str
    match: dict
    label: str  # what the model is, for messages
    families: tuple = ()  # registry families of this class; () = not supported by Unsampler
    required_keys: tuple = ()  # ComfyUI's required_keys; "{}" is the model prefix

    def match_dict(self) -> dict:
        return self.match

    @property
    def family(self) -> Optional[str]:
        return self.families[0] if self.families else None


def _c(cls: str, match: dict, label: str, *families: str, required: tuple = ()) -> ModelClass:
    return ModelClass(cls, match, label, tuple(families), required)


def _im(model: str, **extra) -> dict:
    return {"image_model": model, **extra}


def _wan(model_type: str, **extra) -> dict:
    return {"image_model": "wan2.1", "model_type": model_type, **extra}


_XL = {"model_channels": 320, "use_linear_in_transformer": True, "context_dim": 2048, "adm_in_channels": 2816,
       "use_temporal_attention": False}
_SD15 = {"context_dim": 768, "model_channels": 320, "use_linear_in_transformer": False, "adm_in_channels": None,
         "use_temporal_attention": False}
_SD2 = {"context_dim": 1024, "model_channels": 320, "use_linear_in_transformer": True, "use_temporal_attention": False}
_SV3D = {"model_channels": 320, "in_channels": 8, "use_linear_in_transformer": True,
         "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0], "context_dim": 1024, "use_temporal_attention": True,
         "use_temporal_resblock": True}
_D_XL = [0, 0, 2, 2, 10, 10]

#: comfy.supported_models.models at master 783545f6, in order (SVD_img2vid and the last two come last there too).
MODEL_CLASSES = (
    _c("LotusD", {"model_channels": 320, "use_linear_in_transformer": True, "use_temporal_attention": False,
                  "adm_in_channels": 4, "in_channels": 4}, "Lotus depth/normal estimator"),
    _c("Stable_Zero123", {**_SD15, "in_channels": 8}, "Stable Zero123", required=("cc_projection.weight",
                                                                                  "cc_projection.bias")),
    _c("SD15_instructpix2pix", {**_SD15, "in_channels": 8}, "SD1.5 InstructPix2Pix"),
    _c("SD15", dict(_SD15), "Stable Diffusion 1.x", "SD15"),
    _c("SD20", {**_SD2, "adm_in_channels": None}, "Stable Diffusion 2.x", "SD20", "SD21_768_v"),
    _c("SD21UnclipL", {**_SD2, "adm_in_channels": 1536}, "SD2.1 unCLIP-L"),
    _c("SD21UnclipH", {**_SD2, "adm_in_channels": 2048}, "SD2.1 unCLIP-H"),
    _c("SDXL_instructpix2pix", {"model_channels": 320, "use_linear_in_transformer": True, "transformer_depth": _D_XL,
                                "context_dim": 2048, "adm_in_channels": 2816, "use_temporal_attention": False,
                                "in_channels": 8}, "SDXL InstructPix2Pix"),
    _c("SDXLRefiner", {"model_channels": 384, "use_linear_in_transformer": True, "context_dim": 1280,
                       "adm_in_channels": 2560, "transformer_depth": [0, 0, 4, 4, 4, 4, 0, 0],
                       "use_temporal_attention": False}, "SDXL refiner", "SDXLRefiner"),
    _c("SDXL", {"model_channels": 320, "use_linear_in_transformer": True, "transformer_depth": _D_XL,
                "context_dim": 2048, "adm_in_channels": 2816, "use_temporal_attention": False}, "SDXL",
       "SDXL", "SDXL_v_pred", "PlaygroundV2_5"),
    _c("SSD1B", {"model_channels": 320, "use_linear_in_transformer": True, "transformer_depth": [0, 0, 2, 2, 4, 4],
                 "context_dim": 2048, "adm_in_channels": 2816, "use_temporal_attention": False}, "SSD-1B", "SSD1B"),
    _c("KOALA_700M", {"model_channels": 320, "use_linear_in_transformer": True, "transformer_depth": [0, 2, 5],
                      "context_dim": 2048, "adm_in_channels": 2816, "use_temporal_attention": False}, "KOALA 700M"),
    _c("KOALA_1B", {"model_channels": 320, "use_linear_in_transformer": True, "transformer_depth": [0, 2, 6],
                    "context_dim": 2048, "adm_in_channels": 2816, "use_temporal_attention": False}, "KOALA 1B"),
    _c("Segmind_Vega", {"model_channels": 320, "use_linear_in_transformer": True,
                        "transformer_depth": [0, 0, 1, 1, 2, 2], "context_dim": 2048, "adm_in_channels": 2816,
                        "use_temporal_attention": False}, "Segmind Vega"),
    _c("SD_X4Upscaler", {"context_dim": 1024, "model_channels": 256, "in_channels": 7,
                         "use_linear_in_transformer": True, "adm_in_channels": None, "use_temporal_attention": False},
       "SD x4 upscaler"),
    _c("Stable_Cascade_C", {"stable_cascade_stage": "c"}, "Stable Cascade stage C", "Stable_Cascade_C"),
    _c("Stable_Cascade_B", {"stable_cascade_stage": "b"}, "Stable Cascade stage B"),
    _c("SV3D_u", {**_SV3D, "adm_in_channels": 256}, "SV3D-u"),
    _c("SV3D_p", {**_SV3D, "adm_in_channels": 1280}, "SV3D-p"),
    _c("SD3", {"in_channels": 16, "pos_embed_scaling_factor": None}, "Stable Diffusion 3 / 3.5", "SD3", "SD35_large"),
    _c("StableAudio3", {"audio_model": "dit1.0", "global_cond_shared_embed": True}, "Stable Audio 3 (an audio model)"),
    _c("StableAudio", {"audio_model": "dit1.0"}, "Stable Audio (an audio model)"),
    _c("AuraFlow", {"cond_seq_dim": 2048}, "AuraFlow", "AuraFlow"),
    _c("PixArtAlpha", _im("pixart_alpha"), "PixArt-Alpha"),
    _c("PixArtSigma", _im("pixart_sigma"), "PixArt-Sigma"),
    _c("HunyuanDiT", _im("hydit"), "Hunyuan-DiT"),
    _c("HunyuanDiT1", _im("hydit1"), "Hunyuan-DiT 1.x"),
    _c("FluxInpaint", _im("flux", guidance_embed=True, in_channels=96), "FLUX.1 Fill (inpainting)", "FluxInpaint"),
    _c("Flux", _im("flux", guidance_embed=True), "FLUX.1 dev", "Flux"),
    _c("LongCatImage", _im("flux", guidance_embed=False, vec_in_dim=None, context_in_dim=3584, txt_ids_dims=[1, 2]),
       "LongCat-Image", "LongCatImage"),
    _c("FluxSchnell", _im("flux", guidance_embed=False), "FLUX.1 schnell", "FluxSchnell"),
    _c("GenmoMochi", _im("mochi_preview"), "Mochi", "GenmoMochi"),
    _c("LTXV", _im("ltxv"), "LTX-Video", "LTXV"),
    _c("LTXAV", _im("ltxav"), "LTX-2 (audio + video)", "LTXAV"),
    _c("MiniMaxH3", _im("minimax_h3"), "MiniMax H3 (audio + video)", "MiniMaxH3"),
    _c("HunyuanVideo15_SR_Distilled", _im("hunyuan_video", vision_in_dim=1152, in_channels=98),
       "HunyuanVideo 1.5 super-resolution (distilled)", "HunyuanVideo15_SR_Distilled"),
    _c("HunyuanVideo15", _im("hunyuan_video", vision_in_dim=1152), "HunyuanVideo 1.5", "HunyuanVideo15"),
    _c("HunyuanImage21Refiner", _im("hunyuan_video", patch_size=[1, 1, 1], vec_in_dim=None),
       "HunyuanImage 2.1 refiner"),
    _c("HunyuanImage21", _im("hunyuan_video", vec_in_dim=None), "HunyuanImage 2.1", "HunyuanImage21"),
    _c("HunyuanVideoSkyreelsI2V", _im("hunyuan_video", in_channels=32), "SkyReels HunyuanVideo image-to-video"),
    _c("HunyuanVideoI2V", _im("hunyuan_video", in_channels=33), "HunyuanVideo image-to-video"),
    _c("HunyuanVideo", _im("hunyuan_video"), "HunyuanVideo", "HunyuanVideo"),
    _c("CosmosT2V", _im("cosmos", in_channels=16), "Cosmos text-to-video"),
    _c("CosmosI2V", _im("cosmos", in_channels=17), "Cosmos image-to-video"),
    _c("CosmosT2IPredict2", _im("cosmos_predict2", in_channels=16), "Cosmos Predict2 text-to-image"),
    _c("CosmosI2VPredict2", _im("cosmos_predict2", in_channels=17), "Cosmos Predict2 image-to-video"),
    _c("ZImagePixelSpace", _im("zimage_pixel"), "Z-Image (pixel space)", "ZImagePixelSpace"),
    _c("ZImage", _im("lumina2", dim=3840), "Z-Image", "ZImage"),
    _c("PiD", _im("pid"), "PiD pixel diffusion decoder"),
    _c("PixelDiTT2I", _im("pixeldit_t2i"), "PixelDiT text-to-image (pixel space)", "PixelDiTT2I"),
    _c("Lumina2", _im("lumina2"), "Lumina Image 2.0", "Lumina2", "Lumina2_new_keys", "NewBie"),
    _c("WAN22_T2V", _wan("t2v", out_dim=48), "Wan 2.2 (48-channel latent)", "WAN22_T2V"),
    _c("WAN21_CausalAR_T2V", _wan("t2v", causal_ar=True), "Wan 2.1 causal/autoregressive text-to-video",
       "WAN21_CausalAR_T2V"),
    _c("WAN21_T2V", _wan("t2v"), "Wan 2.1 / 2.2 (16-channel latent)", "WAN21_T2V", "WAN22_I2V_A14B"),
    _c("WAN21_I2V", _wan("i2v", in_dim=36), "Wan 2.1 image-to-video", "WAN21_I2V"),
    _c("WAN21_FunControl2V", _wan("i2v", in_dim=48), "Wan Fun Control"),
    _c("WAN21_Vace", _wan("vace"), "Wan VACE", "WAN21_Vace"),
    _c("WAN21_Camera", _wan("camera", in_dim=32), "Wan 2.1 camera control"),
    _c("WAN22_Camera", _wan("camera_2.2", in_dim=36), "Wan 2.2 camera control"),
    _c("WAN22_S2V", _wan("s2v"), "Wan 2.2 speech-to-video"),
    _c("WAN21_HuMo", _wan("humo"), "Wan HuMo"),
    _c("WAN22_Animate", _wan("animate"), "Wan 2.2 Animate", "WAN22_Animate"),
    _c("WAN_Animate2", _wan("animate2"), "Wan Animate 2", "WAN_Animate2"),
    _c("WAN21_FlowRVS", _wan("flow_rvs"), "Wan FlowRVS"),
    _c("WAN21_SCAIL", _wan("scail"), "Wan SCAIL"),
    _c("WAN21_SCAIL2", _wan("scail2"), "Wan SCAIL 2"),
    _c("WAN22_WanDancer", _wan("wandancer", in_dim=36), "Wan 2.2 WanDancer"),
    _c("Hunyuan3Dv2mini", _im("hunyuan3d2", depth=8), "Hunyuan3D 2 mini (a 3D model)"),
    _c("Hunyuan3Dv2", _im("hunyuan3d2"), "Hunyuan3D 2 (a 3D model)"),
    _c("Hunyuan3Dv2_1", _im("hunyuan3d2_1"), "Hunyuan3D 2.1 (a 3D model)"),
    _c("TripoSplat", _im("triposplat"), "TripoSplat (a 3D model)"),
    _c("HiDream", _im("hidream"), "HiDream-I1", "HiDream"),
    _c("HiDreamO1", _im("hidream_o1"), "HiDream-O1 (pixel space)", "HiDreamO1"),
    _c("Chroma", _im("chroma"), "Chroma", "Chroma"),
    _c("SeedVR2", _im("seedvr2"), "SeedVR2 video restoration", "SeedVR2_3B",
       required=("{}positive_conditioning", "{}negative_conditioning")),
    _c("ChromaRadiance", _im("chroma_radiance"), "Chroma Radiance (pixel space)", "ChromaRadiance"),
    _c("ACEStep", {"audio_model": "ace"}, "ACE-Step (an audio model)"),
    _c("ACEStep15", {"audio_model": "ace1.5"}, "ACE-Step 1.5 (an audio model)"),
    _c("MiniMaxMusic3", {"audio_model": "minimax_music3"}, "MiniMax Music 3 (an audio model)"),
    _c("Omnigen2", _im("omnigen2"), "OmniGen2"),
    _c("Boogu", _im("boogu"), "Boogu-Image", "Boogu"),
    _c("MageFlow", _im("mage_flow"), "Mage-Flow", "MageFlow"),
    _c("QwenImage", _im("qwen_image"), "Qwen-Image", "QwenImage", "QwenImage_Edit_2511", "QwenImage_Layered"),
    _c("JoyImage", _im("joyimage"), "JoyImage", "JoyImage"),
    _c("Ideogram4", _im("ideogram4"), "Ideogram 4", "Ideogram4"),
    _c("Krea2", _im("krea2"), "Krea 2", "Krea2"),
    _c("Flux2", _im("flux2"), "FLUX.2", "Flux2", "Flux2_Klein_4B", "Flux2_Klein_9B"),
    _c("Lens", _im("lens"), "Lens", "Lens"),
    _c("Kandinsky5Image", _im("kandinsky5", model_dim=2560, visual_embed_dim=64), "Kandinsky 5.0 Image Lite",
       "Kandinsky5Image"),
    _c("Kandinsky5", _im("kandinsky5"), "Kandinsky 5.0 video", "Kandinsky5", "Kandinsky5_Pro"),
    _c("Anima", _im("anima"), "Anima", "Anima"),
    _c("RT_DETR_v4", _im("RT_DETR_v4"), "RT-DETR v4 (an object detector)"),
    _c("ErnieImage", _im("ernie"), "ERNIE-Image", "ErnieImage"),
    _c("SAM3", _im("SAM3"), "SAM 3 (a segmentation model)"),
    _c("SAM31", _im("SAM31"), "SAM 3.1 (a segmentation model)"),
    _c("CogVideoX_Inpaint", _im("cogvideox", in_channels=48), "CogVideoX inpainting"),
    _c("CogVideoX_I2V", _im("cogvideox", in_channels=32), "CogVideoX image-to-video"),
    _c("CogVideoX_T2V", _im("cogvideox"), "CogVideoX text-to-video", "CogVideoX_5B", "CogVideoX_2B"),
    _c("SVD_img2vid", {**_SV3D, "adm_in_channels": 768}, "Stable Video Diffusion", "SVD_img2vid"),
    _c("Trellis2", _im("trellis2"), "Trellis 2 (a 3D model)"),
    _c("DepthAnything3", _im("DepthAnything3"), "Depth Anything 3 (a depth estimator)"),
)

#: Configs that ComfyUI's detection returns but no class loads, and what they are.
NO_CLASS_LABELS = {"pixart_diffusers": "PixArt in diffusers layout (open its diffusers folder instead)"}


def _fits(want: dict, config: dict) -> bool:
    return all(k in config and config[k] == v for k, v in want.items())


def match_class(config: dict, has_key, prefix: str = "") -> Optional[ModelClass]:
    """The first class whose match dict is a subset of ``config`` (and whose required keys exist)."""
    for mc in MODEL_CLASSES:
        if _fits(mc.match, config) and all(has_key(k.format(prefix)) for k in mc.required_keys):
            return mc
    return None


def mismatches(mc: ModelClass, config: dict) -> list:
    """``key: want X, found Y`` for each match value of ``mc`` that ``config`` does not have."""
    out = []
    for k, v in mc.match.items():
        if k not in config:
            out.append(f"{k}: wants {v!r}, not read from the keys")
        elif config[k] != v:
            out.append(f"{k}: wants {v!r}, the keys give {config[k]!r}")
    return out


def nearest_classes(config: dict, limit: int = 3) -> list:
    """The classes of the same architecture (same image/audio model) that come closest to ``config``."""
    kind = [k for k in ("image_model", "audio_model", "stable_cascade_stage") if k in config]
    pool = [mc for mc in MODEL_CLASSES if all(mc.match.get(k, config[k]) == config[k] for k in kind)]
    if not kind:
        pool = [mc for mc in pool if not any(k in mc.match for k in ("image_model", "audio_model",
                                                                       "stable_cascade_stage"))]
    scored = sorted(pool, key=lambda mc: (len(mismatches(mc, config)), not mc.families))
    return [(mc, mismatches(mc, config)) for mc in scored[:limit] if mismatches(mc, config)]
