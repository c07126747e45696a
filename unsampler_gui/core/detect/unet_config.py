"""Architecture branches: which keys announce which network, and the config read from their shapes.

Each ``Branch`` is one arm of ComfyUI's ``detect_unet_config`` (master 783545f6), in ComfyUI's
order: the keys whose presence selects it (``markers``, all needed; ``also`` for the few arms that
test more than presence), and a function that reads the configuration values ComfyUI's model
classes are matched on (``image_model``, ``in_channels``, ``guidance_embed``, ``model_type``, ...).
Only values that decide the class (or that our fit checks and variant rules use) are read; nothing
here loads weights. A tensor that ComfyUI's arm needs but that is missing raises ``IncompleteModel``.
Three arms (Wan, LTX, MiniMax H3) let the file's ``__metadata__["config"]["transformer"]`` update
the config, as ComfyUI does (``reads_metadata``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from .state_dict import KeyView
from .unet_config_ldm import IncompleteModel, need_shape, unet_config


@dataclass(frozen=True)
class Branch:
    name: str  # what the evidence calls it
    markers: tuple  # keys (under the model prefix) that must all be present
    config: Callable[[KeyView], dict]
    also: Callable[[KeyView], bool] = lambda v: True  # an extra condition on shapes or alternative keys
    reads_metadata: bool = False  # ComfyUI updates the config from __metadata__["config"]["transformer"]
    absolute: bool = False  # markers are full key names (ComfyUI's SAM3 arm ignores the prefix)

    @property
    def marker(self) -> str:
        return self.markers[0]


def _fixed(**cfg) -> Callable[[KeyView], dict]:
    return lambda v: dict(cfg)


def _any(v: KeyView, stem: str, suffixes=("weight", "scale")) -> bool:
    """ComfyUI's ``any_suffix_in``: ``stem + suffix`` exists for one of the suffixes."""
    return any(v.has(stem + s) for s in suffixes)


def _rows(v: KeyView, key: str, ndim: Optional[int] = None) -> int:
    return need_shape(v, key, ndim)[0]


def _cols(v: KeyView, key: str) -> int:
    shape = need_shape(v, key)
    if len(shape) < 2:
        raise IncompleteModel(f"`{key}` has shape {list(shape)}, expected at least 2 dimensions")
    return shape[1]


# ----------------------------------------------------------------------------- the arms, in order

def _mmdit(v: KeyView) -> dict:
    w = need_shape(v, "x_embedder.proj.weight", 4)
    blocks = sorted(int(k.split(".")[1]) for k in v.shapes
                    if k.startswith("joint_blocks.") and k.endswith(".x_block.attn2.qkv.weight"))
    cfg = {"in_channels": w[1], "patch_size": w[2], "depth": w[0] // 64, "pos_embed_scaling_factor": None,
           "qk_norm": "rms" if v.has("joint_blocks.0.context_block.attn.ln_q.weight") else None,
           "x_block_self_attn_layers": blocks}
    final = v.shape("final_layer.linear.weight")
    if final and w[2]:
        cfg["out_channels"] = final[0] // (w[2] * w[2])
    return cfg


def _cascade(v: KeyView) -> dict:
    if v.has("clip_txt_mapper.weight"):
        return {"stable_cascade_stage": "c", "c_cond": _rows(v, "clip_txt_mapper.weight")}
    if v.has("clip_mapper.weight"):
        need_shape(v, "down_blocks.1.0.channelwise.0.weight")
        return {"stable_cascade_stage": "b"}
    return {}


def _trellis(v: KeyView) -> dict:
    return {"image_model": "trellis2"}


def _stable_audio(v: KeyView) -> dict:
    for key in ("to_global_embed.0.weight", "to_cond_embed.0.weight", "to_timestep_embed.0.weight",
                "postprocess_conv.weight", "transformer.project_in.weight"):
        need_shape(v, key)
    return {"audio_model": "dit1.0", "global_cond_shared_embed": v.has("transformer.global_cond_embedder.0.weight")
            or None}


def _auraflow(v: KeyView) -> dict:
    doubles = v.count_blocks("double_layers.{}.")
    return {"max_seq": need_shape(v, "positional_encoding", 3)[1],
            "cond_seq_dim": need_shape(v, "cond_seq_linear.weight", 2)[1],
            "n_double_layers": doubles, "n_layers": doubles + v.count_blocks("single_layers.{}.")}


def _hunyuan_dit(v: KeyView) -> dict:
    need_shape(v, "x_embedder.proj.weight")
    extra = need_shape(v, "extra_embedder.0.weight", 2)
    return {"image_model": "hydit1" if extra[1] == 3968 else "hydit"}


def _prod(xs) -> int:
    out = 1
    for x in xs:
        out *= x
    return out


def _hunyuan_video(v: KeyView) -> dict:
    w = v.shape("img_in.proj.weight")
    if w is None or len(w) < 4:
        raise IncompleteModel("`img_in.proj.weight` is missing or not a convolution")
    patch = list(w[2:])
    out = need_shape(v, "final_layer.linear.weight", 2)
    vision = v.shape("vision_in.proj.0.weight")
    return {"image_model": "hunyuan_video", "in_channels": w[1], "patch_size": patch,
            "out_channels": out[0] // max(1, _prod(patch)),
            "vec_in_dim": 768 if v.has_under("vector_in.") else None,
            "meanflow": v.has_under("time_r_in."),
            "context_in_dim": need_shape(v, "txt_in.input_embedder.weight", 2)[1],
            "hidden_size": w[0], "depth": v.count_blocks("double_blocks.{}."),
            "depth_single_blocks": v.count_blocks("single_blocks.{}."),
            "byt5": v.has("byt5_in.fc1.weight"), "guidance_embed": v.has_under("guidance_in."),
            "use_cond_type_embedding": v.has("cond_type_embedding.weight"),
            "vision_in_dim": vision[0] if vision else None}


def _flux_like(v: KeyView) -> bool:
    return _any(v, "double_blocks.0.img_attn.norm.key_norm.") and (
        v.has("img_in.weight") or _any(v, "distilled_guidance_layer.norms.0."))


def _flux(v: KeyView) -> dict:
    flux2 = v.has("double_stream_modulation_img.lin.weight")
    patch = 1 if flux2 else 2
    cfg = {"image_model": "flux2" if flux2 else "flux", "patch_size": patch, "in_channels": 16,
           "hidden_size": 3072, "context_in_dim": 4096, "out_channels": 128 if flux2 else 16,
           "txt_ids_dims": [3] if flux2 else []}
    if v.has("img_in.weight"):
        w = need_shape(v, "img_in.weight", 2)
        cfg["in_channels"], cfg["hidden_size"] = w[1] // (patch * patch), w[0]
    if v.has("txt_in.weight"):
        w = need_shape(v, "txt_in.weight", 2)
        cfg["context_in_dim"], cfg["hidden_size"] = w[1], w[0]
    vec = v.shape("vector_in.in_layer.weight")
    cfg["vec_in_dim"] = vec[1] if vec and len(vec) == 2 else None
    cfg["depth"] = v.count_blocks("double_blocks.{}.")
    cfg["depth_single_blocks"] = v.count_blocks("single_blocks.{}.")
    if _any(v, "distilled_guidance_layer.0.norms.0.") or _any(v, "distilled_guidance_layer.norms.0."):
        cfg.update(image_model="chroma", in_channels=64, out_channels=64)
        if _any(v, "nerf_blocks.0.norm."):
            patch_w = v.shape("img_in_patch.weight")
            if not patch_w:
                raise IncompleteModel("`img_in_patch.weight` is missing (Chroma Radiance needs it)")
            cfg.update(image_model="chroma_radiance", in_channels=3, out_channels=3, patch_size=patch_w[-1])
    else:
        cfg["guidance_embed"] = v.has("guidance_in.in_layer.weight")
        cfg["yak_mlp"] = v.has("double_blocks.0.img_mlp.gate_proj.weight")
        cfg["txt_norm"] = _any(v, "txt_norm.")
        if (cfg["yak_mlp"] and cfg["txt_norm"]) or (cfg["context_in_dim"] == 3584 and cfg["vec_in_dim"] is None):
            cfg["txt_ids_dims"] = [1, 2]
    return cfg


def _minimax_h3(v: KeyView) -> dict:
    for key in ("final_layer.video_out.weight", "final_layer.audio_out.weight", "blocks.0.attn.q_norm.weight",
                "blocks.0.attn.qkv_proj.weight", "blocks.0.mlp.fc1.weight", "condition_proj.weight", "rope.inv_freq"):
        need_shape(v, key)
    return {"image_model": "minimax_h3", "num_layers": v.count_blocks("blocks.{}."),
            "hidden_size": _rows(v, "video_patch_proj.weight"),
            "latents_dim": _rows(v, "final_layer.video_out.weight") // 4}


def _ltx(v: KeyView) -> dict:
    k = need_shape(v, "transformer_blocks.0.attn2.to_k.weight", 2)
    return {"image_model": "ltxav" if v.has("audio_adaln_single.linear.weight") else "ltxv",
            "num_layers": v.count_blocks("transformer_blocks.{}."), "attention_head_dim": k[0] // 32,
            "cross_attention_dim": k[1]}


def _pixart(v: KeyView) -> dict:
    return {"image_model": "pixart_alpha" if v.has("ar_embedder.mlp.0.weight") else "pixart_sigma"}


def _cosmos(v: KeyView) -> dict:
    return {"image_model": "cosmos", "in_channels": _cols(v, "x_embedder.proj.1.weight") // 4 - 1,
            "model_channels": _rows(v, "blocks.block0.blocks.0.block.attn.to_q.0.weight")}


def _lumina2(v: KeyView) -> dict:
    w = need_shape(v, "cap_embedder.1.weight", 2)
    cfg = {"image_model": "lumina2", "patch_size": 2, "in_channels": 16, "dim": w[0], "cap_feat_dim": w[1],
           "n_layers": v.count_blocks("layers.{}.")}
    if w[0] == 2304:
        clip = v.shape("clip_text_pooled_proj.0.weight")
        if clip:
            cfg["clip_text_dim"] = clip[0]
    elif w[0] == 3840 and v.has("dec_net.cond_embed.weight"):
        x_in = _cols(v, "x_embedder.weight")
        need_shape(v, "dec_net.final_layer.linear.weight")
        need_shape(v, "dec_net.input_embedder.embedder.0.weight")
        cfg.update(image_model="zimage_pixel", in_channels=3, patch_size=round((x_in / 3) ** 0.5))
    return cfg


def _cogvideox(v: KeyView) -> dict:
    norm1 = need_shape(v, "blocks.0.norm1.linear.weight", 2)
    cfg = {"image_model": "cogvideox", "num_attention_heads": norm1[0] // 6 // 64, "time_embed_dim": norm1[1],
           "num_layers": v.count_blocks("blocks.{}.")}
    w = v.shape("patch_embed.proj.weight")
    if w and len(w) == 4:
        cfg["in_channels"], cfg["patch_size"] = w[1], w[2]
    elif w and len(w) == 2:
        cfg["in_channels"], cfg["patch_size"], cfg["patch_size_t"] = w[1] // 8, 2, 2
    return cfg


def _seedvr2_7b_separate(v: KeyView) -> bool:
    shape = v.shape("blocks.35.mlp.vid.proj_out.weight")
    return bool(shape) and shape[0] == 3072


_WAN_TYPES = (  # (marker key, model_type), in ComfyUI's order; none of them -> i2v/t2v by img_emb
    ("vace_patch_embedding.weight", "vace"),
    ("control_adapter.conv.weight", "camera"),
    ("casual_audio_encoder.encoder.final_linear.weight", "s2v"),
    ("audio_proj.audio_proj_glob_1.layer.bias", "humo"),
    ("face_adapter.fuser_blocks.0.k_norm.weight", "animate"),
    ("patch_embedding_mask.weight", "scail2"),
    ("patch_embedding_pose.weight", "scail"),
    ("patch_embedding_global.weight", "wandancer"),
)


def _wan_type(v: KeyView) -> str:
    for key, model_type in _WAN_TYPES:
        if v.has(key):
            if model_type == "camera" and not v.has("img_emb.proj.0.bias"):
                return "camera_2.2"
            return model_type
    return "i2v" if v.has("img_emb.proj.0.bias") else "t2v"


def _wan(v: KeyView) -> dict:
    return {"image_model": "wan2.1", "dim": need_shape(v, "head.modulation")[-1],
            "out_dim": need_shape(v, "head.head.weight", 2)[0] // 4,
            "ffn_dim": need_shape(v, "blocks.0.ffn.0.weight", 2)[0],
            "in_dim": need_shape(v, "patch_embedding.weight", 5)[1],
            "num_layers": v.count_blocks("blocks.{}."), "model_type": _wan_type(v)}


def _hunyuan3d(v: KeyView) -> dict:
    need_shape(v, "cond_in.weight")
    return {"image_model": "hunyuan3d2", "depth": v.count_blocks("double_blocks.{}.")}


def _cosmos_predict2(v: KeyView) -> dict:
    w = need_shape(v, "x_embedder.proj.1.weight", 2)
    anima = v.has("llm_adapter.blocks.0.cross_attn.q_proj.weight")
    return {"image_model": "anima" if anima else "cosmos_predict2", "in_channels": w[1] // 4 - 1,
            "model_channels": w[0], "num_blocks": v.count_blocks("blocks.{}.")}


def _boogu(v: KeyView) -> dict:
    return {"image_model": "boogu", "hidden_size": _rows(v, "x_embedder.weight"),
            "instruction_feat_dim": _rows(v, "time_caption_embed.caption_embedder.0.weight")}


def _lens(v: KeyView) -> dict:
    img_in = need_shape(v, "img_in.weight", 2)
    multi = v.has("txt_norm.0.weight")
    enc = _rows(v, "txt_norm.0.weight" if multi else "txt_norm.weight")
    return {"image_model": "lens", "in_channels": img_in[1], "out_channels": _rows(v, "proj_out.weight") // 4,
            "num_layers": v.count_blocks("transformer_blocks.{}."), "enc_hidden_dim": enc,
            "multi_layer_encoder_feature": multi}


def _mage_flow_shapes(v: KeyView) -> bool:
    txt, out = v.shape("txt_norm.weight"), v.shape("proj_out.weight")
    return bool(txt) and bool(out) and txt[0] == 2560 and out[0] == 128


def _qwen(v: KeyView) -> dict:
    cfg = {"image_model": "qwen_image", "in_channels": _cols(v, "img_in.weight"),
           "num_layers": v.count_blocks("transformer_blocks.{}.")}
    if v.has("__index_timestep_zero__"):
        cfg["default_ref_method"] = "index_timestep_zero"
    if v.has("time_text_embed.addition_t_embedding.weight"):
        cfg.update(use_additional_t_cond=True, default_ref_method="negative_index")
    return cfg


def _ideogram4(v: KeyView) -> dict:
    return {"image_model": "ideogram4", "in_channels": _cols(v, "input_proj.weight"),
            "num_layers": v.count_blocks("layers.{}.")}


def _krea2(v: KeyView) -> dict:
    first = need_shape(v, "first.weight", 2)
    for key in ("blocks.0.attn.wq.weight", "blocks.0.attn.wk.weight", "txtfusion.layerwise_blocks.0.prenorm.scale"):
        need_shape(v, key)
    return {"image_model": "krea2", "features": first[0], "channels": first[1] // 4,
            "layers": v.count_blocks("blocks.{}.")}


def _kandinsky5(v: KeyView) -> dict:
    need_shape(v, "time_embeddings.in_layer.bias")
    need_shape(v, "visual_transformer_blocks.0.feed_forward.in_layer.weight")
    return {"image_model": "kandinsky5", "model_dim": _rows(v, "visual_embeddings.in_layer.bias"),
            "visual_embed_dim": _cols(v, "visual_embeddings.in_layer.weight"),
            "num_visual_blocks": v.count_blocks("visual_transformer_blocks.{}.")}


_DA3_WIDTHS = (384, 768, 1024, 1536)


def _depth_anything(v: KeyView) -> dict:
    if _rows(v, "backbone.embeddings.patch_embeddings.projection.weight") not in _DA3_WIDTHS:
        return {}  # ComfyUI returns no config: not a model it can load
    return {"image_model": "DepthAnything3"}


def _sam3(v: KeyView) -> dict:
    extra = "detector.backbone.vision_backbone.propagation_convs.0.conv_1x1.weight"
    return {"image_model": "SAM31" if extra in v.index.shapes else "SAM3"}


def _joyimage_shape(v: KeyView) -> bool:
    w = v.shape("img_in.weight")
    return bool(w) and len(w) == 5


def _joyimage(v: KeyView) -> dict:
    w = need_shape(v, "img_in.weight", 5)
    return {"image_model": "joyimage", "in_channels": w[1], "hidden_size": w[0], "patch_size": list(w[2:]),
            "num_layers": v.count_blocks("double_blocks.{}.")}


def _old_lumina2(v: KeyView) -> bool:
    w = v.shape("cap_embedder.1.weight")
    return bool(w) and w[0] == 2304 and not v.has_under("layers.") and not v.has_under("noise_refiner.")


_SAM3_KEYS = ("detector.backbone.vision_backbone.trunk.blocks.0.attn.qkv.weight",
              "detector.transformer.decoder.query_embed.weight")

#: ComfyUI's detect_unet_config, in its order of tests.
BRANCHES = (
    Branch("MiniMax Music 3 (an audio model)", ("cond_layer_logits", "latent_conditioners.0.weight",
           "diffusion_transformer.transformer.layers.0.self_attn.to_qkv.weight"),
           _fixed(audio_model="minimax_music3")),
    Branch("MMDiT (`joint_blocks.*`)", ("joint_blocks.0.context_block.attn.qkv.weight",), _mmdit),
    Branch("Stable Cascade (`clf.*`)", ("clf.1.weight",), _cascade),
    Branch("Trellis 2 (a 3D model)", ("img2shape.t_embedder.mlp.0.weight",), _trellis),
    Branch("Trellis 2 (a 3D model)", ("shape2txt.t_embedder.mlp.0.weight",), _trellis),
    Branch("Stable Audio DiT", ("transformer.rotary_pos_emb.inv_freq",), _stable_audio),
    Branch("AuraFlow DiT (`double_layers.*`)", ("double_layers.0.attn.w1q.weight",), _auraflow),
    Branch("Hunyuan DiT (`mlp_t5.*`)", ("mlp_t5.0.weight",), _hunyuan_dit),
    Branch("HunyuanVideo DiT (`txt_in.individual_token_refiner.*`)",
           ("txt_in.individual_token_refiner.blocks.0.norm1.weight",), _hunyuan_video),
    Branch("Flux DiT (`double_blocks.*`)", ("double_blocks.0.img_attn.norm.key_norm.",), _flux, _flux_like),
    Branch("Mochi DiT (`t5_yproj.*`)", ("t5_yproj.weight",), _fixed(image_model="mochi_preview")),
    Branch("PixArt DiT in diffusers layout", ("adaln_single.emb.timestep_embedder.linear_1.bias",
           "pos_embed.proj.bias"), _fixed(image_model="pixart_diffusers")),
    Branch("MiniMax H3 DiT (`video_patch_proj`/`audio_patch_proj`)",
           ("video_patch_proj.weight", "audio_patch_proj.weight"), _minimax_h3, reads_metadata=True),
    Branch("LTX DiT (`adaln_single.*`)", ("adaln_single.emb.timestep_embedder.linear_1.bias",), _ltx,
           reads_metadata=True),
    Branch("ACE-Step (`genre_embedder.*`)", ("genre_embedder.weight",), _fixed(audio_model="ace")),
    Branch("PixArt DiT (`t_block.*`)", ("t_block.1.weight",), _pixart),
    Branch("Cosmos DiT", ("blocks.block0.blocks.0.block.attn.to_q.0.weight",), _cosmos),
    Branch("PiD pixel decoder (`lq_proj.*`)", ("lq_proj.latent_proj.0.weight",), _fixed(image_model="pid")),
    Branch("PixelDiT (`core.pixel_embedder.*`)", ("core.pixel_embedder.proj.weight",),
           _fixed(image_model="pixeldit_t2i")),
    Branch("Lumina 2 / Z-Image DiT (`cap_embedder.*`)", ("cap_embedder.1.weight",
           "noise_refiner.0.attention.k_norm.weight"), _lumina2),
    Branch("CogVideoX DiT (`blocks.0.norm1.linear`)", ("blocks.0.norm1.linear.weight",), _cogvideox),
    Branch("SeedVR2 7B DiT", ("blocks.35.mlp.vid.proj_out.weight",), _fixed(image_model="seedvr2", vid_dim=3072),
           _seedvr2_7b_separate),
    Branch("SeedVR2 7B DiT", ("blocks.35.mlp.all.proj_in_gate.weight",), _fixed(image_model="seedvr2", vid_dim=3072)),
    Branch("SeedVR2 3B DiT", ("blocks.31.mlp.all.proj_in_gate.weight",), _fixed(image_model="seedvr2", vid_dim=2560)),
    Branch("Wan DiT (`head.modulation`)", ("head.modulation",), _wan, reads_metadata=True),
    Branch("Hunyuan3D 2 DiT (`latent_in.*`)", ("latent_in.weight",), _hunyuan3d),
    Branch("Hunyuan3D 2.1 DiT", ("t_embedder.mlp.2.weight", "blocks.0.attn1.k_norm.weight"),
           _fixed(image_model="hunyuan3d2_1")),
    Branch("TripoSplat (a 3D model)", ("cam_out_layer.weight", "repo_layers.0.final_map.weight"),
           _fixed(image_model="triposplat")),
    Branch("HiDream-O1 (`t_embedder1.*`)", ("t_embedder1.mlp.0.weight", "x_embedder.proj1.weight"),
           _fixed(image_model="hidream_o1")),
    Branch("HiDream DiT (`caption_projection.*`)", ("caption_projection.0.linear.weight",), _fixed(image_model="hidream")),
    Branch("Cosmos Predict2 / Anima DiT (`blocks.0.mlp.layer1`)", ("blocks.0.mlp.layer1.weight",), _cosmos_predict2),
    Branch("Boogu-Image DiT (`double_stream_layers.*`)",
           ("double_stream_layers.0.img_instruct_attn.processor.img_to_q.weight",), _boogu),
    Branch("OmniGen2 DiT", ("time_caption_embed.timestep_embedder.linear_1.bias",), _fixed(image_model="omnigen2")),
    Branch("Lens DiT (`img_mlp.w1`)", ("transformer_blocks.0.attn.norm_added_q.weight",
           "transformer_blocks.0.img_mlp.w1.weight"), _lens),
    Branch("Mage-Flow DiT (`txt_norm` 2560, `proj_out` 128)", ("txt_norm.weight", "proj_out.weight"),
           _fixed(image_model="mage_flow"), _mage_flow_shapes),
    Branch("Qwen-Image DiT (`txt_norm.*`)", ("txt_norm.weight",), _qwen),
    Branch("Ideogram 4 DiT (`embed_image_indicator`)", ("embed_image_indicator.weight",), _ideogram4),
    Branch("Krea 2 DiT (`txtfusion.*`)", ("txtfusion.projector.weight",), _krea2),
    Branch("Kandinsky 5 DiT (`visual_transformer_blocks.*`)",
           ("visual_transformer_blocks.0.cross_attention.key_norm.weight",), _kandinsky5),
    Branch("ACE-Step 1.5 (an audio model)", ("encoder.lyric_encoder.layers.0.input_layernorm.weight",),
           _fixed(audio_model="ace1.5")),
    Branch("RT-DETR v4 (an object detector)", ("encoder.pan_blocks.1.cv4.conv.weight",),
           _fixed(image_model="RT_DETR_v4")),
    Branch("Depth Anything 3 (a depth estimator)", ("backbone.embeddings.patch_embeddings.projection.weight",),
           _depth_anything),
    Branch("ERNIE-Image DiT (`layers.0.mlp.linear_fc2`)", ("layers.0.mlp.linear_fc2.weight",),
           _fixed(image_model="ernie")),
    Branch("SAM 3 (a segmentation model)", _SAM3_KEYS, _sam3, absolute=True),
    Branch("JoyImage DiT", ("double_blocks.0.attn.img_attn_qkv.weight", "double_blocks.0.attn.img_attn_q_norm.weight",
           "condition_embedder.time_embedder.linear_1.weight", "img_in.weight"), _joyimage, _joyimage_shape),
    Branch("LDM UNet (`input_blocks.*`)", ("input_blocks.0.0.weight",), unet_config),
    # Not an arm of master: its Lumina 2 arm also needs `noise_refiner.0.attention.k_norm.weight`, which every
    # released Lumina 2 checkpoint has. A file with the older rule's key alone (a125cd84) is still read as
    # Lumina 2 when its width is Lumina 2's, and never when it is a whole network.
    Branch("Lumina 2 DiT, older rule (`cap_embedder.1.weight` without `noise_refiner.0.attention.k_norm.weight`)",
           ("cap_embedder.1.weight",), _lumina2, _old_lumina2),
)


def _present(view: KeyView, branch: Branch, key: str) -> bool:
    if branch.absolute:
        return key in view.index.shapes
    if key.endswith("."):  # a stem tested with ComfyUI's any_suffix_in
        return _any(view, key)
    return view.has(key)


def find_branch(view: KeyView):
    """The first branch whose markers (and extra condition) the keys satisfy, or None."""
    for branch in BRANCHES:
        if all(_present(view, branch, k) for k in branch.markers) and branch.also(view):
            return branch
    return None


def near_misses(view: KeyView) -> list:
    """Branches of which some but not all markers are present: ``(branch, present, missing)``."""
    out = []
    for branch in BRANCHES:
        if len(branch.markers) < 2:
            continue
        have = [k for k in branch.markers if _present(view, branch, k)]
        if have and len(have) < len(branch.markers):
            out.append((branch, have, [k for k in branch.markers if k not in have]))
    return out
