"""Architecture branches: which marker key announces which model, and the config read from its shapes.

Each ``Branch`` is one arm of ComfyUI's ``detect_unet_config``, in ComfyUI's order: a marker test
on the prefix-stripped keys, and a function that reads the configuration values ComfyUI's model
classes are matched on (``image_model``, ``in_channels``, ``guidance_embed``, ``out_dim``, ...).
Only the values that decide the class are read; nothing here loads weights.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .state_dict import KeyView
from .unet_config_ldm import IncompleteModel, need_shape, unet_config


@dataclass(frozen=True)
class Branch:
    name: str  # what the evidence calls it
    marker: str  # the key whose presence selects the branch (under the model prefix)
    config: Callable[[KeyView], dict]
    also: Callable[[KeyView], bool] = lambda v: True  # an extra condition, as ComfyUI has for Flux


def _fixed(**cfg) -> Callable[[KeyView], dict]:
    return lambda v: dict(cfg)


def _mmdit(v: KeyView) -> dict:
    w = need_shape(v, "x_embedder.proj.weight", 4)
    blocks = sorted(int(k.split(".")[1]) for k in v.shapes
                    if k.startswith("joint_blocks.") and k.endswith(".x_block.attn2.qkv.weight"))
    return {"in_channels": w[1], "patch_size": w[2], "depth": w[0] // 64, "pos_embed_scaling_factor": None,
            "qk_norm": "rms" if v.has("joint_blocks.0.context_block.attn.ln_q.weight") else None,
            "x_block_self_attn_layers": blocks}


def _cascade(v: KeyView) -> dict:
    if v.has("clip_txt_mapper.weight"):
        return {"stable_cascade_stage": "c", "c_cond": need_shape(v, "clip_txt_mapper.weight")[0]}
    if v.has("clip_mapper.weight"):
        return {"stable_cascade_stage": "b"}
    return {}


def _auraflow(v: KeyView) -> dict:
    doubles = v.count_blocks("double_layers.{}.")
    return {"max_seq": need_shape(v, "positional_encoding", 3)[1],
            "cond_seq_dim": need_shape(v, "cond_seq_linear.weight", 2)[1],
            "n_double_layers": doubles, "n_layers": doubles + v.count_blocks("single_layers.{}.")}


def _hunyuan_dit(v: KeyView) -> dict:
    extra = v.shape("extra_embedder.0.weight")
    return {"image_model": "hydit1" if extra and len(extra) == 2 and extra[1] == 3968 else "hydit"}


def _hunyuan_video(v: KeyView) -> dict:
    w = v.shape("img_in.proj.weight")
    if w is None or len(w) < 4:
        raise IncompleteModel("`img_in.proj.weight` is missing or not a convolution")
    need_shape(v, "final_layer.linear.weight", 2)
    return {"image_model": "hunyuan_video", "in_channels": w[1], "patch_size": list(w[2:]),
            "vec_in_dim": 768 if v.has_under("vector_in.") else None,
            "context_in_dim": need_shape(v, "txt_in.input_embedder.weight", 2)[1],
            "hidden_size": w[0], "guidance_embed": v.has_under("guidance_in.")}


def _flux_like(v: KeyView) -> bool:
    return (v.has("img_in.weight") or v.has("distilled_guidance_layer.norms.0.scale")
            or v.has("distilled_guidance_layer.0.norms.0.scale"))


def _flux(v: KeyView) -> dict:
    if v.has("nerf_blocks.0.norm.scale"):
        model = "chroma_radiance"
    elif v.has_under("distilled_guidance_layer."):
        model = "chroma"
    else:
        model = "flux"
    cfg = {"image_model": model, "guidance_embed": v.has("guidance_in.in_layer.weight"),
           "depth": v.count_blocks("double_blocks.{}."), "depth_single_blocks": v.count_blocks("single_blocks.{}.")}
    if v.has("img_in.weight"):
        cfg["in_channels"] = need_shape(v, "img_in.weight", 2)[1] // 4
    elif model == "flux":
        cfg["in_channels"] = 16
    return cfg


def _ltxv(v: KeyView) -> dict:
    if v.has("pos_embed.proj.bias"):
        return {"image_model": "pixart_diffusers"}
    return {"image_model": "ltxv", "cross_attention_dim": need_shape(v, "transformer_blocks.0.attn2.to_k.weight", 2)[1],
            "num_layers": v.count_blocks("transformer_blocks.{}.")}


def _lumina2(v: KeyView) -> dict:
    return {"image_model": "lumina2", "cap_feat_dim": need_shape(v, "cap_embedder.1.weight", 2)[1]}


_WAN_TYPES = (  # (marker key, model_type), checked in this order; none of them -> i2v/t2v by img_emb
    ("vace_patch_embedding.weight", "vace"),
    ("control_adapter.conv.weight", "camera"),
    ("casual_audio_encoder.encoder.final_linear.weight", "s2v"),
    ("audio_proj.audio_proj_glob_1.layer.weight", "humo"),
    ("face_adapter.fuser_blocks.0.k_norm.weight", "animate"),
)


def _wan_type(v: KeyView) -> str:
    for key, model_type in _WAN_TYPES:
        if v.has(key):
            if model_type == "camera" and not v.has("img_emb.proj.0.bias"):
                return "camera_2.2"
            return model_type
    return "i2v" if v.has("img_emb.proj.0.bias") else "t2v"


def _wan(v: KeyView) -> dict:
    dim = need_shape(v, "head.modulation")[-1]
    return {"image_model": "wan2.1", "dim": dim, "out_dim": need_shape(v, "head.head.weight", 2)[0] // 4,
            "ffn_dim": need_shape(v, "blocks.0.ffn.0.weight", 2)[0],
            "in_dim": need_shape(v, "patch_embedding.weight", 5)[1],
            "num_layers": v.count_blocks("blocks.{}."), "model_type": _wan_type(v)}


def _qwen(v: KeyView) -> dict:
    return {"image_model": "qwen_image", "in_channels": need_shape(v, "img_in.weight", 2)[1]}


#: ComfyUI's detect_unet_config, in its order of tests.
BRANCHES = (
    Branch("MMDiT (`joint_blocks.*`)", "joint_blocks.0.context_block.attn.qkv.weight", _mmdit),
    Branch("Stable Cascade (`clf.*`)", "clf.1.weight", _cascade),
    Branch("Stable Audio DiT", "transformer.rotary_pos_emb.inv_freq", _fixed(audio_model="dit1.0")),
    Branch("AuraFlow DiT (`double_layers.*`)", "double_layers.0.attn.w1q.weight", _auraflow),
    Branch("Hunyuan DiT (`mlp_t5.*`)", "mlp_t5.0.weight", _hunyuan_dit),
    Branch("HunyuanVideo DiT (`txt_in.individual_token_refiner.*`)",
           "txt_in.individual_token_refiner.blocks.0.norm1.weight", _hunyuan_video),
    Branch("Flux DiT (`double_blocks.*`)", "double_blocks.0.img_attn.norm.key_norm.scale", _flux, _flux_like),
    Branch("Mochi DiT (`t5_yproj.*`)", "t5_yproj.weight", _fixed(image_model="mochi_preview")),
    Branch("LTX-Video DiT (`adaln_single.*`)", "adaln_single.emb.timestep_embedder.linear_1.bias", _ltxv),
    Branch("PixArt DiT (`t_block.*`)", "t_block.1.weight", _fixed(image_model="pixart")),
    Branch("Hunyuan3D DiT (`latent_in.*`)", "latent_in.weight", _fixed(image_model="hunyuan3d2")),
    Branch("Cosmos DiT", "blocks.block0.blocks.0.block.attn.to_q.0.weight", _fixed(image_model="cosmos")),
    Branch("Cosmos Predict2 DiT", "blocks.0.mlp.layer1.weight", _fixed(image_model="cosmos_predict2")),
    Branch("Lumina 2 DiT (`cap_embedder.*`)", "cap_embedder.1.weight", _lumina2),
    Branch("Wan DiT (`head.modulation`)", "head.modulation", _wan),
    Branch("HiDream DiT (`caption_projection.*`)", "caption_projection.0.linear.weight", _fixed(image_model="hidream")),
    Branch("ACE-Step (`genre_embedder.*`)", "genre_embedder.weight", _fixed(audio_model="ace")),
    Branch("OmniGen2 DiT", "time_caption_embed.timestep_embedder.linear_2.weight", _fixed(image_model="omnigen2")),
    Branch("Qwen-Image DiT (`txt_norm.*`)", "txt_norm.weight", _qwen),
    Branch("LDM UNet (`input_blocks.*`)", "input_blocks.0.0.weight", unet_config),
)


def find_branch(view: KeyView):
    """The first branch whose marker (and extra condition) the keys satisfy, or None."""
    for branch in BRANCHES:
        if view.has(branch.marker) and branch.also(view):
            return branch
    return None
