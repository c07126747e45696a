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
    ), _flux_channels),
    "txt_in.individual_token_refiner.blocks.0.norm1.weight": BranchFit("double_blocks.0.img_attn_qkv.weight", (
        F("vision input", ("vision_in.proj.0.weight",), ("vision_in.",), ("vision_in.proj.1.weight",),
          "vision_in_dim (HunyuanVideo 1.5)"),
        F("ByT5 input", ("byt5_in.fc1.weight",), ("byt5_in.",), ("byt5_in.fc2.weight",), "byt5"),
    ), _cfg_io("in_channels", "out_channels")),
    "adaln_single.emb.timestep_embedder.linear_1.bias": BranchFit("transformer_blocks.0.attn1.to_q.weight", (
        F("audio stream", ("audio_adaln_single.linear.weight",),
          ("audio_adaln_single.", "audio_patchify_proj.", "audio_proj_out.", "audio_caption_projection.",
           "audio_embeddings_connector."),
          ("audio_patchify_proj.weight", "audio_proj_out.weight", "transformer_blocks.0.audio_attn1.to_q.weight"),
          "image_model ltxav"),
    ), _io("patchify_proj.weight", 1, 1, "proj_out.weight", 1)),
    "head.modulation": BranchFit("blocks.0.self_attn.q.weight", _WAN_FEATURES, _cfg_io("in_dim", "out_dim")),
    "cap_embedder.1.weight": BranchFit("layers.0.attention.qkv.weight", (
        F("CLIP pooled projection", ("clip_text_pooled_proj.0.weight",), ("clip_text_pooled_proj.",),
          ("clip_text_pooled_proj.1.weight",), "clip_text_dim (NewBie)"),
        F("pixel decoder", ("dec_net.cond_embed.weight",), ("dec_net.",), ("dec_net.final_layer.linear.weight",),
          "image_model zimage_pixel"),
    ), _lumina_channels),
    "blocks.0.mlp.layer1.weight": BranchFit("blocks.0.self_attn.q_proj.weight", (
        F("LLM adapter", ("llm_adapter.blocks.0.cross_attn.q_proj.weight",), ("llm_adapter.",),
          ("llm_adapter.blocks.0.cross_attn.k_proj.weight", "llm_adapter.blocks.0.self_attn.q_proj.weight"),
          "image_model anima"),
    ), _io(None, 1, 1, "final_layer.linear.weight", 4)),
    "txt_norm.weight": BranchFit("transformer_blocks.0.attn.to_q.weight", (
        F("additional timestep embedding", ("time_text_embed.addition_t_embedding.weight",),
          ("time_text_embed.addition_t_embedding.",), (), "use_additional_t_cond (Qwen-Image-Layered)"),
    ), _io("img_in.weight", 1, 4, "proj_out.weight", 4)),
    "joint_blocks.0.context_block.attn.qkv.weight": BranchFit(None, (), _cfg_io("in_channels", "out_channels")),
    "t5_yproj.weight": BranchFit(None, (), _io("x_embedder.proj.weight", 1, 1, "final_layer.linear.weight", 4)),
    "blocks.0.norm1.linear.weight": BranchFit(None, (), _cogvideox_channels),
    "visual_transformer_blocks.0.cross_attention.key_norm.weight": BranchFit(
        None, (), _io("visual_embeddings.in_layer.weight", 1, 4, "out_layer.out_layer.weight", 4)),
    "caption_projection.0.linear.weight": BranchFit(None, (), _io(None, 1, 1, "final_layer.linear.weight", 4)),
    "transformer_blocks.0.attn.norm_added_q.weight": BranchFit(None, (), _cfg_io("in_channels", "out_channels")),
    "txt_norm.weight|mage": BranchFit(None, (), _io("img_in.weight", 1, 1, "proj_out.weight", 1)),
    "embed_image_indicator.weight": BranchFit(None, (), _io("input_proj.weight", 1, 1, "final_layer.linear.weight", 1)),
    "double_blocks.0.attn.img_attn_qkv.weight": BranchFit(None, (), _io("img_in.weight", 1, 1, "proj_out.weight", 4)),
    "input_blocks.0.0.weight": BranchFit(None, (), _cfg_io("in_channels", "out_channels")),
}


def fit_for(branch) -> Optional[BranchFit]:
    key = branch.marker + ("|mage" if branch.name.startswith("Mage-Flow") else "")
    return FITS.get(key)


def _has_stem(v: KeyView, stem: str) -> Optional[str]:
    """A key under ``stem`` (a dotted prefix, or a name prefix without a trailing dot), or None."""
    for k in v.shapes:
        if k.startswith(stem):
            return k
    return None


def check_fit(v: KeyView, branch, config: dict, family, label: str) -> tuple:
    """Raise a refusal when the keys do not fit ``family`` exactly; return evidence lines otherwise."""
    fit = fit_for(branch)
    if fit is None:
        return ()
    evidence = []
    whole = fit.probe is not None and v.has(fit.probe)
    for feat in fit.features:
        marked = [m for m in feat.markers if v.has(m)]
        if not marked:
            stray = next((k for k in (_has_stem(v, s) for s in feat.stems) if k), None)
            if stray:
                raise refuse(f"the keys have part of a {feat.name} (`{stray}`) but not `{feat.markers[0]}`, the key "
                             f"ComfyUI reads for it ({feat.means}), so they fit neither {label} nor the "
                             f"variant with a {feat.name}", example=family.name)
        elif whole:
            missing = [c for c in feat.companions if not v.has(c)]
            if missing:
                raise refuse(f"the whole network is there (`{fit.probe}`) and `{marked[0]}` ({feat.means}), but the "
                             f"rest of the {feat.name} is not (no `{missing[0]}`): the keys fit {label} only in part",
                             example=family.name)
    if whole:
        evidence.append(f"whole network (`{fit.probe}` present): every feature ComfyUI tests is complete")
    if fit.channels is not None:
        evidence += _check_channels(v, fit, config, family, label)
    return tuple(evidence)


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
