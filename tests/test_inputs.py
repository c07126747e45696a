"""Opening inputs without Qt: latents, models, and the one "is this a latent or a model?" decision."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from unsampler_gui import core
from unsampler_gui.core.inputs import (DetectedModel, LoadedLatent, NonFiniteLatent, detect_model, is_latent_file,
                                       load_dropped, load_latent, open_latent)


def _nan_latent(tmp_path):
    x = torch.randn(1, 4, 8, 8)
    x[0, 1, 2, 3] = float("nan")
    x[0, 2, 0, 0] = float("inf")
    p = tmp_path / "nan.latent"
    core.write_latent(p, x)
    return p


def test_open_latent(tmp_path):
    p = tmp_path / "a.latent"
    x = torch.randn(2, 4, 8, 8)
    core.write_latent(p, x)
    lat = open_latent(p)
    assert isinstance(lat, LoadedLatent) and torch.equal(lat.tensor, x) and lat.shape == (2, 4, 8, 8)
    assert lat.name == "a.latent" and lat.path == str(p) and len(lat.sha256) == 64 and lat.kind == "latent"
    assert lat.summary["shape"] == [2, 4, 8, 8] and lat.nonfinite == 0


def test_nonfinite_latents_are_asked_about_or_zeroed(tmp_path):
    p = _nan_latent(tmp_path)
    with pytest.raises(core.BadFileError, match="2 NaN/Inf"):
        open_latent(p)
    bad = load_latent(p)
    assert isinstance(bad, NonFiniteLatent) and bad.count == 2
    lat = load_latent(p, allow_nonfinite=True)
    assert lat.nonfinite == 2 and torch.isfinite(lat.tensor).all() and lat.tensor[0, 1, 2, 3] == 0


def test_latent_or_model(tmp_path):
    from ckpt_factory import minimal_entries, write_safetensors

    lat = tmp_path / "x.latent"
    core.write_latent(lat, torch.zeros(1, 4, 8, 8))
    one = tmp_path / "one.safetensors"
    save_file({"samples": torch.zeros(1, 4, 8, 8)}, str(one))
    model = tmp_path / "sdxl.safetensors"
    write_safetensors(model, minimal_entries("SDXL"))
    garbage = tmp_path / "notes.safetensors"
    garbage.write_bytes(b"hello")
    ckpt = tmp_path / "x.ckpt"
    ckpt.write_bytes(b"whatever")
    assert is_latent_file(lat) and is_latent_file(one)
    assert not is_latent_file(model) and not is_latent_file(tmp_path) and not is_latent_file(ckpt)
    assert not is_latent_file(garbage)  # the model detection will say what it is
    assert isinstance(load_dropped(one), LoadedLatent)
    dropped = load_dropped(model)
    assert isinstance(dropped, DetectedModel) and dropped.family == "SDXL" and dropped.source == str(model)
    with pytest.raises(core.UnsamplerError):
        load_dropped(garbage)


def test_detect_model_names_a_family():
    m = detect_model("sdxl")
    assert m.family == "SDXL" and m.source == "sdxl" and m.detection.family_obj.name == "SDXL"
    with pytest.raises(core.BadParameterError, match="unknown model family"):
        detect_model("SD99")


def test_pictures_and_workflows_are_one_decision(tmp_path):
    """A picture is known by its first bytes whatever its name, or by its name (a broken one then gets the
    picture reader's message, not a safetensors one); a .json is a workflow; the rest is unchanged."""
    from PIL import Image

    from unsampler_gui.core.inputs import PictureInput, open_input, picture_input

    Image.new("RGB", (8, 8)).save(tmp_path / "photo.png")
    (tmp_path / "photo.png").rename(tmp_path / "renamed.bin")
    (tmp_path / "junk.png").write_bytes(b"random bytes")
    (tmp_path / "flow.json").write_text("{}")
    core.write_latent(tmp_path / "a.latent", torch.zeros(1, 4, 8, 8))
    assert load_dropped(tmp_path / "renamed.bin") == PictureInput(str(tmp_path / "renamed.bin"), "picture")
    assert load_dropped(tmp_path / "junk.png").kind == "picture"
    assert open_input(tmp_path / "flow.json") == PictureInput(str(tmp_path / "flow.json"), "workflow")
    assert isinstance(open_input(tmp_path / "a.latent"), LoadedLatent)
    assert picture_input(tmp_path) is None and picture_input(tmp_path / "a.latent") is None
    for ext in (".png", ".jpg", ".jpeg", ".webp", ".json"):
        assert ext in core.inputs.OPENABLE_EXTS


def test_picture_loaded_is_the_source_latent(tmp_path):
    from PIL import Image

    from unsampler_gui.core.inputs import picture_loaded
    from unsampler_gui.core.session import Session
    from unsampler_gui.core.vae import picture_latent

    Image.new("RGB", (20, 17), (200, 100, 50)).save(tmp_path / "p.png")
    res = picture_latent(tmp_path / "p.png", "SD15", allow_approximate=True, device="cpu")
    lat = picture_loaded(res, "SD15")
    assert lat.kind == "picture" and lat.name == "p.png" and lat.shape == (1, 4, 2, 2) and len(lat.sha256) == 64
    assert lat.picture["method"] == "approximate" and lat.picture["family"] == "SD15"
    assert lat.picture["crop"] == [2, 0, 16, 16] and lat.summary["shape"] == [1, 4, 2, 2]
    s = Session()
    s.open_latent(lat)
    assert s.spec().source_picture == lat.picture  # what the export metadata records
