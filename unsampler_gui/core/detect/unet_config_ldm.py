"""The LDM UNet's configuration, read from key names and shapes (SD1.x, SD2.x, SDXL, SVD, ...).

This follows what ComfyUI's ``detect_unet_config`` derives for ``input_blocks.*`` models: walk the
input blocks in order; a block with ``0.in_layers.0.weight`` is a res block, whose transformer
(``1.transformer_blocks.N``) depth is counted; a block with ``0.op.weight`` is a downsampler that
closes a resolution level. The first transformer gives the context dim (``attn2.to_k`` width),
whether ``proj_in`` is linear (2-D) and whether the model has temporal layers (SVD).
"""
from __future__ import annotations

from typing import Optional

from .state_dict import KeyView


class IncompleteModel(Exception):
    """The keys say which architecture this is, but a tensor the rules need is missing or misshapen."""


def need_shape(view: KeyView, key: str, ndim: Optional[int] = None) -> tuple:
    """The shape of ``key``, or ``IncompleteModel`` if it is missing (or has the wrong rank)."""
    shape = view.shape(key)
    if shape is None:
        raise IncompleteModel(f"`{key}` is missing")
    if ndim is not None and len(shape) != ndim:
        raise IncompleteModel(f"`{key}` has shape {list(shape)}, expected {ndim} dimensions")
    return shape


def _transformer(view: KeyView, block: str) -> Optional[dict]:
    """Depth and properties of the transformer at ``<block>1.``, or None when the block has none."""
    stem = f"{block}1.transformer_blocks."
    if not view.has_under(stem):
        return None
    return {
        "depth": view.count_blocks(stem + "{}."),
        "context_dim": need_shape(view, f"{stem}0.attn2.to_k.weight", 2)[1],
        "use_linear_in_transformer": len(need_shape(view, f"{block}1.proj_in.weight")) == 2,
        "temporal": any(view.has(f"{block}1.{t}.0.attn1.to_q.weight") for t in ("time_stack", "time_mix_blocks")),
        "temporal_cross": any(view.has(f"{block}1.{t}.0.attn2.to_q.weight") for t in ("time_stack", "time_mix_blocks")),
    }


def _walk_input_blocks(view: KeyView, model_channels: int) -> dict:
    """Res blocks per level, channel multipliers and transformer depths of the input blocks."""
    num_res, mults, depths = [], [], []
    first = None
    res_in_level, mult = 0, 0
    for i in range(view.count_blocks("input_blocks.{}.")):
        block = f"input_blocks.{i}."
        if view.has(block + "0.op.weight"):  # a downsampler closes the level
            num_res.append(res_in_level)
            mults.append(mult)
            res_in_level, mult = 0, 0
        elif view.has(block + "0.in_layers.0.weight"):
            res_in_level += 1
            mult = need_shape(view, block + "0.out_layers.3.weight")[0] // model_channels
            tr = _transformer(view, block)
            depths.append(tr["depth"] if tr else 0)
            if tr and first is None:
                first = tr
    num_res.append(res_in_level)
    mults.append(mult)
    return {"num_res_blocks": num_res, "channel_mult": mults, "transformer_depth": depths, "first": first}


def _middle_depth(view: KeyView) -> int:
    """Transformer depth of the middle block: -1 for res blocks only, -2 for no middle block."""
    if view.has("middle_block.1.proj_in.weight"):
        return view.count_blocks("middle_block.1.transformer_blocks.{}.")
    return -1 if view.has("middle_block.0.in_layers.0.weight") else -2


def unet_config(view: KeyView) -> dict:
    """ComfyUI's unet_config for an LDM UNet whose ``input_blocks.0.0.weight`` is present."""
    conv_in = need_shape(view, "input_blocks.0.0.weight", 4)
    model_channels, in_channels = conv_in[0], conv_in[1]
    label = view.shape("label_emb.0.0.weight")
    if label is not None and len(label) != 2:
        raise IncompleteModel(f"`label_emb.0.0.weight` has shape {list(label)}, expected 2 dimensions")
    out = view.shape("out.2.weight")
    walk = _walk_input_blocks(view, model_channels)
    first = walk.pop("first") or {}
    temporal = bool(first.get("temporal"))
    return {
        "in_channels": in_channels,
        "out_channels": out[0] if out else 4,
        "model_channels": model_channels,
        "adm_in_channels": label[1] if label else None,
        **walk,
        "transformer_depth_middle": _middle_depth(view),
        "use_linear_in_transformer": bool(first.get("use_linear_in_transformer", False)),
        "context_dim": first.get("context_dim"),
        "use_temporal_resblock": temporal,
        "use_temporal_attention": temporal,
    }
