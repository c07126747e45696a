"""Our checks beyond ComfyUI's rules: do the keys fit the family ComfyUI's rules chose, exactly?

ComfyUI's detection tests one marker key per feature (``guidance_in.in_layer.weight`` for Flux
guidance, ``img_emb.proj.0.bias`` for Wan image-to-video, ...). A file that has the rest of a
feature but not its marker, or the marker alone where a whole network is present, is read as a
neighbour by those rules; loading it would then fail in ComfyUI, and its schedule may be another
family's. So, for every branch:

- **features**: each marker ComfyUI tests comes with the stems of its module. A stem present
  without the marker is a feature the rules did not see (refused); on a whole network (the
  branch's ``probe`` key, which every real network has and ComfyUI never reads, is present), the
  marker must come with its ``companions``, the module's other keys;
- **latent channels**: where the keys give the network's output (and input) channel count in
  latent units, the output must be the family's latent channel count, and the input at least that
  (inputs add conditioning channels, never fewer than the latent).

``check_fit`` raises a refusal naming what did not fit; it returns the evidence lines otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from .refusal import refuse
from .state_dict import KeyView


@dataclass(frozen=True)
class Feature:
    name: str
    markers: tuple  # ComfyUI tests one of these
    stems: tuple  # key prefixes of the feature's module
    companions: tuple = ()  # keys every real network with the feature has
    means: str = ""  # what ComfyUI makes of the marker (for messages)


@dataclass(frozen=True)
class BranchFit:
    probe: Optional[str]  # a key every whole network of this branch has (None: no completeness test)
    features: tuple = ()
    channels: Optional[Callable[[KeyView, dict], tuple]] = None  # (in, out) in latent channels, None = unknown
    structure: tuple = ()  # config keys a whole network must share with the family's own config


def _div(shape: Optional[tuple], axis: int, by: int) -> Optional[int]:
    if not shape or len(shape) <= axis or by <= 0:
        return None
    return shape[axis] // by


def _flux_channels(v: KeyView, cfg: dict) -> tuple:
    if cfg.get("image_model") == "chroma_radiance":
        return None, None
    p2 = cfg.get("patch_size", 2) ** 2
    return _div(v.shape("img_in.weight"), 1, p2), _div(v.shape("final_layer.linear.weight"), 0, p2)


def _io(in_key: Optional[str], in_axis: int, in_div: int, out_key: Optional[str], out_div: int):
    def read(v: KeyView, cfg: dict) -> tuple:
        return (_div(v.shape(in_key), in_axis, in_div) if in_key else None,
                _div(v.shape(out_key), 0, out_div) if out_key else None)
    return read


def _cfg_io(in_key: str, out_key: str):
    return lambda v, cfg: (cfg.get(in_key), cfg.get(out_key))


def _lumina_channels(v: KeyView, cfg: dict) -> tuple:
    if cfg.get("image_model") != "lumina2":
        return None, None
    return _div(v.shape("x_embedder.weight"), 1, 4), _div(v.shape("final_layer.linear.weight"), 0, 4)


def _cogvideox_channels(v: KeyView, cfg: dict) -> tuple:
    if "patch_size_t" in cfg:
        return cfg.get("in_channels"), None
    p = cfg.get("patch_size") or 0
    return cfg.get("in_channels"), _div(v.shape("proj_out.weight"), 0, p * p)


F = Feature
_WAN_FEATURES = (
    F("VACE", ("vace_patch_embedding.weight",), ("vace_patch_embedding.", "vace_blocks."),
      ("vace_blocks.0.before_proj.weight",), "model_type vace"),
    F("camera control", ("control_adapter.conv.weight",), ("control_adapter.",), (), "model_type camera"),
    F("speech-to-video audio encoder", ("casual_audio_encoder.encoder.final_linear.weight",),
      ("casual_audio_encoder.",), (), "model_type s2v"),
    F("HuMo audio projection", ("audio_proj.audio_proj_glob_1.layer.bias",), ("audio_proj.",), (), "model_type humo"),
    F("Animate face adapter", ("face_adapter.fuser_blocks.0.k_norm.weight",), ("face_adapter.", "face_encoder."),
      ("face_adapter.fuser_blocks.0.linear1_kv.weight", "face_encoder.conv1_local.conv.weight"), "model_type animate"),
    F("SCAIL 2 mask embedding", ("patch_embedding_mask.weight",), ("patch_embedding_mask.",), (), "model_type scail2"),
    F("SCAIL pose embedding", ("patch_embedding_pose.weight",), ("patch_embedding_pose.",), (), "model_type scail"),
    F("WanDancer global embedding", ("patch_embedding_global.weight",), ("patch_embedding_global.",), (),
      "model_type wandancer"),
    F("image embedding", ("img_emb.proj.0.bias",), ("img_emb.",),
      ("img_emb.proj.1.weight", "blocks.0.cross_attn.k_img.weight"), "model_type i2v"),
)

#: Fit data per branch, by the branch's first marker.
FITS = {
    "double_blocks.0.img_attn.norm.key_norm.": BranchFit("double_blocks.0.img_attn.qkv.weight", (
        F("FLUX.2 modulation", ("double_stream_modulation_img.lin.weight",),
          ("double_stream_modulation_img.", "double_stream_modulation_txt.", "single_stream_modulation."),
          ("double_stream_modulation_txt.lin.weight", "single_stream_modulation.lin.weight"), "image_model flux2"),
        F("guidance embedder", ("guidance_in.in_layer.weight",), ("guidance_in.",), ("guidance_in.out_layer.weight",),
          "guidance_embed True"),
        F("Chroma distilled guidance", ("distilled_guidance_layer.norms.0.scale", "distilled_guidance_layer.norms.0.weight",
                                        "distilled_guidance_layer.0.norms.0.scale",
                                        "distilled_guidance_layer.0.norms.0.weight"),
          ("distilled_guidance_layer.",), ("distilled_guidance_layer.in_proj.weight",), "image_model chroma"),
        F("Chroma Radiance NeRF head", ("nerf_blocks.0.norm.scale", "nerf_blocks.0.norm.weight"),
          ("nerf_blocks.", "nerf_image_embedder.", "nerf_final_layer"), ("nerf_image_embedder.embedder.0.weight",),
          "image_model chroma_radiance"),
        F("vector input", ("vector_in.in_layer.weight",), ("vector_in.",), ("vector_in.out_layer.weight",),
          "vec_in_dim"),
    ), _flux_channels, ("vec_in_dim", "context_in_dim", "in_channels")),
    "txt_in.individual_token_refiner.blocks.0.norm1.weight": BranchFit("double_blocks.0.img_attn_proj.weight", (
        F("vision input", ("vision_in.proj.0.weight",), ("vision_in.",), ("vision_in.proj.1.weight",),
          "vision_in_dim (HunyuanVideo 1.5)"),
        F("ByT5 input", ("byt5_in.fc1.weight",), ("byt5_in.",), ("byt5_in.fc2.weight",), "byt5"),
    ), _cfg_io("in_channels", "out_channels"), ("in_channels", "out_channels", "patch_size", "vec_in_dim")),
    "adaln_single.emb.timestep_embedder.linear_1.bias": BranchFit("transformer_blocks.0.attn1.to_q.weight", (
        F("audio stream", ("audio_adaln_single.linear.weight",),
          ("audio_adaln_single.", "audio_patchify_proj.", "audio_proj_out.", "audio_caption_projection.",
           "audio_embeddings_connector."),
          ("audio_patchify_proj.weight", "audio_proj_out.weight", "transformer_blocks.0.audio_attn1.to_q.weight"),
          "image_model ltxav"),
    ), _io("patchify_proj.weight", 1, 1, "proj_out.weight", 1)),
    "head.modulation": BranchFit("blocks.0.self_attn.q.weight", _WAN_FEATURES, _cfg_io("in_dim", "out_dim"),
                                 ("in_dim", "out_dim")),
    "cap_embedder.1.weight": BranchFit("layers.0.attention.out.weight", (
        F("CLIP pooled projection", ("clip_text_pooled_proj.0.weight",), ("clip_text_pooled_proj.",),
          ("clip_text_pooled_proj.1.weight",), "clip_text_dim (NewBie)"),
        F("pixel decoder", ("dec_net.cond_embed.weight",), ("dec_net.",), ("dec_net.final_layer.linear.weight",),
          "image_model zimage_pixel"),
    ), _lumina_channels, ("dim", "cap_feat_dim", "patch_size")),
    "blocks.0.mlp.layer1.weight": BranchFit("blocks.0.self_attn.q_proj.weight", (
        F("LLM adapter", ("llm_adapter.blocks.0.cross_attn.q_proj.weight",), ("llm_adapter.",),
          ("llm_adapter.blocks.0.cross_attn.k_proj.weight", "llm_adapter.blocks.0.self_attn.q_proj.weight"),
          "image_model anima"),
    ), _io(None, 1, 1, "final_layer.linear.weight", 4)),
    "txt_norm.weight": BranchFit("transformer_blocks.0.attn.to_out.0.weight", (
        F("additional timestep embedding", ("time_text_embed.addition_t_embedding.weight",),
          ("time_text_embed.addition_t_embedding.",), (), "use_additional_t_cond (Qwen-Image-Layered)"),
    ), _io("img_in.weight", 1, 4, "proj_out.weight", 4), ("in_channels",)),
    "joint_blocks.0.context_block.attn.qkv.weight": BranchFit(None, (), _cfg_io("in_channels", "out_channels")),
    "t5_yproj.weight": BranchFit(None, (), _io("x_embedder.proj.weight", 1, 1, "final_layer.linear.weight", 4)),
    "blocks.0.norm1.linear.weight": BranchFit("blocks.0.attn_out.weight", (), _cogvideox_channels,
                                              ("num_attention_heads", "in_channels")),
    "visual_transformer_blocks.0.cross_attention.key_norm.weight": BranchFit(
        "visual_transformer_blocks.0.cross_attention.to_key.weight", (),
        _io("visual_embeddings.in_layer.weight", 1, 4, "out_layer.out_layer.weight", 4),
        ("model_dim", "visual_embed_dim")),
    "blocks.31.mlp.all.proj_in_gate.weight": BranchFit("blocks.0.ada.vid.attn_gate", (), None, ("vid_dim",)),
    "caption_projection.0.linear.weight": BranchFit(None, (), _io(None, 1, 1, "final_layer.linear.weight", 4)),
    "transformer_blocks.0.attn.norm_added_q.weight": BranchFit(None, (), _cfg_io("in_channels", "out_channels")),
    "txt_norm.weight|mage": BranchFit(None, (), _io("img_in.weight", 1, 1, "proj_out.weight", 1)),
    "embed_image_indicator.weight": BranchFit(None, (), _io("input_proj.weight", 1, 1, "final_layer.linear.weight", 1)),
    "double_blocks.0.attn.img_attn_qkv.weight": BranchFit(None, (), _io("img_in.weight", 1, 1, "proj_out.weight", 4)),
    "input_blocks.0.0.weight": BranchFit(None, (), _cfg_io("in_channels", "out_channels")),
}


#: The top-level modules of each branch's networks (ComfyUI's model classes, in checkpoint layout,
#: and the modules ComfyUI's arm reads). A key under another top-level name is foreign to the branch.
TOP_LEVEL = {
    'clf.1.weight': ('clf', 'clip_img_mapper', 'clip_mapper', 'clip_norm', 'clip_txt_mapper', 'clip_txt_pooled_mapper',
                     'down_blocks', 'down_downscalers', 'effnet_mapper', 'embedding', 'pixels_mapper', 'up_blocks',
                     'up_repeat_mappers', 'up_upscalers'),
    'blocks.0.mlp.layer1.weight': ('blocks', 'final_layer', 'llm_adapter', 't_embedder', 't_embedding_norm', 'x_embedder'),
    'double_layers.0.attn.w1q.weight': ('cond_seq_linear', 'double_layers', 'final_linear', 'init_x_linear', 'modF', 'positional_encoding', 'register_tokens', 'single_layers', 't_embedder'),
    'double_stream_layers.0.img_instruct_attn.processor.img_to_q.weight': ('context_refiner', 'double_stream_layers', 'image_index_embedding', 'noise_refiner', 'norm_out', 'ref_image_patch_embedder', 'ref_image_refiner', 'single_stream_layers', 'time_caption_embed', 'x_embedder'),
    'double_blocks.0.img_attn.norm.key_norm.': ('distilled_guidance_layer', 'double_blocks', 'double_stream_modulation_img', 'double_stream_modulation_txt', 'final_layer', 'guidance_in', 'img_in', 'img_in_patch', 'nerf_blocks', 'nerf_final_layer_conv', 'nerf_image_embedder', 'single_blocks', 'single_stream_modulation', 'time_in', 'txt_in', 'txt_norm', 'vector_in'),
    'blocks.0.norm1.linear.weight': ('blocks', 'norm_final', 'norm_out', 'patch_embed', 'proj_out', 'time_embedding_linear_1', 'time_embedding_linear_2'),
    'layers.0.mlp.linear_fc2.weight': ('adaLN_modulation', 'final_linear', 'final_norm', 'layers', 'text_proj', 'time_embedding', 'x_embedder'),
    't5_yproj.weight': ('blocks', 'final_layer', 'pos_frequencies', 't5_y_embedder', 't5_yproj', 't_embedder', 'x_embedder'),
    'caption_projection.0.linear.weight': ('caption_projection', 'double_stream_blocks', 'final_layer', 'p_embedder', 'single_stream_blocks', 't_embedder', 'x_embedder'),
    't_embedder1.mlp.0.weight': ('final_layer2', 'language_model', 't_embedder1', 'visual', 'x_embedder'),
    'txt_in.individual_token_refiner.blocks.0.norm1.weight': ('byt5_in', 'cond_type_embedding', 'double_blocks', 'final_layer', 'guidance_in', 'img_in', 'single_blocks', 'time_in', 'time_r_in', 'txt_in', 'vector_in', 'vision_in'),
    'embed_image_indicator.weight': ('adaln_proj', 'embed_image_indicator', 'final_layer', 'input_proj', 'layers', 'llm_cond_norm', 'llm_cond_proj', 't_embedding'),
    'double_blocks.0.attn.img_attn_qkv.weight': ('condition_embedder', 'double_blocks', 'img_in', 'proj_out'),
    'visual_transformer_blocks.0.cross_attention.key_norm.weight': ('out_layer', 'pooled_text_embeddings', 'text_embeddings', 'text_transformer_blocks', 'time_embeddings', 'visual_embeddings', 'visual_transformer_blocks'),
    'txtfusion.projector.weight': ('blocks', 'first', 'last', 'tmlp', 'tproj', 'txtfusion', 'txtmlp'),
    'adaln_single.emb.timestep_embedder.linear_1.bias': ('adaln_single', 'audio_adaln_single', 'audio_caption_projection', 'audio_embeddings_connector', 'audio_patchify_proj', 'audio_proj_out', 'audio_scale_shift_table', 'av_ca_a2v_gate_adaln_single', 'av_ca_audio_scale_shift_adaln_single', 'av_ca_v2a_gate_adaln_single', 'av_ca_video_scale_shift_adaln_single', 'caption_projection', 'keyframes_abs_pos_embedding', 'patchify_proj', 'proj_out', 'scale_shift_table', 'transformer_blocks', 'video_embeddings_connector'),
    'transformer_blocks.0.attn.norm_added_q.weight': ('img_in', 'norm_out', 'proj_out', 'time_text_embed', 'transformer_blocks', 'txt_in', 'txt_norm'),
    'cap_embedder.1.weight': ('cap_embedder', 'cap_pad_token', 'clip_text_pooled_proj', 'context_refiner', 'dec_net', 'final_layer', 'layers', 'noise_refiner', 't_embedder', 'time_text_embed', 'x_embedder', 'x_pad_token'),
    'txt_norm.weight|mage': ('img_in', 'norm_out', 'proj_out', 'time_text_embed', 'transformer_blocks', 'txt_in', 'txt_norm'),
    'video_patch_proj.weight': ('audio_patch_proj', 'blocks', 'condition_proj', 'final_layer', 'rope', 'time_embedder', 'token_refiner', 'video_patch_proj'),
    'core.pixel_embedder.proj.weight': ('core',),
    'txt_norm.weight': ('__index_timestep_zero__', 'img_in', 'norm_out', 'proj_out', 'time_text_embed', 'transformer_blocks', 'txt_in', 'txt_norm'),
    'joint_blocks.0.context_block.attn.qkv.weight': ('context_embedder', 'context_processor', 'final_layer', 'joint_blocks', 'pos_embed', 't_embedder', 'x_embedder', 'y_embedder'),
    'blocks.31.mlp.all.proj_in_gate.weight': ('blocks', 'emb_in', 'negative_conditioning', 'positive_conditioning', 'txt_in', 'vid_in', 'vid_out', 'vid_out_ada', 'vid_out_norm'),
    'head.modulation': ('audio_proj', 'blocks', 'casual_audio_encoder', 'control_adapter', 'face_adapter', 'face_encoder', 'head', 'img_emb', 'motion_encoder', 'patch_embedding', 'patch_embedding_global', 'patch_embedding_mask', 'patch_embedding_pose', 'pose_patch_embedding', 'ref_conv', 'text_embedding', 'time_embedding', 'time_projection', 'vace_blocks', 'vace_patch_embedding'),
    'input_blocks.0.0.weight': ('input_blocks', 'label_emb', 'middle_block', 'out', 'output_blocks', 'time_embed'),
}
#: Top-level names allowed in any diffusion model: ComfyUI's marker keys (``__x0__`` and the like,
#: SDXL's ``v_pred``/``edm_*``, Zero123's ``cc_projection``) and fp8 checkpoints' ``scaled_fp8``.
ALLOWED_TOP_LEVEL = ("v_pred", "ztsnr", "edm_mean", "edm_std", "edm_vpred", "cc_projection", "scaled_fp8")


def _branch_key(branch) -> str:
    return branch.marker + ("|mage" if branch.name.startswith("Mage-Flow") else "")


def foreign_keys(v: KeyView, branch) -> list:
    """Keys whose top-level module no network of ``branch`` has (empty when the branch has no list)."""
    tops = TOP_LEVEL.get(_branch_key(branch))
    if tops is None:
        return []
    out = []
    for k in v.shapes:
        head = k.split(".", 1)[0]
        if head in tops or head in ALLOWED_TOP_LEVEL or (head.startswith("__") and head.endswith("__")):
            continue
        out.append(k)
    return out


_PROBES = tuple(sorted({f.probe for f in FITS.values() if f.probe}))


def fit_for(branch) -> Optional[BranchFit]:
    return FITS.get(_branch_key(branch))


#: Values a whole network may have beside its family's own, where ComfyUI's one class covers real
#: variants: FLUX.1 Canny/Depth [dev] take 32 input channels (``img_in`` 128 wide) in class Flux.
STRUCTURE_ALSO = {("Flux", "in_channels"): (32,)}


def is_whole(v: KeyView, branch) -> bool:
    """True when the keys are a whole network of ``branch`` (its probe key is there), not a few markers."""
    fit = fit_for(branch)
    return bool(fit and fit.probe and v.has(fit.probe))


def _check_structure(fit: BranchFit, config: dict, family, label: str) -> None:
    ref = family.detection.get("unet_config") or {}
    for k in fit.structure:
        if k not in ref and k not in config:
            continue
        got, want = config.get(k), ref.get(k)
        if got != want and got not in STRUCTURE_ALSO.get((family.name, k), ()):
            raise refuse(f"the keys fit {label} by ComfyUI's rules, but the whole network has {k} {got!r} where a "
                         f"{family.name} has {want!r}", example=family.name)


def _has_stem(v: KeyView, stem: str) -> Optional[str]:
    """A key under ``stem`` (a dotted prefix, or a name prefix without a trailing dot), or None."""
    for k in v.shapes:
        if k.startswith(stem):
            return k
    return None


def check_fit(v: KeyView, branch, config: dict, family, label: str) -> tuple:
    """Raise a refusal when the keys do not fit ``family`` exactly; return evidence lines otherwise."""
    foreign = foreign_keys(v, branch)
    if foreign:
        heads = sorted({k.split(".", 1)[0] for k in foreign})
        shown = ", ".join(f"`{h}*`" for h in heads[:4]) + (f" and {len(heads) - 4} more" if len(heads) > 4 else "")
        raise refuse(f"the keys fit {label} by ComfyUI's rules, but {len(foreign)} of them are under modules no "
                     f"{branch.name} has ({shown}): another network's keys are mixed in", example=family.name)
    fit = fit_for(branch)
    if fit is None:
        return ()
    evidence = []
    whole = fit.probe is not None and v.has(fit.probe)
    if fit.probe is not None and not whole:
        other = next((p for p in _PROBES if p != fit.probe and v.has(p)), None)
        if other:
            raise refuse(f"the keys fit {label} by ComfyUI's rules, but they hold a whole network of another "
                         f"architecture (`{other}`) and not this one's (`{fit.probe}`)", example=family.name)
    check_partial_features(v, branch, label, family.name)
    for feat in fit.features:
        marked = [m for m in feat.markers if v.has(m)]
        if marked and whole:
            missing = [c for c in feat.companions if not v.has(c)]
            if missing:
                raise refuse(f"the whole network is there (`{fit.probe}`) and `{marked[0]}` ({feat.means}), but the "
                             f"rest of the {feat.name} is not (no `{missing[0]}`): the keys fit {label} only in part",
                             example=family.name)
    if whole:
        _check_structure(fit, config, family, label)
        evidence.append(f"whole network (`{fit.probe}` present): every feature ComfyUI tests is complete"
                        + (f"; {', '.join(fit.structure)} as in {family.name}" if fit.structure else ""))
    if fit.channels is not None:
        evidence += _check_channels(v, fit, config, family, label)
    return tuple(evidence)


def check_partial_features(v: KeyView, branch, label: str, example: Optional[str] = None) -> None:
    """Refuse keys that hold part of a feature's module but not the marker ComfyUI reads for it."""
    fit = fit_for(branch)
    for feat in fit.features if fit else ():
        if any(v.has(m) for m in feat.markers):
            continue
        stray = next((k for k in (_has_stem(v, s) for s in feat.stems) if k), None)
        if stray:
            raise refuse(f"the keys have part of a {feat.name} (`{stray}`) but not `{feat.markers[0]}`, the key "
                         f"ComfyUI reads for it ({feat.means}), so they fit neither {label} nor the "
                         f"variant with a {feat.name}", example=example)


def _check_channels(v: KeyView, fit: BranchFit, config: dict, family, label: str) -> list:
    want = family.latent.channels
    c_in, c_out = fit.channels(v, config)
    if c_out is not None and c_out != want:
        raise refuse(f"the keys fit {label}, but the network outputs {c_out} latent channels and a {family.name} "
                     f"latent has {want}", example=family.name)
    if c_in is not None and c_in < want:
        raise refuse(f"the keys fit {label}, but the network takes {c_in} input channels, fewer than the {want} of "
                     f"a {family.name} latent", example=family.name)
    said = [f"{what} {n}" for what, n in (("output", c_out), ("input", c_in)) if n is not None]
    return [f"latent channels: {', '.join(said)} (a {family.name} latent has {want})"] if said else []
