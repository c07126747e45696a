"""VAEs from ComfyUI's file layouts: strict loading, and encode/decode bit-identical to the diffusers network
built from the same weights. The weights are random (``vae_factory``); nothing is downloaded."""
from __future__ import annotations

import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

import vae_factory as vf
from unsampler_gui.core.errors import BadFileError, BadParameterError
from unsampler_gui.core.vae import layouts
from unsampler_gui.core.vae import load_taesd as _load_taesd
from unsampler_gui.core.vae import load_vae as _load_vae
from unsampler_gui.core.vae.model import NotAbleError, crop_to_multiple, patchify, unpatchify

pytest.importorskip("diffusers")


def load_vae(path, **kw):
    """On the CPU, where the reference networks run (the default, "auto", takes CUDA when there is one)."""
    return _load_vae(path, device="cpu", **kw)


def load_taesd(**kw):
    return _load_taesd(device="cpu", **kw)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Loading a VAE never opens a connection."""
    def refuse(*args, **kwargs):
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="module")
def picture() -> torch.Tensor:
    """A 70x60 picture (not a multiple of 8 or 16: the crop is exercised), float 0..1, [1, H, W, 3]."""
    return torch.from_numpy(vf.pixels(70, 60)).float().div(255.0)[None]


def reference_input(pixels: torch.Tensor, ratio: int) -> torch.Tensor:
    """What ComfyUI's VAE.encode feeds the network: centred crop, 2x - 1, channels first."""
    return (crop_to_multiple(pixels, ratio) * 2 - 1).movedim(-1, 1).contiguous()


def reference_pixels(decoded: torch.Tensor) -> np.ndarray:
    return ((decoded + 1) / 2).clamp(0, 1).movedim(1, -1).numpy()


@pytest.fixture(scope="module")
def kl():
    return vf.kl_network(seed=1)


def test_ldm_layout_round_trips_through_diffusers_converter(kl):
    """The test's LDM layout is ComfyUI's: diffusers' converter maps it onto the network, key for key."""
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    ldm = vf.ldm_layout(kl)
    assert "encoder.mid.attn_1.q.weight" in ldm and ldm["encoder.mid.attn_1.q.weight"].dim() == 4
    assert "decoder.up.3.upsample.conv.weight" in ldm and "encoder.down.2.block.0.nin_shortcut.weight" in ldm
    converted = convert_ldm_vae_checkpoint(ldm, dict(kl.config))
    assert set(converted) == set(kl.state_dict())


def test_full_checkpoint_vae_is_bit_identical(tmp_path, kl, picture):
    path = vf.full_checkpoint(tmp_path / "sd15.safetensors", vf.ldm_layout(kl))
    vae = load_vae(path)
    assert vae.label.startswith("the VAE of sd15.safetensors") and vae.latent_channels == 4
    assert vae.spatial_ratio == 8 and vae.latent_dims == 2
    assert set(vae.network.state_dict()) == set(kl.state_dict())
    z = vae.encode(picture)
    with torch.inference_mode():
        ref = kl.encode(reference_input(picture, 8)).latent_dist.mean
        ref_pixels = reference_pixels(kl.decode(ref).sample)
    assert z.shape == (1, 4, 8, 7)  # 70x60 -> cropped to 64x56
    assert torch.equal(z, ref)
    assert np.array_equal(vae.decode(z), ref_pixels)


def test_models_vae_file_16_channels_without_quant_conv(tmp_path, picture):
    """SD3 / Flux.1 VAEs: 16 latent channels, no quant_conv (ComfyUI's AutoencodingEngine branch)."""
    net = vf.kl_network(seed=2, latent_channels=16, quant=False)
    vae = load_vae(vf.save_safetensors(tmp_path / "ae.safetensors", vf.ldm_layout(net)))
    assert vae.latent_channels == 16 and vae.label.startswith("ae.safetensors")
    with torch.inference_mode():
        ref = net.encode(reference_input(picture, 8)).latent_dist.mean
    z = vae.encode(picture.numpy())  # numpy in, too
    assert torch.equal(z, ref)
    with torch.inference_mode():
        assert np.array_equal(vae.decode(z[0]), reference_pixels(net.decode(ref).sample))  # one frame [C, h, w]


def test_diffusers_layout_file_loads(tmp_path, kl, picture):
    path = vf.save_safetensors(tmp_path / "diffusion_pytorch_model.safetensors", kl.state_dict())
    vae = load_vae(path)
    with torch.inference_mode():
        assert torch.equal(vae.encode(picture), kl.encode(reference_input(picture, 8)).latent_dist.mean)


def test_flux2_patches_and_batch_norm(tmp_path, picture):
    """FLUX.2: the 32-channel mean in 2x2 patches, normalised by the file's running statistics (eps 1e-4)."""
    net = vf.flux2_network(seed=3)
    vae = load_vae(vf.save_safetensors(tmp_path / "flux2-vae.safetensors", vf.ldm_layout(net)))
    assert vae.network_name == "flux2" and vae.latent_channels == 128 and vae.spatial_ratio == 16
    z = vae.encode(picture)
    assert z.shape == (1, 128, 4, 3)  # 70x60 -> 64x48, /16
    with torch.inference_mode():
        mean = net.encode(reference_input(picture, 16)).latent_dist.mean
        ref = torch.nn.functional.batch_norm(patchify(mean), net.bn.running_mean, net.bn.running_var,
                                             training=False, eps=1e-4)
        assert torch.equal(z, ref)
        s = torch.sqrt(net.bn.running_var.view(1, -1, 1, 1) + 1e-4)
        dec = net.decode(unpatchify(ref * s + net.bn.running_mean.view(1, -1, 1, 1))).sample
    assert np.array_equal(vae.decode(z), reference_pixels(dec))


def test_patchify_is_comfyui_order():
    z = torch.arange(2 * 4 * 6, dtype=torch.float32).reshape(1, 2, 4, 6)
    p = patchify(z)
    assert p.shape == (1, 8, 2, 3)
    assert p[0, 1 * 4 + 1 * 2 + 0, 1, 2] == z[0, 1, 2 * 1 + 1, 2 * 2 + 0]  # (c pi pj) i j
    assert torch.equal(unpatchify(p), z)


def test_wan21_video_vae_one_time_index(tmp_path, picture):
    net = vf.wan_network(seed=4)
    from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

    layout = vf.wan_layout(net)
    assert set(convert_wan_vae_to_diffusers(dict(layout))) == set(net.state_dict())
    vae = load_vae(vf.save_safetensors(tmp_path / "wan_2.1_vae.safetensors", layout))
    assert vae.latent_dims == 3 and vae.latent_channels == 16 and vae.spatial_ratio == 8
    z = vae.encode(picture)
    with torch.inference_mode():
        ref = net.encode(reference_input(picture, 8).movedim(1, 0).unsqueeze(0)).latent_dist.mean
    assert z.shape == (1, 16, 1, 8, 7) and torch.equal(z, ref)
    two = torch.cat([z, z * 0.5], dim=2)  # a 2-step video latent: decode time index 1 on its own
    with torch.inference_mode():
        ref1 = net.decode(two[:, :, 1:2].contiguous()).sample[:, :, 0]
    assert np.array_equal(vae.decode(two, time_index=1), reference_pixels(ref1))


@pytest.mark.parametrize("fmt", ["pth-zip", "pth-legacy", "safetensors"])
def test_taesd_files(tmp_path, picture, fmt):
    net = vf.taesd_network(seed=5)
    enc, dec = vf.taesd_layout(net)
    assert "0.weight" in enc and "1.weight" in dec and "0.weight" not in dec  # the decoder's clamp has no weights
    if fmt == "safetensors":
        e, d = (vf.save_safetensors(tmp_path / f"taesdxl_{n}.safetensors", sd) for n, sd in
                (("encoder", enc), ("decoder", dec)))
    else:
        e, d = tmp_path / "taesdxl_encoder.pth", tmp_path / "taesdxl_decoder.pth"
        torch.save(enc, e, _use_new_zipfile_serialization=fmt == "pth-zip")
        torch.save(dec, d, _use_new_zipfile_serialization=fmt == "pth-zip")
    vae = load_taesd(encoder=e, decoder=d)
    assert vae.approximate and (vae.taesd_scale, vae.taesd_shift) == (0.13025, 0.0)  # VAELoader's taesdxl
    z = vae.encode(picture)
    with torch.inference_mode():
        ref = net.encode(reference_input(picture, 8)).latents / 0.13025
        dec_ref = net.decode(ref * 0.13025).sample if fmt == "safetensors" else None
    assert torch.equal(z, ref)
    if fmt == "safetensors":
        assert np.array_equal(vae.decode(z), reference_pixels(dec_ref))


def test_taesd_decoder_alone_decodes_but_cannot_encode(tmp_path, picture):
    net = vf.taesd_network(seed=6, latent_channels=16)
    _, dec = vf.taesd_layout(net)
    path = vf.save_safetensors(tmp_path / "taef1_decoder.safetensors", dec)
    vae = load_vae(path)  # one TAESD file through the front door
    assert vae.can_decode and not vae.can_encode and (vae.taesd_scale, vae.taesd_shift) == (0.3611, 0.1159)
    z = torch.randn(2, 16, 4, 5)
    with torch.inference_mode():
        ref = net.decode((z - 0.1159) * 0.3611).sample
    assert np.array_equal(vae.decode(z, batch=2), reference_pixels(ref))
    with pytest.raises(NotAbleError, match="no encoder"):
        vae.encode(picture)


def test_taesd_name_unknown_needs_a_family(tmp_path):
    _, dec = vf.taesd_layout(vf.taesd_network(seed=7))
    path = vf.save_safetensors(tmp_path / "my_tiny.safetensors", dec)
    with pytest.raises(BadParameterError, match="cannot tell which TAESD"):
        load_taesd(decoder=path)
    assert load_taesd(decoder=path, family="SD3").taesd_scale == 1.5305  # the family's TAESD is taesd3


def test_taef2_is_refused_clearly(tmp_path):
    _, dec = vf.taesd_layout(vf.taesd_network(seed=7))
    dec["4.pool.0.weight"] = torch.zeros(64, 16, 1, 1)
    with pytest.raises(layouts.UnsupportedVae, match="mid-block GroupNorm"):
        load_vae(vf.save_safetensors(tmp_path / "taef2_decoder.safetensors", dec))


# ---- strictness --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def kl_layout(kl):
    return vf.ldm_layout(kl)


def test_missing_key_is_an_error(tmp_path, kl_layout):
    sd = dict(kl_layout)
    del sd["decoder.up.0.block.0.norm2.weight"]
    with pytest.raises(BadFileError, match=r"vae\.safetensors: 1 key\(s\) the AutoencoderKL needs are missing "
                                           r"\(decoder.up_blocks.3.resnets.0.norm2.weight\)"):
        load_vae(vf.save_safetensors(tmp_path / "vae.safetensors", sd))


def test_unexpected_key_is_an_error(tmp_path, kl_layout):
    sd = dict(kl_layout, **{"encoder.down.0.block.0.extra_norm.weight": torch.zeros(3)})
    with pytest.raises(BadFileError, match=r"1 key\(s\) are not used by the AutoencoderKL "
                                           r"\(encoder.down_blocks.0.resnets.0.extra_norm.weight\)"):
        load_vae(vf.save_safetensors(tmp_path / "vae.safetensors", sd))


def test_key_the_converter_drops_is_an_error(tmp_path, kl_layout):
    sd = dict(kl_layout, **{"decoder.extra.weight": torch.zeros(3)})
    with pytest.raises(BadFileError, match=r"1 key\(s\) of the VAE do not belong to an LDM AutoencoderKL .*"
                                           r"decoder.extra.weight"):
        load_vae(vf.save_safetensors(tmp_path / "vae.safetensors", sd))


def test_shape_mismatch_is_an_error(tmp_path, kl_layout):
    sd = dict(kl_layout)
    sd["decoder.norm_out.weight"] = torch.zeros(7)
    with pytest.raises(BadFileError, match="do not fit the AutoencoderKL: .*size mismatch"):
        load_vae(vf.save_safetensors(tmp_path / "vae.safetensors", sd))


def test_training_only_loss_keys_of_a_full_checkpoint_are_skipped(tmp_path, kl_layout):
    sd = dict(kl_layout, **{"loss.logvar": torch.zeros(())})
    vae = load_vae(vf.full_checkpoint(tmp_path / "full.safetensors", sd))
    assert vae.latent_channels == 4


def test_not_a_vae(tmp_path):
    path = vf.save_safetensors(tmp_path / "lora.safetensors", {"lora_unet_down.alpha": torch.ones(())})
    with pytest.raises(BadFileError, match="lora.safetensors: not a VAE that Unsampler can load .*lora_unet_down"):
        load_vae(path)


def test_wan22_is_refused_clearly(tmp_path):
    sd = {"decoder.middle.0.residual.0.gamma": torch.ones(4),
          "decoder.upsamples.0.upsamples.0.residual.2.weight": torch.ones(4)}
    with pytest.raises(layouts.UnsupportedVae, match="Wan 2.2"):
        load_vae(vf.save_safetensors(tmp_path / "wan2.2_vae.safetensors", sd))


def test_pickled_code_is_refused(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("ran",))

    path = tmp_path / "taesd_decoder.pth"
    path.write_bytes(pickle.dumps({"1.weight": Evil()}))
    with pytest.raises(BadFileError, match="refusing to load: the pickle wants to call builtins.print"):
        load_vae(path)


def test_pickle_storage_past_its_end_is_refused(tmp_path):
    from unsampler_gui.core.vae.torch_weights import read_torch_weights

    path = tmp_path / "w.pth"
    torch.save({"a": torch.zeros(4)}, path)
    w = read_torch_weights(path)
    w.tensors["a"].shape = (40,)
    with pytest.raises(BadFileError, match="past the end of its storage"):
        w.load(["a"])


def test_ckpt_full_checkpoint_pickle(tmp_path, kl, kl_layout, picture):
    """A ``.ckpt`` (torch zip) full checkpoint: only first_stage_model.* is read, the rest is never built."""
    sd = {"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(8, 4, 3, 3)}
    sd.update({f"first_stage_model.{k}": v for k, v in kl_layout.items()})
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": sd, "global_step": 10}, path)
    vae = load_vae(path)
    with torch.inference_mode():
        assert torch.equal(vae.encode(picture), kl.encode(reference_input(picture, 8)).latent_dist.mean)


def test_cancel_and_progress(tmp_path, kl_layout, picture):
    from unsampler_gui.core.errors import Cancelled

    vae = load_vae(vf.save_safetensors(tmp_path / "vae.safetensors", kl_layout))
    seen = []
    vae.decode(torch.zeros(2, 4, 4, 4), progress=lambda d, t: seen.append((d, t)))
    assert seen[-1][0] == seen[-1][1] and [d for d, _ in seen] == sorted(d for d, _ in seen)
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(Cancelled):
        vae.encode(picture, cancel=cancel)
    assert len(calls) == 3  # stopped at the third stage, inside the forward pass


def test_latent_channels_are_checked(tmp_path, kl_layout):
    vae = load_vae(vf.save_safetensors(tmp_path / "vae.safetensors", kl_layout))
    with pytest.raises(BadParameterError, match="decodes 4-channel latents; got a latent of shape \\[1, 16, 4, 4\\]"):
        vae.decode(torch.zeros(1, 16, 4, 4))


def test_core_import_does_not_import_diffusers():
    code = ("import sys, unsampler_gui.core, unsampler_gui.core.vae, unsampler_gui.cli; "
            "assert 'diffusers' not in sys.modules, 'diffusers imported'")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
