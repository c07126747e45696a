"""Fake checkpoints for the detection tests and benchmark: real files, no real weights.

``write_safetensors`` writes a header that declares full-size tensors; the data region is made
with ``truncate`` (a sparse file: a 7 GB SDXL checkpoint costs a few KB of disk). Tensors given as
numpy arrays get their real bytes (for rules that read values, such as SD2's v-prediction test).

Key sets:
- ``minimal_entries(family)``: the family's minimal detection keys from ``families.json``;
- ``ldm_unet_entries(unet_config)``: a full LDM UNet (SD1/SD2/SDXL/SVD layout) generated from a
  ComfyUI unet_config;
- ``fullish_entries(family)``: a checkpoint-like file: the model (full UNet, or the DiT's minimal
  keys with more blocks and more real key names) plus text-encoder and VAE keys beside it;
- ``network_entries(family)``: the family's whole diffusion network as real checkpoints hold it
  (hundreds to thousands of keys, the real shapes), from ``data/comfy_networks.json``: the state dict
  of ComfyUI's own model class (master 783545f6) for that family, built on the meta device and put
  back into the checkpoint layout (``data/make_comfy_networks.py`` made it; see there). Block
  ``{i}`` keys stand for ``counts[stem]`` blocks with the same shapes;
- ``checkpoint_entries(family)``: ``network_entries`` (or the full UNet) with the family's
  value-carrying top-level keys, and ``network_metadata(family)`` its safetensors ``__metadata__``.
"""
from __future__ import annotations

import json
import os
import re
import struct
from functools import lru_cache

import numpy as np

from unsampler_gui.core.families import get_family

PREFIX = "model.diffusion_model."
ITEMSIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I8": 1, "U8": 1, "BOOL": 1}
NP_DTYPES = {np.dtype("<f4"): "F32", np.dtype("<f2"): "F16", np.dtype("<f8"): "F64", np.dtype("<i8"): "I64",
             np.dtype("<i4"): "I32", np.dtype("u1"): "U8"}


# ----------------------------------------------------------------------------- writing files

def write_safetensors(path, entries: dict, metadata: dict | None = None) -> int:
    """Write ``entries`` (name -> (dtype, shape) or ndarray) as a sparse safetensors file; return its size."""
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, e in entries.items():
        if isinstance(e, np.ndarray):
            dtype, shape, data = NP_DTYPES[e.dtype], e.shape, np.ascontiguousarray(e).tobytes()
        else:
            (dtype, shape), data = e, None
        nbytes = int(np.prod(shape, dtype=np.int64)) * ITEMSIZE[dtype] if len(shape) else ITEMSIZE[dtype]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        if data is not None:
            blobs.append((offset, data))
        offset += nbytes
    raw = json.dumps(header).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        start = 8 + len(raw)
        for off, data in blobs:
            f.seek(start + off)
            f.write(data)
        f.truncate(start + offset)
    return start + offset


def write_raw_header(path, header_bytes: bytes, declared_len: int | None = None, tail: bytes = b"") -> None:
    """Write a safetensors-like file with an arbitrary header (for corrupt-file tests)."""
    n = len(header_bytes) if declared_len is None else declared_len
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", n) + header_bytes + tail)


# ----------------------------------------------------------------------------- minimal keys

def value_array(spec: dict, seed: int = 0) -> np.ndarray:
    """A tensor for an ``extra_keys_with_values`` entry ("zeros", "ones", "randn*0.5")."""
    shape = tuple(spec["shape"])
    if spec["value"] == "zeros":
        return np.zeros(shape, np.float32)
    if spec["value"] == "ones":
        return np.ones(shape, np.float32)
    scale = float(spec["value"].split("*")[1]) if "*" in spec["value"] else 1.0
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float16)


def _reprefix(name: str, prefix: str) -> str:
    return prefix + name[len(PREFIX):] if name.startswith(PREFIX) else name


def minimal_entries(family: str, prefix: str = PREFIX, dtype: str = "F16") -> dict:
    """The family's minimal detection keys (with shapes) and its value-carrying keys, under ``prefix``."""
    det = get_family(family).detection
    out = {_reprefix(m["key"], prefix): (dtype, tuple(m["shape"])) for m in det["minimal_keys"]}
    for name, spec in det["extra_keys_with_values"].items():
        out[_reprefix(name, prefix)] = value_array(spec)
    return out


# ----------------------------------------------------------------------------- a full LDM UNet

def _res(e: dict, p: str, cin: int, cout: int, emb: int, temporal: bool) -> None:
    e[p + "in_layers.0.weight"] = e[p + "in_layers.0.bias"] = ("F16", (cin,))
    e[p + "in_layers.2.weight"], e[p + "in_layers.2.bias"] = ("F16", (cout, cin, 3, 3)), ("F16", (cout,))
    e[p + "emb_layers.1.weight"], e[p + "emb_layers.1.bias"] = ("F16", (cout, emb)), ("F16", (cout,))
    e[p + "out_layers.0.weight"] = e[p + "out_layers.0.bias"] = ("F16", (cout,))
    e[p + "out_layers.3.weight"], e[p + "out_layers.3.bias"] = ("F16", (cout, cout, 3, 3)), ("F16", (cout,))
    if cin != cout:
        e[p + "skip_connection.weight"] = ("F16", (cout, cin, 1, 1))
    if temporal:
        e[p + "time_stack.in_layers.2.weight"] = ("F16", (cout, cout, 3, 1, 1))
        e[p + "time_mixer.mix_factor"] = ("F32", (1,))


def _transformer(e: dict, p: str, ch: int, depth: int, ctx: int, linear: bool, temporal: bool) -> None:
    proj = (ch, ch) if linear else (ch, ch, 1, 1)
    e[p + "norm.weight"] = e[p + "norm.bias"] = ("F16", (ch,))
    e[p + "proj_in.weight"], e[p + "proj_out.weight"] = ("F16", proj), ("F16", proj)
    stacks = [("transformer_blocks", ctx)] + ([("time_stack", ctx)] if temporal else [])
    for stack, width in stacks:
        for t in range(depth):
            b = f"{p}{stack}.{t}."
            for q in ("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0", "attn2.to_q", "attn2.to_out.0"):
                e[b + q + ".weight"] = ("F16", (ch, ch))
            e[b + "attn2.to_k.weight"] = e[b + "attn2.to_v.weight"] = ("F16", (ch, width))
            e[b + "ff.net.0.proj.weight"], e[b + "ff.net.2.weight"] = ("F16", (ch * 8, ch)), ("F16", (ch, ch * 4))
            for n in ("norm1", "norm2", "norm3"):
                e[b + n + ".weight"] = e[b + n + ".bias"] = ("F16", (ch,))
    if temporal:
        e[p + "time_mixer.mix_factor"] = ("F32", (1,))


def ldm_unet_entries(cfg: dict, prefix: str = PREFIX) -> dict:
    """A complete LDM UNet key set (input, middle and output blocks) for a ComfyUI unet_config."""
    mc, mults, nres = cfg["model_channels"], cfg["channel_mult"], cfg["num_res_blocks"]
    ctx, lin, tmp = cfg["context_dim"], cfg["use_linear_in_transformer"], cfg.get("use_temporal_attention", False)
    emb, e = mc * 4, {}
    e["time_embed.0.weight"], e["time_embed.2.weight"] = ("F16", (emb, mc)), ("F16", (emb, emb))
    if cfg.get("adm_in_channels"):
        e["label_emb.0.0.weight"] = ("F16", (emb, cfg["adm_in_channels"]))
        e["label_emb.0.2.weight"] = ("F16", (emb, emb))
    e["input_blocks.0.0.weight"], e["input_blocks.0.0.bias"] = ("F16", (mc, cfg["in_channels"], 3, 3)), ("F16", (mc,))
    depths, chans, i, ch = iter(cfg["transformer_depth"]), [mc], 1, mc
    for level, m in enumerate(mults):
        for _ in range(nres[level]):
            _res(e, f"input_blocks.{i}.0.", ch, m * mc, emb, tmp)
            ch = m * mc
            d = next(depths)
            if d:
                _transformer(e, f"input_blocks.{i}.1.", ch, d, ctx, lin, tmp)
            chans.append(ch)
            i += 1
        if level != len(mults) - 1:
            e[f"input_blocks.{i}.0.op.weight"] = ("F16", (ch, ch, 3, 3))
            e[f"input_blocks.{i}.0.op.bias"] = ("F16", (ch,))
            chans.append(ch)
            i += 1
    _middle(e, cfg, ch, emb, ctx, lin, tmp)
    _outputs(e, cfg, chans, i, emb, ctx, lin, tmp)
    e["out.0.weight"] = e["out.0.bias"] = ("F16", (mc,))
    e["out.2.weight"] = ("F16", (cfg.get("out_channels", 4), mc, 3, 3))
    return {prefix + k: v for k, v in e.items()}


def _middle(e, cfg, ch, emb, ctx, lin, tmp) -> None:
    depth = cfg.get("transformer_depth_middle", 1)
    if depth == -2:
        return
    _res(e, "middle_block.0.", ch, ch, emb, tmp)
    if depth >= 0:
        _transformer(e, "middle_block.1.", ch, depth, ctx, lin, tmp)
        _res(e, "middle_block.2.", ch, ch, emb, tmp)
    else:
        _res(e, "middle_block.1.", ch, ch, emb, tmp)


def _outputs(e, cfg, chans, n_in, emb, ctx, lin, tmp) -> None:
    mc, mults, nres = cfg["model_channels"], cfg["channel_mult"], cfg["num_res_blocks"]
    tdo = cfg["transformer_depth_output"]
    j, ch = 0, chans[-1]
    for level in reversed(range(len(mults))):
        for r in range(nres[level] + 1):
            out = mults[level] * mc
            _res(e, f"output_blocks.{j}.0.", ch + chans.pop(), out, emb, tmp)
            ch = out
            d = tdo[n_in - 1 - j] if len(tdo) == n_in else 0
            if d:
                _transformer(e, f"output_blocks.{j}.1.", ch, d, ctx, lin, tmp)
            if level and r == nres[level]:
                e[f"output_blocks.{j}.{2 if d else 1}.conv.weight"] = ("F16", (ch, ch, 3, 3))
            j += 1


# ----------------------------------------------------------------------------- text encoders and VAE

def clip_l_entries(prefix: str, layers: int = 12, width: int = 768) -> dict:
    """A CLIP text encoder in the transformers layout (SD1 `cond_stage_model.transformer.`)."""
    e = {f"{prefix}text_model.embeddings.token_embedding.weight": ("F16", (49408, width)),
         f"{prefix}text_model.embeddings.position_embedding.weight": ("F16", (77, width)),
         f"{prefix}text_model.final_layer_norm.weight": ("F16", (width,))}
    for i in range(layers):
        b = f"{prefix}text_model.encoder.layers.{i}."
        for q in ("q_proj", "k_proj", "v_proj", "out_proj"):
            e[f"{b}self_attn.{q}.weight"], e[f"{b}self_attn.{q}.bias"] = ("F16", (width, width)), ("F16", (width,))
        e[b + "mlp.fc1.weight"], e[b + "mlp.fc2.weight"] = ("F16", (width * 4, width)), ("F16", (width, width * 4))
        e[b + "layer_norm1.weight"] = e[b + "layer_norm2.weight"] = ("F16", (width,))
    return e


def open_clip_entries(prefix: str, layers: int = 32, width: int = 1280) -> dict:
    """An OpenCLIP text tower (SDXL's `conditioner.embedders.1.model.`)."""
    e = {f"{prefix}token_embedding.weight": ("F16", (49408, width)),
         f"{prefix}positional_embedding": ("F16", (77, width)),
         f"{prefix}ln_final.weight": ("F16", (width,)), f"{prefix}text_projection": ("F16", (width, width))}
    for i in range(layers):
        b = f"{prefix}transformer.resblocks.{i}."
        e[b + "attn.in_proj_weight"], e[b + "attn.in_proj_bias"] = ("F16", (3 * width, width)), ("F16", (3 * width,))
        e[b + "attn.out_proj.weight"] = ("F16", (width, width))
        e[b + "mlp.c_fc.weight"], e[b + "mlp.c_proj.weight"] = ("F16", (width * 4, width)), ("F16", (width, width * 4))
        e[b + "ln_1.weight"] = e[b + "ln_2.weight"] = ("F16", (width,))
    return e


def t5_entries(prefix: str, blocks: int = 4, width: int = 4096) -> dict:
    e = {f"{prefix}shared.weight": ("F16", (32128, width))}
    for i in range(blocks):
        b = f"{prefix}encoder.block.{i}.layer."
        for q in "qkvo":
            e[f"{b}0.SelfAttention.{q}.weight"] = ("F16", (width, width))
        e[f"{b}1.DenseReluDense.wi_0.weight"] = ("F16", (10240, width))
    return e


def vae_entries(prefix: str = "first_stage_model.", z: int = 4) -> dict:
    """An SD-style VAE (encoder/decoder with 4 levels)."""
    e = {f"{prefix}encoder.conv_in.weight": ("F16", (128, 3, 3, 3)),
         f"{prefix}encoder.conv_out.weight": ("F16", (2 * z, 512, 3, 3)),
         f"{prefix}decoder.conv_in.weight": ("F16", (512, z, 3, 3)),
         f"{prefix}decoder.conv_out.weight": ("F16", (3, 128, 3, 3)),
         f"{prefix}quant_conv.weight": ("F16", (2 * z, 2 * z, 1, 1)),
         f"{prefix}post_quant_conv.weight": ("F16", (z, z, 1, 1))}
    for lvl, ch in enumerate((128, 256, 512, 512)):
        for blk in range(2):
            e[f"{prefix}encoder.down.{lvl}.block.{blk}.conv1.weight"] = ("F16", (ch, ch, 3, 3))
            e[f"{prefix}decoder.up.{lvl}.block.{blk}.conv1.weight"] = ("F16", (ch, ch, 3, 3))
    return e


# ----------------------------------------------------------------------------- checkpoint-like files

def _dit_extras(family: str, minimal: dict) -> dict:
    """More real key names of each DiT family (relative to the model prefix), sized like the model."""
    w = {"SD3": 1536, "SD35_large": 2432}.get(family, 3072)
    extras = {
        "SD3": {"pos_embed": (1, 36864, w), "context_embedder.weight": (w, 4096), "y_embedder.mlp.0.weight": (w, 2048),
                "t_embedder.mlp.0.weight": (w, 256), "final_layer.linear.weight": (64, w),
                "joint_blocks.0.x_block.attn.qkv.weight": (3 * w, w)},
        "Flux": {"time_in.in_layer.weight": (w, 256), "vector_in.in_layer.weight": (w, 768), "txt_in.weight": (w, 4096),
                 "final_layer.linear.weight": (64, w), "single_blocks.0.linear1.weight": (21504, w),
                 "double_blocks.0.img_attn.qkv.weight": (3 * w, w)},
        "Chroma": {"img_in.weight": (w, 64), "txt_in.weight": (w, 4096),
                   "distilled_guidance_layer.in_proj.weight": (5120, 64),
                   "single_blocks.0.linear1.weight": (21504, w), "final_layer.linear.weight": (64, w)},
        "AuraFlow": {"init_x_linear.weight": (w, 16), "t_embedder.mlp.0.weight": (w, 256),
                     "final_linear.weight": (16, w),
                     "register_tokens": (1, 8, w), "single_layers.0.attn.w1q.weight": (w, w)},
        "Stable_Cascade_C": {"clip_txt_pooled_mapper.weight": (8192, 1280), "clip_img_mapper.weight": (8192, 768),
                             "embedding.1.weight": (2048, 64, 1, 1),
                             "down_blocks.0.0.channelwise.0.weight": (8192, 2048),
                             "clf.0.weight": (2048,), "up_blocks.0.0.channelwise.0.weight": (8192, 2048)},
        "HunyuanVideo": {"double_blocks.0.img_attn_qkv.weight": (3 * w, w),
                         "single_blocks.0.linear1.weight": (21504, w),
                         "time_in.mlp.0.weight": (w, 256), "guidance_in.mlp.0.weight": (w, 256),
                         "txt_in.t_embedder.mlp.0.weight": (w, 256)},
        "WAN": {"text_embedding.0.weight": (None, 4096), "time_embedding.0.weight": (None, 256),
                "time_projection.1.weight": (None, None), "blocks.0.self_attn.q.weight": (None, None),
                "blocks.0.modulation": (1, 6, None), "head.head.bias": (None,)},
        "LTXV": {"patchify_proj.weight": (2048, 128), "caption_projection.linear_1.weight": (2048, 4096),
                 "proj_out.weight": (128, 2048), "scale_shift_table": (2, 2048),
                 "transformer_blocks.0.attn1.to_q.weight": (2048, 2048)},
        "GenmoMochi": {"x_embedder.proj.weight": (w, 12, 2, 2), "t5_y_embedder.to_kv.weight": (3072, 4096),
                       "blocks.0.attn.qkv_x.weight": (3 * w, w), "final_layer.linear.weight": (48, w),
                       "pos_frequencies": (3, 24, 64), "t_embedder.mlp.0.weight": (w, 256)},
        "Lumina2": {"x_embedder.weight": (2304, 64), "t_embedder.mlp.0.weight": (1024, 256),
                    "cap_embedder.0.weight": (2304,),
                    "layers.0.attention.qkv.weight": (3840, 2304), "noise_refiner.0.attention.qkv.weight": (3840, 2304),
                    "final_layer.linear.weight": (64, 2304)},
        "HiDream": {"x_embedder.proj.weight": (2560, 64), "t_embedder.timestep_embedder.linear_1.weight": (2560, 256),
                    "p_embedder.pooled_embedder.linear_1.weight": (2560, 2048),
                    "double_stream_blocks.0.block.attn1.to_q.weight": (2560, 2560),
                    "single_stream_blocks.0.block.attn1.to_q.weight": (2560, 2560),
                    "caption_projection.1.linear.weight": (2560, 4096)},
        "QwenImage": {"txt_in.weight": (w, 3584), "time_text_embed.timestep_embedder.linear_1.weight": (w, 256),
                      "transformer_blocks.0.img_mod.1.weight": (6 * w, w), "norm_out.linear.weight": (2 * w, w),
                      "proj_out.weight": (64, w)},
    }
    extras["SD35_large"] = extras["SD3"]
    extras["FluxSchnell"] = {k: v for k, v in extras["Flux"].items() if k != "time_in.in_layer.weight"}
    extras["Flux"]["guidance_in.out_layer.weight"] = (w, w)
    out = extras.get("WAN" if family.startswith("WAN") else family, {})
    if family.startswith("WAN"):
        dim = minimal[PREFIX + "head.modulation"][1][-1]
        out = {k: tuple(dim if s is None else s for s in shape) for k, shape in out.items()}
    return {PREFIX + k: ("F16", shape) for k, shape in out.items()}


_BLOCK = re.compile(r"^(model\.diffusion_model\.)(blocks|double_blocks|single_blocks|joint_blocks|transformer_blocks|"
                    r"double_layers|layers)\.0\.")


def _more_blocks(entries: dict, n: int = 4) -> dict:
    """Copies of block-0 keys for blocks 1..n-1 (same shapes)."""
    out = {}
    for name, spec in entries.items():
        if _BLOCK.match(name):
            for i in range(1, n):
                out[_BLOCK.sub(lambda m: f"{m.group(1)}{m.group(2)}.{i}.", name)] = spec
    return out


#: The text encoders and VAE packed beside each family's model in all-in-one checkpoints.
def companions(family: str) -> dict:
    if family in ("SD15",):
        return {**clip_l_entries("cond_stage_model.transformer.", layers=2), **vae_entries()}
    if family in ("SD20", "SD21_768_v"):
        return {**open_clip_entries("cond_stage_model.model.", layers=2, width=1024), **vae_entries()}
    if family.startswith("SDXL") or family in ("PlaygroundV2_5", "SSD1B"):
        return {**clip_l_entries("conditioner.embedders.0.transformer.", layers=2),
                **open_clip_entries("conditioner.embedders.1.model.", layers=2), **vae_entries()}
    if family == "SVD_img2vid":
        return {"conditioner.embedders.0.open_clip.model.visual.conv1.weight": ("F16", (1280, 3, 14, 14)),
                **vae_entries()}
    z = get_family(family).latent.channels
    return {**clip_l_entries("text_encoders.clip_l.transformer.", layers=2),
            **t5_entries("text_encoders.t5xxl.transformer.", blocks=2), **vae_entries(z=z)}


def fullish_entries(family: str) -> dict:
    """A checkpoint-like key set: the whole model (UNet) or a fuller DiT, plus text encoders and VAE."""
    fam = get_family(family)
    minimal = minimal_entries(family)
    if family in _networks():
        model = {**network_entries(family), **{k: v for k, v in minimal.items() if isinstance(v, np.ndarray)}}
    elif any(k.endswith("input_blocks.0.0.weight") for k in minimal):
        model = ldm_unet_entries(fam.detection["unet_config"])
        model.update({k: v for k, v in minimal.items() if isinstance(v, np.ndarray)})
    else:
        model = {**minimal, **_more_blocks(minimal), **_dit_extras(family, minimal)}
        model.update(minimal)
    return {**companions(family), **model}


def sdxl_checkpoint_entries() -> dict:
    """A full-size SDXL base checkpoint (UNet, CLIP-L, OpenCLIP-bigG, VAE): about 7 GB of fp16."""
    unet = ldm_unet_entries(get_family("SDXL").detection["unet_config"])
    return {**clip_l_entries("conditioner.embedders.0.transformer."),
            **open_clip_entries("conditioner.embedders.1.model."), **vae_entries(), **unet}


# ----------------------------------------------------------------------------- other kinds of files

def lora_entries() -> dict:
    e = {}
    for i in range(4):
        b = f"lora_unet_down_blocks_0_attentions_{i}_proj_in"
        e[b + ".lora_down.weight"], e[b + ".lora_up.weight"] = ("F16", (4, 320)), ("F16", (320, 4))
        e[b + ".alpha"] = ("F16", ())
    e["lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_down.weight"] = ("F16", (4, 768))
    return e


def upscaler_entries() -> dict:
    return {"conv_first.weight": ("F32", (64, 3, 3, 3)), "body.0.rdb1.conv1.weight": ("F32", (32, 64, 3, 3)),
            "conv_body.weight": ("F32", (64, 64, 3, 3)), "conv_up1.weight": ("F32", (64, 64, 3, 3)),
            "conv_last.weight": ("F32", (3, 64, 3, 3))}


def old_esrgan_entries() -> dict:
    return {"model.0.weight": ("F32", (64, 3, 3, 3)), "model.0.bias": ("F32", (64,)),
            "model.1.sub.0.RDB1.conv1.0.weight": ("F32", (32, 64, 3, 3)), "model.3.weight": ("F32", (64, 64, 3, 3)),
            "model.6.weight": ("F32", (64, 64, 3, 3)), "model.8.weight": ("F32", (64, 64, 3, 3)),
            "model.10.weight": ("F32", (3, 64, 3, 3))}


def controlnet_entries(prefix: str = "control_model.") -> dict:
    e = {f"{prefix}{k}": v for k, v in minimal_entries("SD15", prefix="").items()}
    e[f"{prefix}input_hint_block.0.weight"] = ("F16", (16, 3, 3, 3))
    e[f"{prefix}zero_convs.0.0.weight"] = ("F16", (320, 320, 1, 1))
    e[f"{prefix}middle_block_out.0.weight"] = ("F16", (1280, 1280, 1, 1))
    return e


# ----------------------------------------------------------------------------- whole networks

NETWORKS_JSON = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "comfy_networks.json")


@lru_cache(maxsize=1)
def _networks() -> dict:
    with open(NETWORKS_JSON, encoding="utf-8") as f:
        return json.load(f)


def network_families() -> list:
    """Families whose whole network is in ``data/comfy_networks.json`` (every DiT family)."""
    return sorted(_networks())


def _expand(spec: dict) -> dict:
    out = {}
    for key, shape in spec["keys"].items():
        if "{i}" in key:
            stem = key.split(".{i}.", 1)[0]
            for i in range(spec["counts"][stem]):
                out[key.replace("{i}", str(i), 1)] = tuple(shape)
        else:
            out[key] = tuple(shape)
    return out


def network_entries(family: str, prefix: str = PREFIX, dtype: str = "BF16") -> dict:
    """The family's whole diffusion network (name -> (dtype, shape)) under ``prefix``."""
    return {prefix + k: (dtype, shape) for k, shape in _expand(_networks()[family]).items()}


def network_metadata(family: str):
    """The safetensors ``__metadata__`` a real file of this family carries for ComfyUI (or None)."""
    return _networks().get(family, {}).get("metadata")


def network_class(family: str) -> str:
    """The ComfyUI class that ComfyUI's own detection gave for the family's network."""
    return _networks()[family]["class"]


def checkpoint_entries(family: str, prefix: str = PREFIX) -> dict:
    """A real-sized checkpoint of the family: the whole network plus its value-carrying keys."""
    fam = get_family(family)
    if family in _networks():
        model = network_entries(family, prefix)
    elif "input_blocks" in json.dumps(fam.detection.get("minimal_keys", [])):
        model = ldm_unet_entries(fam.detection["unet_config"], prefix)
    else:  # no whole network on file (Stable Cascade): the fuller DiT key set
        model = {_reprefix(k, prefix): v for k, v in fullish_entries(family).items() if k.startswith(PREFIX)}
    for name, spec in fam.detection.get("extra_keys_with_values", {}).items():
        model[_reprefix(name, prefix)] = value_array(spec)
    return model
