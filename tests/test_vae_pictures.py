"""Pictures in: reading as LoadImage does, the approximate latent, ComfyUI graphs, the ComfyUI folder search."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import vae_factory as vf
from vae_factory import PROMPT, WORKFLOW, comfy_folder, comfy_png
from unsampler_gui.core import comfy_paths
from unsampler_gui.core.errors import BadFileError, BadParameterError
from unsampler_gui.core.families import get_family
from unsampler_gui.core.vae import (approximate_latent, comfyui_settings, crop_box, read_picture, save_png,
                                    settings_from_chunks, vae_choices)
from unsampler_gui.core.vae.workflow import MAX_JSON_BYTES


# ---- reading pictures ------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt,ext", [("PNG", "png"), ("JPEG", "jpg"), ("WEBP", "webp")])
def test_read_formats_as_loadimage(tmp_path, fmt, ext):
    rgb = vf.pixels(40, 30)
    path = tmp_path / f"p.{ext}"
    Image.fromarray(rgb).save(path, format=fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    pic = read_picture(path)
    assert (pic.width, pic.height) == (30, 40) and pic.pixels.dtype == np.float32
    expect = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / np.float32(255.0)
    assert np.array_equal(pic.pixels, expect)
    if fmt != "JPEG":
        assert np.array_equal(np.round(pic.pixels * 255).astype(np.uint8), rgb)


def test_alpha_dropped_and_exif_orientation(tmp_path):
    rgba = np.dstack([vf.pixels(20, 10), np.full((20, 10), 7, np.uint8)])
    img = Image.fromarray(rgba, "RGBA")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    img.save(tmp_path / "a.png", exif=exif)
    pic = read_picture(tmp_path / "a.png")
    assert (pic.width, pic.height) == (20, 10)  # turned upright, as exif_transpose does
    assert np.array_equal(pic.pixels[0, -1] * 255, rgba[0, 0, :3].astype(np.float32))


@pytest.mark.parametrize("content,match", [
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "cannot read the picture|not a picture"),
    (b"hello, not a picture", "not a picture Unsampler can read"),
])
def test_bad_pictures(tmp_path, content, match):
    path = tmp_path / "photo.png"
    path.write_bytes(content)
    with pytest.raises(BadFileError, match=match):
        read_picture(path)


def test_truncated_png(tmp_path):
    path = tmp_path / "t.png"
    Image.fromarray(vf.pixels(64, 64)).save(path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(BadFileError, match="t.png: cannot"):
        read_picture(path)


def test_other_formats_are_named(tmp_path):
    Image.fromarray(vf.pixels(8, 8)).save(tmp_path / "x.gif")
    with pytest.raises(BadFileError, match="a GIF picture; Unsampler reads PNG, JPEG and WebP"):
        read_picture(tmp_path / "x.gif")


def test_huge_picture_refused_before_decoding(tmp_path, monkeypatch):
    from unsampler_gui.core.vae import images

    Image.fromarray(vf.pixels(100, 100)).save(tmp_path / "big.png")
    monkeypatch.setattr(images, "MAX_PIXELS", 5000)
    with pytest.raises(BadFileError, match="100x100 pixels is more than"):
        read_picture(tmp_path / "big.png")


def test_save_png_is_atomic_and_refuses_overwrite(tmp_path):
    rgb = vf.pixels(8, 8)
    path = save_png(tmp_path / "out.png", rgb)
    assert np.array_equal(np.asarray(Image.open(path)), rgb)
    from unsampler_gui.core.errors import ResourceError

    with pytest.raises(ResourceError, match="already exists"):
        save_png(path, rgb)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_crop_box_is_vae_encodes():
    assert crop_box(60, 70, 8) == (2, 3, 56, 64)
    assert crop_box(64, 64, 16) == (0, 0, 64, 64)


# ---- the approximate latent ------------------------------------------------------------------------------

@pytest.mark.parametrize("family", ["SD15", "SDXL", "Flux", "WAN21_T2V"])
def test_approximate_latent_previews_as_the_picture(family):
    """The latent's ComfyUI preview reproduces the picture's block means (the least-squares inverse)."""
    from unsampler_gui.core.preview import latent_to_rgb

    fam = get_family(family)
    pixels = np.clip(vf.pixels(70, 60).astype(np.float32) / 255 * 0.6 + 0.2, 0, 1)  # inside the preview's range
    z = approximate_latent(pixels, fam)
    assert z.dtype == torch.float32 and z.shape[:2] == (1, fam.latent.channels)
    assert z.shape[-2:] == (8, 7) and z.dim() == fam.latent.ndim
    shown = latent_to_rgb(z[0], fam)
    target = pixels[3:67, 2:58].reshape(8, 8, 7, 8, 3).mean(axis=(1, 3))
    assert np.abs(shown - target).max() < 1e-4


def test_approximate_latent_matches_the_bundled_sample_method():
    """The same steps as packaging/make_sample_latent.py (float64, pinv, process_out)."""
    fam = get_family("SD15")
    pixels = np.full((16, 16, 3), 0.5, np.float32)
    z = approximate_latent(pixels, fam)
    f = np.asarray(fam.latent.rgb_factors)
    expect = (np.zeros(3) @ np.linalg.pinv(f)) / fam.latent.scale_factor
    assert np.allclose(z[0, :, 0, 0].numpy(), expect, atol=1e-7)


def test_approximate_latent_without_factors():
    import dataclasses

    sd = get_family("SD15")
    fam = dataclasses.replace(sd, latent=dataclasses.replace(sd.latent, rgb_factors=None))
    with pytest.raises(BadParameterError, match="no latent preview factors"):
        approximate_latent(np.zeros((16, 16, 3), np.float32), fam)


# ---- ComfyUI graphs --------------------------------------------------------------------------------------

def test_saveimage_png_settings(tmp_path):
    s = comfyui_settings(comfy_png(tmp_path / "ComfyUI_00001_.png", PROMPT, WORKFLOW))
    assert s.graph == "prompt"
    assert s.values == {"sampler": "euler", "scheduler": "normal", "steps": 20, "denoise": 1.0,
                        "seed": 156680208700286, "model": "SD1.5/v1-5-pruned-emaonly.safetensors"}
    assert s.sources["model"] == "CheckpointLoaderSimple #4" and s.model_kind == "checkpoints"
    assert s.sources["steps"] == "KSampler #3"


def test_workflow_chunk_alone(tmp_path):
    s = comfyui_settings(comfy_png(tmp_path / "w.png", None, WORKFLOW))
    assert s.graph == "workflow"
    assert s.values == {"seed": 7, "steps": 30, "sampler": "dpmpp_2m", "scheduler": "karras", "denoise": 0.75,
                        "model": "sdxl.safetensors"}


def test_ksampler_advanced_and_unet_loader():
    prompt = {"1": {"class_type": "UNETLoader", "inputs": {"unet_name": "flux1-dev.safetensors",
                                                         "weight_dtype": "default"}},
              "2": {"class_type": "ModelSamplingFlux", "inputs": {"model": ["1", 0], "max_shift": 1.15}},
              "3": {"class_type": "KSamplerAdvanced", "inputs": {
                  "add_noise": "enable", "noise_seed": 5, "steps": 40, "cfg": 1.0, "sampler_name": "euler",
                  "scheduler": "simple", "start_at_step": 10, "end_at_step": 30,
                  "return_with_leftover_noise": "disable", "model": ["2", 0]}}}
    s = settings_from_chunks({"prompt": json.dumps(prompt)})
    assert s.values == {"sampler": "euler", "scheduler": "simple", "steps": 40, "seed": 5, "start_at_step": 10,
                        "end_at_step": 30, "model": "flux1-dev.safetensors"}
    assert s.model_kind == "diffusion_models"


def test_sampler_custom_with_basic_scheduler():
    prompt = {"13": {"class_type": "SamplerCustom", "inputs": {
        "add_noise": True, "noise_seed": ["20", 0], "cfg": 3.5, "model": ["4", 0], "sampler": ["16", 0],
        "sigmas": ["17", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
        "16": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "dpmpp_2m_sde"}},
        "17": {"class_type": "BasicScheduler", "inputs": {"scheduler": "beta", "steps": 12, "denoise": 0.6,
                                                          "model": ["4", 0]}},
        "20": {"class_type": "PrimitiveInt", "inputs": {"value": 99}},
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd3.5_large.safetensors"}}}
    s = settings_from_chunks({"prompt": json.dumps(prompt)})
    assert s.values == {"sampler": "dpmpp_2m_sde", "scheduler": "beta", "steps": 12, "denoise": 0.6, "seed": 99,
                        "model": "sd3.5_large.safetensors"}
    assert s.sources["scheduler"] == "BasicScheduler #17" and s.sources["sampler"] == "KSamplerSelect #16"


def test_sampler_custom_advanced():
    prompt = {"13": {"class_type": "SamplerCustomAdvanced", "inputs": {
        "noise": ["25", 0], "guider": ["22", 0], "sampler": ["16", 0], "sigmas": ["17", 0],
        "latent_image": ["5", 0]}},
        "25": {"class_type": "RandomNoise", "inputs": {"noise_seed": 1234}},
        "22": {"class_type": "BasicGuider", "inputs": {"model": ["12", 0], "conditioning": ["6", 0]}},
        "16": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "17": {"class_type": "BasicScheduler", "inputs": {"scheduler": "simple", "steps": 20, "denoise": 1,
                                                          "model": ["12", 0]}},
        "12": {"class_type": "UNETLoader", "inputs": {"unet_name": "flux/flux1-dev.sft", "weight_dtype": "fp8"}}}
    s = settings_from_chunks({"prompt": json.dumps(prompt)})
    assert s.values == {"sampler": "euler", "scheduler": "simple", "steps": 20, "denoise": 1.0, "seed": 1234,
                        "model": "flux/flux1-dev.sft"}


def test_two_samplers_take_the_first_and_say_so():
    prompt = dict(PROMPT, **{"12": {"class_type": "KSampler", "inputs": dict(PROMPT["3"]["inputs"], steps=8)}})
    s = settings_from_chunks({"prompt": json.dumps(prompt)})
    assert s.values["steps"] == 20 and any("2 samplers" in n for n in s.notes)


@pytest.mark.parametrize("inputs,left_out", [
    ({"steps": "twenty"}, "steps"), ({"steps": 0}, "steps"), ({"denoise": 1.5}, "denoise"),
    ({"seed": -1}, "seed"), ({"seed": True}, "seed"), ({"sampler_name": ["x"] * 3}, "sampler"),
    ({"sampler_name": {"a": 1}}, "sampler"), ({"steps": ["99", 0]}, "steps"),
])
def test_wrong_types_are_left_out_with_a_note(inputs, left_out):
    node = {"class_type": "KSampler", "inputs": dict(PROMPT["3"]["inputs"], **inputs)}
    s = settings_from_chunks({"prompt": json.dumps({"3": node})})
    assert left_out not in s.values and s.notes


def test_nan_denoise_is_left_out():
    s = settings_from_chunks({"prompt": json.dumps({"3": PROMPT["3"]}).replace("1.0", "NaN")})
    assert "denoise" not in s.values


@pytest.mark.parametrize("text,match", [
    ("[" * 100000 + "]" * 100000, "nested too deeply"),
    ('{"3": ', "not valid JSON"),
    ("[1, 2]", "not a JSON object of nodes"),
    ('{"1": ' + "9" * 5000 + "}", "not valid JSON"),
])
def test_hostile_prompt_chunks(text, match):
    with pytest.raises(BadFileError, match=match):
        settings_from_chunks({"prompt": text})


def test_huge_json_file(tmp_path):
    path = tmp_path / "huge.json"
    with open(path, "wb") as f:
        f.truncate(MAX_JSON_BYTES + 1)
    with pytest.raises(BadFileError, match="huge.json: .* bytes, more than"):
        comfyui_settings(path)


def test_link_cycles_and_junk_nodes_terminate():
    prompt = {"3": {"class_type": "KSampler", "inputs": dict(PROMPT["3"]["inputs"], model=["7", 0],
                                                             seed=["8", 0])},
              "7": {"class_type": "LoraLoader", "inputs": {"model": ["7", 0]}},
              "8": {"class_type": "Anything", "inputs": {"x": ["8", 0]}},
              "9": "junk", "10": {"class_type": 5, "inputs": []}}
    s = settings_from_chunks({"prompt": json.dumps(prompt)})
    assert "model" not in s.values and "seed" not in s.values and s.values["steps"] == 20


def test_json_workflow_files(tmp_path):
    (tmp_path / "api.json").write_text(json.dumps(PROMPT))
    (tmp_path / "ui.json").write_text(json.dumps(WORKFLOW))
    assert comfyui_settings(tmp_path / "api.json").values["steps"] == 20
    assert comfyui_settings(tmp_path / "ui.json").values["steps"] == 30


def test_png_without_graph(tmp_path):
    assert comfyui_settings(comfy_png(tmp_path / "plain.png")) is None


# ---- the ComfyUI folder ----------------------------------------------------------------------------------

def test_extra_model_paths_yaml(tmp_path):
    root = comfy_folder(tmp_path / "ComfyUI")
    other = tmp_path / "a1111"
    (other / "models" / "VAE").mkdir(parents=True)
    (other / "models" / "VAE" / "sub").mkdir()
    (other / "models" / "VAE" / "sub" / "x.safetensors").write_bytes(b"")
    (root / "extra_model_paths.yaml").write_text(
        "a111:\n  base_path: ../a1111\n  vae: |\n    models/VAE\n    models/missing\n  unet: models/unet\n"
        "broken:\n  vae: 5\nempty:\n")
    found, warnings = comfy_paths.extra_model_paths(root)
    assert found["vae"][0] == (other / "models" / "VAE").resolve()
    assert "diffusion_models" in found  # the legacy name is mapped
    assert any("broken.vae is not text" in w for w in warnings)
    assert comfy_paths.model_folders(root, "vae") == [root / "models" / "vae", (other / "models" / "VAE").resolve()]
    names = [n for n, _ in comfy_paths.list_model_files(root, "vae", (".safetensors",))]
    assert names == ["sub/x.safetensors"]
    assert comfy_paths.find_model_file(root, "vae", "sub\\x.safetensors") is not None


@pytest.mark.parametrize("yaml_text", ["a: [unclosed", "- just\n- a list\n", "&a [*a, *a]", "x: !!python/object:os.system {}"])
def test_bad_yaml_is_a_warning(tmp_path, yaml_text):
    root = comfy_folder(tmp_path / "ComfyUI")
    (root / "extra_model_paths.yaml").write_text(yaml_text)
    found, warnings = comfy_paths.extra_model_paths(root)
    assert found == {} and warnings
    assert comfy_paths.model_folders(root, "vae") == [root / "models" / "vae"]


def test_find_model_file_never_leaves_the_folder(tmp_path):
    root = comfy_folder(tmp_path / "ComfyUI")
    (root / "secret.safetensors").write_bytes(b"")
    (root / "models" / "checkpoints" / "ok.safetensors").write_bytes(b"")
    assert comfy_paths.find_model_file(root, "checkpoints", "ok.safetensors") is not None
    for bad in ("../../secret.safetensors", "/etc/passwd", "", "a\x00b", 5):
        assert comfy_paths.find_model_file(root, "checkpoints", bad) is None


def test_vae_choices_order(tmp_path):
    """The checkpoint's own VAE, then fitting models/vae files (named ones first), then the TAESD."""
    root = comfy_folder(tmp_path / "ComfyUI")
    kl = vf.kl_network(seed=9)
    ckpt = vf.full_checkpoint(root / "models" / "checkpoints" / "sd15.safetensors", vf.ldm_layout(kl))
    vf.save_safetensors(root / "models" / "vae" / "any_vae.safetensors", vf.ldm_layout(kl))
    vf.save_safetensors(root / "models" / "vae" / "vae-ft-mse-840000.safetensors", vf.ldm_layout(kl))
    vf.save_safetensors(root / "models" / "vae" / "ae.safetensors",
                        vf.ldm_layout(vf.kl_network(seed=9, latent_channels=16, quant=False)))
    enc, dec = vf.taesd_layout(vf.taesd_network(seed=9))
    torch.save(enc, root / "models" / "vae_approx" / "taesd_encoder.pth")
    torch.save(dec, root / "models" / "vae_approx" / "taesd_decoder.pth")
    choices, notes = vae_choices("SD15", checkpoint=ckpt, comfy_root=root)
    assert [c.kind for c in choices] == ["checkpoint", "file", "file", "taesd"]
    assert [c.label for c in choices[1:3]] == ["models/vae/vae-ft-mse-840000.safetensors",
                                               "models/vae/any_vae.safetensors"]
    assert choices[3].encoder.endswith("taesd_encoder.pth") and choices[3].decoder.endswith("taesd_decoder.pth")
    assert any("ae.safetensors" in n and "16-channel" in n for n in notes)
    flux, _ = vae_choices("Flux", comfy_root=root)
    assert [c.label for c in flux] == ["models/vae/ae.safetensors"]


def test_vae_choices_put_the_users_file_after_the_checkpoints(tmp_path):
    """A VAE file the user chose comes after the checkpoint's own VAE and before models/vae (listed once); one
    that does not fit is a note, unless the user insists (chose it just now: loading it will say why)."""
    root = comfy_folder(tmp_path / "ComfyUI")
    kl = vf.kl_network(seed=9)
    ckpt = vf.full_checkpoint(root / "models" / "checkpoints" / "sd15.safetensors", vf.ldm_layout(kl))
    other = vf.save_safetensors(root / "models" / "vae" / "any_vae.safetensors", vf.ldm_layout(kl))
    mine = vf.save_safetensors(root / "models" / "vae" / "mine.safetensors", vf.ldm_layout(kl))
    choices, _ = vae_choices("SD15", checkpoint=ckpt, comfy_root=root, user_file=mine)
    assert [(c.kind, c.path) for c in choices] == [("checkpoint", str(ckpt)), ("file", str(mine)),
                                                   ("file", str(other))]
    flux = vf.save_safetensors(tmp_path / "ae.safetensors",
                               vf.ldm_layout(vf.kl_network(seed=9, latent_channels=16, quant=False)))
    choices, notes = vae_choices("SD15", comfy_root=root, user_file=flux)
    assert all(c.path != str(flux) for c in choices)
    assert any(n.startswith("ae.safetensors: ") and "16-channel" in n for n in notes)
    choices, _ = vae_choices("SD15", comfy_root=root, user_file=flux, insist=True)
    assert choices[0].path == str(flux)


def test_picture_latent_without_vae(tmp_path):
    from unsampler_gui.core.vae import picture_latent

    path = comfy_png(tmp_path / "p.png")
    with pytest.raises(BadParameterError, match=r"no VAE found for SDXL: .*models/vae.*taesdxl_encoder"):
        picture_latent(path, "SDXL")
    res = picture_latent(path, "SDXL", allow_approximate=True, device="cpu")
    assert res.approximate and res.method == "approximate" and "approximate" in res.notes[-1]
    assert res.latent.shape == (1, 4, 6, 8) and res.crop == (0, 0, 64, 48)


def test_diffusers_folder_vae_is_the_checkpoints(tmp_path):
    kl = vf.kl_network(seed=12)
    (tmp_path / "pipe" / "vae").mkdir(parents=True)
    vf.save_safetensors(tmp_path / "pipe" / "vae" / "diffusion_pytorch_model.safetensors", kl.state_dict())
    choices, _ = vae_choices("SD15", checkpoint=tmp_path / "pipe")
    assert [(c.kind, c.label) for c in choices] == [("checkpoint", "the VAE of pipe")]
    vae = choices[0].load(device="cpu")
    x = torch.rand(1, 16, 16, 3)
    with torch.inference_mode():
        assert torch.equal(vae.encode(x), kl.encode((x * 2 - 1).movedim(-1, 1).contiguous()).latent_dist.mean)


def test_vae_data_ships_with_the_package():
    import tomllib
    from pathlib import Path

    conf = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    tool = conf["tool"]["setuptools"]
    assert {"unsampler_gui.core.vae", "unsampler_gui.core.vae.data"} <= set(tool["packages"])
    assert tool["package-data"]["unsampler_gui.core.vae.data"] == ["*.json"]
    assert "diffusers" in " ".join(conf["project"]["optional-dependencies"]["vae"])
    assert "unsampler[vae]" in conf["project"]["optional-dependencies"]["test"]


def test_run_values_for_the_form():
    """A ComfyUI sampler in the node's terms: KSampler runs the whole schedule; denoise d keeps the last steps of
    int(steps / d) (KSampler.set_steps); KSamplerAdvanced keeps its slice; values the form cannot take are named."""
    from unsampler_gui.core.vae.workflow import run_values

    values, sources, notes = run_values(settings_from_chunks({"prompt": json.dumps(PROMPT)}))
    assert values == {"sampler": "euler", "scheduler": "normal", "steps": 20, "start_at_step": 0, "end_at_step": 10000}
    assert sources["steps"] == "KSampler #3" and any(n.startswith("seed 156680208700286 left out") for n in notes)
    node = dict(PROMPT["3"], inputs=dict(PROMPT["3"]["inputs"], denoise=0.6, seed=5, sampler_name="nope"))
    values, _, notes = run_values(settings_from_chunks({"prompt": json.dumps(dict(PROMPT, **{"3": node}))}))
    assert values == {"scheduler": "normal", "seed": 5, "steps": 33, "start_at_step": 13, "end_at_step": 33}
    assert any("last 20 of 33 steps" in n for n in notes) and any(n.startswith("sampler 'nope' left out") for n in notes)
    adv = {"1": {"class_type": "KSamplerAdvanced", "inputs": {"noise_seed": 3, "steps": 30, "sampler_name": "euler",
                                                             "scheduler": "karras", "start_at_step": 4,
                                                             "end_at_step": 12}}}
    values, _, _ = run_values(settings_from_chunks({"prompt": json.dumps(adv)}))
    assert (values["steps"], values["start_at_step"], values["end_at_step"], values["seed"]) == (30, 4, 12, 3)
    big = dict(PROMPT, **{"3": dict(PROMPT["3"], inputs=dict(PROMPT["3"]["inputs"], steps=9000, denoise=0.5))})
    values, _, notes = run_values(settings_from_chunks({"prompt": json.dumps(big)}))
    assert "steps" not in values and "start_at_step" not in values and any("steps 18000 left out" in n for n in notes)
