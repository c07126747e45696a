"""Which decoders the previews offer per family (``core.vae.previews``), and the shelf that loads each once."""
from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest
import torch

import vae_factory as vf
from unsampler_gui.core.vae import previews as vp

pytest.importorskip("diffusers")


@pytest.fixture
def files(tmp_path):
    enc, dec = vf.taesd_layout(vf.taesd_network(seed=1))
    return {"enc": vf.save_safetensors(tmp_path / "taesd_encoder.safetensors", enc),
            "dec": vf.save_safetensors(tmp_path / "taesd_decoder.safetensors", dec),
            "kl": vf.save_safetensors(tmp_path / "sd15_vae.safetensors", vf.ldm_layout(vf.kl_network(seed=2))),
            "junk": str((tmp_path / "junk.safetensors").write_bytes(b"\0" * 64) and tmp_path / "junk.safetensors")}


def test_latent2rgb_is_always_there_and_nothing_else_without_files():
    opts = vp.preview_options("SD15")
    assert opts[vp.LATENT2RGB].available
    assert not opts[vp.TAESD].available and "taesd_decoder.pth" in opts[vp.TAESD].reason
    assert "Settings > ComfyUI folder" in opts[vp.TAESD].reason
    assert not opts[vp.VAE].available and "models" in opts[vp.VAE].reason


def test_picked_files(files):
    opts = vp.preview_options("SD15", user_file=files["dec"])
    assert opts[vp.TAESD].available and opts[vp.TAESD].choice.decoder == files["dec"]
    opts = vp.preview_options("SD15", user_file=files["enc"])
    assert not opts[vp.TAESD].available and "taesd_decoder.safetensors" in opts[vp.TAESD].reason
    opts = vp.preview_options("SD15", user_file=files["kl"])
    assert opts[vp.VAE].available and opts[vp.VAE].choice.path == files["kl"]
    opts = vp.preview_options("Flux", user_file=files["kl"])  # a 4-channel VAE for 16-channel latents
    assert not opts[vp.VAE].available and "16-channel" in opts[vp.VAE].reason
    opts = vp.preview_options("SD15", user_file=files["junk"])
    assert not opts[vp.VAE].available and opts[vp.VAE].reason.startswith("junk.safetensors: ")


def test_the_checkpoints_own_vae_comes_first(files, tmp_path):
    ckpt = vf.full_checkpoint(tmp_path / "model.safetensors", vf.ldm_layout(vf.kl_network(seed=3)))
    opts = vp.preview_options("SD15", checkpoint=ckpt)
    assert opts[vp.VAE].choice.kind == "checkpoint" and opts[vp.VAE].choice.path == ckpt


def test_shelf_loads_a_choice_once_from_many_threads(files):
    choice = vp.preview_options("SD15", user_file=files["dec"])[vp.TAESD].choice
    shelf = vp.DecoderShelf("cpu")
    got = []
    threads = [threading.Thread(target=lambda: got.append(shelf.get(choice, "SD15"))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 3 and all(v is got[0] for v in got) and shelf.loaded(choice, "SD15")
    out = vp.decode_frames(got[0], [torch.zeros(4, 8, 8), torch.ones(4, 8, 8)], batch=2)
    assert out.shape == (2, 64, 64, 3) and out.dtype.name == "uint8"
    shelf.keep([])
    assert not shelf.loaded(choice, "SD15")


def test_the_window_does_not_import_diffusers_until_a_decoder_is_used():
    code = ("import sys; import unsampler_gui.qt.main_window, unsampler_gui.qt.viewer_decode; "
            "from unsampler_gui.core.vae.previews import preview_options; preview_options('SD15'); "
            "print('diffusers' in sys.modules)")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"
