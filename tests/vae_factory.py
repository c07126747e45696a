"""Random diffusers VAEs saved in ComfyUI's real file layouts, for the VAE tests (no downloaded weights).

Each ``*_network`` builds a small diffusers network with every weight randomised (so a mix-up of two
tensors of the same shape shows); each ``*_layout`` renames its state dict back to the layout ComfyUI's
files use, from the facts of ComfyUI's own modules:

- LDM AutoencoderKL (``comfy/ldm/modules/diffusionmodules/model.py``): ``encoder.down.{i}.block.{j}``,
  ``downsample.conv``, ``mid.block_1`` / ``attn_1`` / ``block_2``, ``norm_out``, ``nin_shortcut``, 1x1 conv
  attention weights; the decoder's ``up.{i}`` counts from the lowest resolution up;
- Wan 2.1 (``comfy/ldm/wan/vae.py``): ``downsamples`` / ``upsamples`` as flat Sequentials,
  ``residual.{0,2,3,6}``, ``middle.{0,1,2}``, ``head.{0,2}``, ``conv1`` / ``conv2`` around the latent;
- TAESD (``comfy/taesd/taesd.py``): two Sequentials, the decoder's first layer a weightless clamp.

The tests check that diffusers' own converters map these layouts back onto the networks key for key.
"""
from __future__ import annotations

import json
import re

import numpy as np
import torch

import ckpt_factory as cf


def randomize(net: torch.nn.Module, seed: int) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return net.eval().requires_grad_(False)


def kl_network(seed: int = 0, latent_channels: int = 4, quant: bool = True):
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    net = AutoencoderKL(down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        block_out_channels=(32, 32, 64, 64), layers_per_block=1, latent_channels=latent_channels,
                        norm_num_groups=32, use_quant_conv=quant, use_post_quant_conv=quant)
    return randomize(net, seed)


def flux2_network(seed: int = 0):
    from diffusers import AutoencoderKLFlux2

    torch.manual_seed(seed)
    net = AutoencoderKLFlux2(block_out_channels=(32, 32, 32, 32), layers_per_block=1, latent_channels=32)
    net.bn.running_mean.copy_(torch.randn(128) * 0.3)
    net.bn.running_var.copy_(torch.rand(128) + 0.5)
    net.bn.num_batches_tracked.fill_(7)
    return randomize(net, seed)


def wan_network(seed: int = 0):
    from diffusers import AutoencoderKLWan

    torch.manual_seed(seed)
    return randomize(AutoencoderKLWan(base_dim=8, z_dim=16), seed)


def taesd_network(seed: int = 0, latent_channels: int = 4):
    from diffusers import AutoencoderTiny

    torch.manual_seed(seed)
    net = AutoencoderTiny(latent_channels=latent_channels, encoder_block_out_channels=(16,) * 4,
                          decoder_block_out_channels=(16,) * 4)  # real TAESDs are 64 wide; the blocks are theirs
    return randomize(net, seed)


# ---------------------------------------------------------------------------------------------- layouts

_RES = {"conv_shortcut": "nin_shortcut"}
_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def _ldm_name(k: str, n_up: int) -> str:
    k = k.replace("conv_norm_out", "norm_out")
    m = re.match(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.*)", k)
    if m:
        return f"{m.group(1)}.mid.block_{int(m.group(2)) + 1}.{m.group(3)}"
    m = re.match(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.*)\.(weight|bias)", k)
    if m:
        return f"{m.group(1)}.mid.attn_1.{_ATTN[m.group(2)]}.{m.group(3)}"
    m = re.match(r"encoder\.down_blocks\.(\d+)\.(resnets|downsamplers)\.(\d+)\.(.*)", k)
    if m:
        i, kind, j, rest = m.groups()
        if kind == "downsamplers":
            return f"encoder.down.{i}.downsample.{rest}"
        return f"encoder.down.{i}.block.{j}.{rest.replace('conv_shortcut', 'nin_shortcut')}"
    m = re.match(r"decoder\.up_blocks\.(\d+)\.(resnets|upsamplers)\.(\d+)\.(.*)", k)
    if m:
        i, kind, j, rest = m.groups()
        level = n_up - 1 - int(i)
        if kind == "upsamplers":
            return f"decoder.up.{level}.upsample.{rest}"
        return f"decoder.up.{level}.block.{j}.{rest.replace('conv_shortcut', 'nin_shortcut')}"
    return k


def ldm_layout(net) -> dict:
    """An AutoencoderKL (or FLUX.2's) state dict in the LDM layout of ComfyUI's VAE files."""
    sd = net.state_dict()
    n_up = len(net.config.up_block_types)
    out = {}
    for k, v in sd.items():
        name = _ldm_name(k, n_up)
        if ".mid.attn_1." in name and name.endswith("weight") and v.dim() == 2:
            v = v[:, :, None, None]  # LDM attention projections are 1x1 convolutions
        out[name] = v.clone()
    return out


_WAN_RES = {"norm1.gamma": "residual.0.gamma", "conv1.weight": "residual.2.weight", "conv1.bias": "residual.2.bias",
            "norm2.gamma": "residual.3.gamma", "conv2.weight": "residual.6.weight", "conv2.bias": "residual.6.bias",
            "conv_shortcut.weight": "shortcut.weight", "conv_shortcut.bias": "shortcut.bias"}


def _wan_name(k: str) -> str:
    top = {"quant_conv.weight": "conv1.weight", "quant_conv.bias": "conv1.bias",
           "post_quant_conv.weight": "conv2.weight", "post_quant_conv.bias": "conv2.bias"}
    if k in top:
        return top[k]
    m = re.match(r"(encoder|decoder)\.(conv_in|norm_out|conv_out)\.(.*)", k)
    if m:
        part = {"conv_in": "conv1", "norm_out": "head.0", "conv_out": "head.2"}[m.group(2)]
        return f"{m.group(1)}.{part}.{m.group(3)}"
    m = re.match(r"(encoder|decoder)\.mid_block\.(resnets|attentions)\.(\d+)\.(.*)", k)
    if m:
        side, kind, i, rest = m.groups()
        if kind == "attentions":
            return f"{side}.middle.1.{rest}"
        return f"{side}.middle.{2 * int(i)}.{_WAN_RES[rest]}"
    m = re.match(r"encoder\.down_blocks\.(\d+)\.(.*)", k)
    if m:
        i, rest = m.groups()
        return f"encoder.downsamples.{i}.{_WAN_RES.get(rest, rest)}"
    m = re.match(r"decoder\.up_blocks\.(\d+)\.(resnets|upsamplers)\.(\d+)\.(.*)", k)
    if m:
        i, kind, j, rest = int(m.group(1)), m.group(2), int(m.group(3)), m.group(4)
        if kind == "upsamplers":
            return f"decoder.upsamples.{4 * i + 3}.{rest}"
        return f"decoder.upsamples.{4 * i + j}.{_WAN_RES[rest]}"
    raise AssertionError(f"no Wan name for {k}")


def wan_layout(net) -> dict:
    """An AutoencoderKLWan state dict in the layout of ComfyUI's ``wan_2.1_vae.safetensors``."""
    return {_wan_name(k): v.clone() for k, v in net.state_dict().items()}


def taesd_layout(net) -> tuple:
    """(encoder, decoder) state dicts as in ``taesd_encoder.pth`` / ``taesd_decoder.pth``."""
    sd = net.state_dict()
    enc = {k[len("encoder.layers."):]: v.clone() for k, v in sd.items() if k.startswith("encoder.layers.")}
    dec = {}
    for k, v in sd.items():
        if k.startswith("decoder.layers."):
            i, rest = k[len("decoder.layers."):].split(".", 1)
            dec[f"{int(i) + 1}.{rest}"] = v.clone()
    return enc, dec


# ---------------------------------------------------------------------------------------------- files

def save_safetensors(path, tensors: dict, metadata=None) -> str:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=metadata)
    return str(path)


def full_checkpoint(path, vae_state: dict, family: str = "SD15", prefix: str = "first_stage_model.") -> str:
    """A checkpoint as ComfyUI's CheckpointLoader reads it: a sparse full-size UNet and text encoder
    (declared, never read) beside the real VAE tensors under ``prefix``."""
    from unsampler_gui.core.families import get_family

    entries = cf.ldm_unet_entries(get_family(family).detection["unet_config"])
    entries.update(cf.clip_l_entries("cond_stage_model.transformer.", layers=2))
    for k, v in vae_state.items():
        entries[prefix + k] = np.ascontiguousarray(v.numpy().astype(np.float32))
    cf.write_safetensors(path, entries)
    return str(path)


def pixels(h: int = 72, w: int = 56, seed: int = 0) -> np.ndarray:
    """A smooth test picture ``[H, W, 3]`` uint8."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([(xx / w) * 255, (yy / h) * 255, ((xx + yy) % 32) * 8], axis=-1)
    return np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------- ComfyUI

PROMPT = {
    "3": {"class_type": "KSampler", "inputs": {"seed": 156680208700286, "steps": 20, "cfg": 8.0,
                                               "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0,
                                               "model": ["10", 0], "positive": ["6", 0], "negative": ["7", 0],
                                               "latent_image": ["5", 0]}},
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "SD1.5/v1-5-pruned-emaonly.safetensors"}},
    "10": {"class_type": "LoraLoader", "inputs": {"model": ["4", 0], "clip": ["4", 1], "lora_name": "x.safetensors",
                                                  "strength_model": 1.0, "strength_clip": 1.0}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}},
}
WORKFLOW = {"last_node_id": 4, "nodes": [
    {"id": 3, "type": "KSampler", "widgets_values": [7, "fixed", 30, 6.5, "dpmpp_2m", "karras", 0.75],
     "inputs": [{"name": "model", "type": "MODEL", "link": 1}]},
    {"id": 4, "type": "CheckpointLoaderSimple", "widgets_values": ["sdxl.safetensors"], "outputs": []},
], "links": [[1, 4, 0, 3, 0, "MODEL"]]}


def comfy_png(path, prompt=None, workflow=None, size=(64, 48)):
    """A PNG as ComfyUI's SaveImage writes it: tEXt chunks 'prompt' and 'workflow' holding json.dumps(...)."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    if prompt is not None:
        info.add_text("prompt", json.dumps(prompt))
    if workflow is not None:
        info.add_text("workflow", json.dumps(workflow))
    Image.fromarray(pixels(size[1], size[0])).save(path, pnginfo=info, compress_level=4)
    return path


def comfy_folder(root):
    (root / "comfy").mkdir(parents=True)
    (root / "main.py").write_text("")
    for d in ("vae", "vae_approx", "checkpoints", "unet"):
        (root / "models" / d).mkdir(parents=True)
    return root
