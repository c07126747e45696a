"""``unsampler encode / decode / info PICTURE / run --image``, run as a user would, on a ComfyUI folder of random
VAEs in ComfyUI's layouts."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import vae_factory as vf
from vae_factory import PROMPT, WORKFLOW, comfy_folder, comfy_png
from unsampler_gui.core.latent_io import read_latent

pytest.importorskip("diffusers")


def cli(*args):
    env = dict(os.environ)
    env.pop("UNSAMPLER_COMFYUI", None)
    return subprocess.run([sys.executable, "-m", "unsampler_gui.cli", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def comfy(tmp_path_factory):
    """A ComfyUI folder: the prompt's checkpoint (with its VAE), and a TAESD pair in models/vae_approx."""
    root = comfy_folder(tmp_path_factory.mktemp("cli") / "ComfyUI")
    (root / "models" / "checkpoints" / "SD1.5").mkdir()
    ckpt = vf.full_checkpoint(root / "models" / "checkpoints" / "SD1.5" / "v1-5-pruned-emaonly.safetensors",
                              vf.ldm_layout(vf.kl_network(seed=11)))
    enc, dec = vf.taesd_layout(vf.taesd_network(seed=11))
    vf.save_safetensors(root / "models" / "vae_approx" / "taesd_encoder.safetensors", enc)
    vf.save_safetensors(root / "models" / "vae_approx" / "taesd_decoder.safetensors", dec)
    png = comfy_png(root / "ComfyUI_00001_.png", PROMPT, WORKFLOW, size=(60, 70))
    return root, ckpt, png


def test_info_picture_json(comfy):
    root, ckpt, png = comfy
    r = cli("info", png, "--json", "--comfyui", root)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert (d["kind"], d["format"], d["width"], d["height"]) == ("picture", "PNG", 60, 70)
    assert d["comfyui"] == {"sampler": "euler", "scheduler": "normal", "steps": 20, "denoise": 1.0,
                            "seed": 156680208700286, "model": "SD1.5/v1-5-pruned-emaonly.safetensors"}
    assert d["comfyui_model_path"] == ckpt
    r = cli("info", png)
    assert r.returncode == 0 and "steps          20  (KSampler #3, prompt)" in r.stdout


def test_info_workflow_json_file(tmp_path):
    (tmp_path / "flow.json").write_text(json.dumps(WORKFLOW))
    r = cli("info", tmp_path / "flow.json", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["kind"] == "workflow" and d["comfyui"]["sampler"] == "dpmpp_2m" and "start_at_step" not in d["comfyui"]


def test_info_hostile_picture(tmp_path):
    path = comfy_png(tmp_path / "bad.png")
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("prompt", "[" * 50000)
    Image.open(path).save(path, pnginfo=info)
    r = cli("info", path, "--json")
    assert r.returncode == 2 and r.stderr.strip() == \
        "unsampler: error: the prompt chunk is nested too deeply to be a ComfyUI graph"


def test_encode_with_checkpoint_vae_then_decode_with_taesd(comfy, tmp_path):
    from unsampler_gui.core.vae import decode_to_uint8, load_taesd, load_vae, read_picture

    root, ckpt, png = comfy
    out = tmp_path / "photo.latent"
    r = cli("encode", png, "--model", ckpt, "--device", "cpu", "--output", out)
    assert r.returncode == 0, r.stderr
    assert "cropped to 56x64 at (2, 3); encoded with the VAE of v1-5-pruned-emaonly.safetensors" in r.stderr
    lat = read_latent(out)
    assert lat.has_marker and lat.shape == (1, 4, 8, 7)
    expect = load_vae(ckpt, device="cpu").encode(read_picture(png).pixels)
    assert torch.equal(lat.tensor, expect)
    meta = json.loads(lat.metadata["unsampler_picture"])
    assert meta["method"] == "vae" and meta["family"] == "SD15" and meta["crop"] == [2, 3, 56, 64]

    dec = root / "models" / "vae_approx" / "taesd_decoder.safetensors"
    r = cli("decode", out, "--taesd", dec, "--device", "cpu", "--output", tmp_path / "frame.png")
    assert r.returncode == 0, r.stderr
    shown = np.asarray(Image.open(tmp_path / "frame.png"))
    assert np.array_equal(shown, decode_to_uint8(load_taesd(decoder=dec, device="cpu"), lat.tensor)[0])
    assert shown.shape == (64, 56, 3)


def test_encode_without_vae_explains_and_approximates(tmp_path, comfy):
    _, _, png = comfy
    r = cli("encode", png, "--model", "Flux", "--output", tmp_path / "f.latent")
    assert r.returncode == 2 and "no VAE found for Flux.1 dev" in r.stderr and "--approximate" in r.stderr
    assert not (tmp_path / "f.latent").exists()
    r = cli("encode", png, "--model", "Flux", "--approximate", "--output", tmp_path / "f.latent")
    assert r.returncode == 0 and "APPROXIMATE latent" in r.stderr
    assert json.loads(read_latent(tmp_path / "f.latent").metadata["unsampler_picture"])["approximate"] is True


def test_run_image_shortcut_and_decode_frames(comfy, tmp_path):
    root, _, png = comfy
    out = tmp_path / "run.latent"
    r = cli("run", "--image", png, "--model", "SD15", "--comfyui", root, "--steps", "4", "--device", "cpu",
            "--output", out)
    assert r.returncode == 0, r.stderr
    assert "encoded with TAESD taesd" in r.stderr  # no checkpoint named: the folder's TAESD encoder
    lat = read_latent(out)
    assert lat.shape == (4, 4, 8, 7)
    assert lat.unsampler["source"]["name"] == "ComfyUI_00001_.png"
    picture = json.loads(lat.metadata["unsampler"])["source"]["picture"]  # the export records picture and VAE
    assert picture["source"] == "ComfyUI_00001_.png" and picture["method"] == "taesd"
    assert picture["encoder"].startswith("TAESD taesd") and picture["family"] == "SD15"
    r = cli("decode", out, "--model", "SD15", "--comfyui", root, "--frames", "0,-1", "--device", "cpu",
            "--output", tmp_path / "frames")
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(tmp_path / "frames")) == ["run_00000.png", "run_00003.png"]
    r = cli("decode", out, "--model", "SD15", "--comfyui", root, "--output", tmp_path / "one.png")
    assert r.returncode == 2 and "4 frames to write: give a folder" in r.stderr


def test_run_needs_one_source(comfy):
    r = cli("run", "--model", "SD15", "--output", "x.latent")
    assert r.returncode == 2 and "--latent FILE or --image PICTURE" in r.stderr
    r = cli("run", "--model", "SD15", "--latent", comfy[2], "--output", "x.latent")
    assert r.returncode == 2 and "ComfyUI_00001_.png is a picture, not a latent: use --image" in r.stderr
