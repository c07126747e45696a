"""One decider for "latent or model?" (core.detect.classify_file), and its callers: the CLI and latent_io."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from unsampler_gui.core.detect import classify_file
from unsampler_gui.core.errors import BadFileError
from unsampler_gui.core.latent_io import read_latent

try:
    import ckpt_factory as cf
except ImportError:  # tests/ imported as a package
    from tests import ckpt_factory as cf


def _file(tmp_path, name, entries):
    path = tmp_path / name
    cf.write_safetensors(path, entries)
    return path


@pytest.mark.parametrize("name, entries, kind", [
    ("lat.safetensors", {"latent_tensor": np.zeros((1, 4, 8, 8), np.float32),
                         "latent_format_version_0": np.zeros((0,), np.float32)}, "latent"),
    ("one.safetensors", {"samples": np.zeros((1, 16, 8, 8), np.float32)}, "latent"),
    ("video.safetensors", {"x": np.zeros((1, 16, 3, 8, 8), np.float32)}, "latent"),
    ("sd3.safetensors", cf.minimal_entries("SD3", prefix=""), "model"),
    ("sd3_prefixed.safetensors", cf.minimal_entries("SD3"), "model"),
    ("two.safetensors", {"a": np.zeros((1, 4, 8, 8), np.float32), "b": np.zeros((3,), np.float32)}, "model"),
    ("unet_key.safetensors", {"input_blocks.0.0.weight": ("F16", (320, 4, 3, 3))}, "model"),
    ("flux_key.safetensors", {"model.diffusion_model.double_blocks.0.img_attn.norm.key_norm.scale":
                              ("F16", (1, 1, 1, 128))}, "model"),
], ids=["latent", "single_4d", "single_5d", "sd3_unet_only", "sd3", "two_tensors", "unet_key", "flux_key"])
def test_classify_file(tmp_path, name, entries, kind):
    assert classify_file(_file(tmp_path, name, entries)) == kind


def test_classify_folders_latent_suffix_and_unreadable(tmp_path):
    assert classify_file(tmp_path) == "model"
    (tmp_path / "x.latent").write_bytes(b"garbage")
    assert classify_file(tmp_path / "x.latent") == "latent"  # read_latent then says what is wrong
    (tmp_path / "m.ckpt").write_bytes(b"PK\x03\x04")
    assert classify_file(tmp_path / "m.ckpt") == "model"


def test_latent_io_refuses_several_tensors_without_latent_tensor(tmp_path):
    path = _file(tmp_path, "two.safetensors", {"a": np.zeros((1, 4, 8, 8), np.float32),
                                               "b": np.zeros((3,), np.float32)})
    with pytest.raises(BadFileError, match="holds 2 tensors and none is called 'latent_tensor'"):
        read_latent(path)


def test_cli_info_reads_an_sd3_unet_only_file_as_a_model(tmp_path):
    path = _file(tmp_path, "sd3_unet.safetensors", cf.minimal_entries("SD3", prefix=""))
    r = subprocess.run([sys.executable, "-m", "unsampler_gui.cli", "info", str(path), "--json"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["family"] == "SD3"


@pytest.mark.parametrize("family", ["Flux2", "WAN_Animate2", "ZImage"])
def test_cli_info_gives_the_newest_family_names(tmp_path, family):
    path = tmp_path / "real.safetensors"
    cf.write_safetensors(path, cf.checkpoint_entries(family), cf.network_metadata(family))
    r = subprocess.run([sys.executable, "-m", "unsampler_gui.cli", "info", str(path), "--json"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["family"] == family and doc["comfy_class"] == cf.network_class(family)
