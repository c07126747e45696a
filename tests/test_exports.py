"""The export registry without Qt: every kind, from the current result or made for the export."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from unsampler_gui import core
from unsampler_gui.core import exports, params
from unsampler_gui.core.exports import EXPORTS, ExportSource, export_job


def _spec(steps=10, batch=2, **kw):
    lat = torch.randn(batch, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    return params.make_spec(params.default().replace(steps=steps, seed=5, **kw), core.get_family("SD15"), lat,
                            source_name="in.latent")


def _sources(spec):
    """The same inputs with a current result, and without one (the export makes what it needs)."""
    res = core.run_unsample(spec)
    return (ExportSource(result=res, spec=spec, plan=res.plan, stem="s"),
            ExportSource(result=None, spec=spec, plan=None, stem="s"))


class Cancelling(core.Reporter):
    def is_cancelled(self):
        return True


def test_the_registry():
    assert list(EXPORTS) == ["latent", "comfyui", "sigmas_json", "sigmas_text", "contact_sheet", "animation"]
    for k in EXPORTS.values():
        assert k.label and k.menu and k.ext.startswith(".") and k.needs in (exports.SCHEDULE, exports.FRAMES)
        assert k.filter == "" or f"*{k.ext}" in k.filter
    assert set(exports.all_options()) == {"which", "cell", "fps", "size", "item"}
    sheet = EXPORTS[exports.SHEET]
    assert sheet.default_every(10000) == 157 and sheet.default_every(10) == 1
    assert EXPORTS[exports.LATENT].default_every(10000) == 1
    assert EXPORTS[exports.ANIMATION].target("/tmp/x") == "/tmp/x.webp"


def test_what_each_kind_draws_on():
    with_result, without = _sources(_spec())
    none = ExportSource(result=None, spec=None, spec_error="no latent: open one")
    lat, sheet, sig = EXPORTS["latent"], EXPORTS["contact_sheet"], EXPORTS["sigmas_json"]
    assert lat.source_text(with_result) == ("from the last run: 10 frames of [20, 4, 8, 8]", True)
    assert "straight to the file" in lat.source_text(without)[0] and lat.source_text(without)[1]
    assert "made for the pictures" in sheet.source_text(without)[0]
    assert sig.source_text(without) == ("the sigmas of the current parameters (no run needed)", True)
    text, ok = lat.source_text(none)
    assert not ok and "no latent" in text
    with pytest.raises(core.BadParameterError, match="no latent"):
        sig.check(none)


@pytest.mark.parametrize("positions", [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [9, 6, 3, 0], [4]])
def test_latent_from_the_result_equals_the_streamed_run(tmp_path, positions):
    with_result, without = _sources(_spec())
    a = export_job("latent", with_result, str(tmp_path / "a.latent"), positions, False, {})(core.Reporter())
    b = export_job("latent", without, str(tmp_path / "b.latent"), positions, False, {})(core.Reporter())
    rows = [p * 2 + i for p in positions for i in range(2)]
    want = with_result.result.latent[rows]
    assert torch.equal(load_file(a)["latent_tensor"], want) and torch.equal(load_file(b)["latent_tensor"], want)


def test_comfyui_folder(tmp_path):
    comfy = tmp_path / "ComfyUI"
    (comfy / "comfy").mkdir(parents=True)
    (comfy / "main.py").write_text("")
    src = _sources(_spec())[0]
    path = export_job("comfyui", src, None, [0, 1], False, {"comfy_root": str(comfy), "stem": "x"})(core.Reporter())
    assert path == str(comfy / "input" / "x_00001_.latent")
    with pytest.raises(core.BadParameterError, match="ComfyUI folder"):
        export_job("comfyui", src, None, [0], False, {})(core.Reporter())


def test_sigmas(tmp_path):
    src = _sources(_spec(steps=8))[1]
    doc = json.loads(open(export_job("sigmas_json", src, str(tmp_path / "s.json"), [], False, {})(None)).read())
    assert len(doc["schedule"]) == 9 and len(doc["sigmas"]) == 8 and doc["family"] == "SD15"
    text = open(export_job("sigmas_text", src, str(tmp_path / "s.txt"), [], False, {"which": "slice"})(None)).read()
    assert len(text.split(",")) == 8
    with pytest.raises(core.BadParameterError, match="which must be one of"):
        export_job("sigmas_text", src, str(tmp_path / "t.txt"), [], False, {"which": "all"})(None)


@pytest.mark.parametrize("kind,name,options", [("contact_sheet", "s.png", {"cell": 32, "item": 1}),
                                               ("animation", "a.webp", {"size": 32, "fps": 5.0, "item": 1})])
def test_pictures_from_the_result_equal_those_made_for_the_export(tmp_path, kind, name, options):
    from PIL import Image, ImageSequence

    with_result, without = _sources(_spec(noise="trajectory"))
    pos = [9, 5, 1]
    a = export_job(kind, with_result, str(tmp_path / f"a_{name}"), pos, False, options)(core.Reporter())
    b = export_job(kind, without, str(tmp_path / f"b_{name}"), pos, False, options)(core.Reporter())
    fa = [f.convert("RGB").tobytes() for f in ImageSequence.Iterator(Image.open(a))]
    fb = [f.convert("RGB").tobytes() for f in ImageSequence.Iterator(Image.open(b))]
    assert fa == fb and len(fa) == (3 if kind == "animation" else 1)


def test_cancel_leaves_no_file(tmp_path):
    with_result, without = _sources(_spec())
    for kind, src, name in (("latent", with_result, "a.latent"), ("latent", without, "b.latent"),
                            ("contact_sheet", without, "c.png")):
        with pytest.raises(core.Cancelled):
            export_job(kind, src, str(tmp_path / name), list(range(10)), False, {})(Cancelling())
    assert not [p for p in tmp_path.iterdir()]


def test_contact_sheet_title_metadata_item_and_last_frame(tmp_path):
    """The sheet (issue 15): a title line with model, sampler, scheduler and steps; the parameters in the PNG's
    text chunks; the batch item asked for; and its frame choice always ends on the last, noisiest frame."""
    from PIL import Image

    from unsampler_gui.core.export import select_positions

    sheet = EXPORTS[exports.SHEET]
    every = sheet.default_every(10000)
    pos = sheet.select(10000, 0, 10000, every)
    assert pos[-1] == 9999 and pos[:-1] == select_positions(10000, 0, 10000, every) and len(pos) == 65
    assert sheet.select(10000, 0, 10000, every, reverse=True)[0] == 9999
    assert sheet.select(10, 0, 10, 3) == [0, 3, 6, 9]  # the stride reaches the end: nothing added
    assert EXPORTS[exports.LATENT].select(10000, 0, 10000, every)[-1] != 9999  # latents keep the exact stride

    spec = _spec(steps=10, batch=2, sampler="euler", scheduler="karras")
    with_result, _ = _sources(spec)
    paths = [export_job("contact_sheet", with_result, str(tmp_path / f"s{i}.png"), [0, 9], False,
                        {"cell": 32, "item": i})(core.Reporter()) for i in (0, 1)]
    im = Image.open(paths[1])
    title = im.text["Title"]
    assert title == exports.sheet_title(spec, 1, 2)
    assert all(w in title for w in (spec.family.display_name, "euler", "karras", "10 steps", "item 1 of 2"))
    meta = json.loads(im.text["unsampler"])
    assert meta["sampler"] == "euler" and meta["scheduler"] == "karras" and meta["steps"] == 10
    assert meta["frames"] == [0, 9] and im.text["item"] == "1"
    assert Image.open(paths[0]).tobytes() != im.tobytes()  # the two items' pictures differ


def test_sheet_title_is_cut_to_the_sheet(tmp_path):
    from PIL import Image

    from unsampler_gui.core import pictures

    frames = torch.randn(1, 4, 8, 8)
    long = "x" * 500
    p = pictures.contact_sheet(frames, core.get_family("SD15"), [0], [1.0], tmp_path / "t.png", cell=32,
                               title=long, metadata={"Title": long})
    plain = pictures.contact_sheet(frames, core.get_family("SD15"), [0], [1.0], tmp_path / "u.png", cell=32)
    im, im0 = Image.open(p), Image.open(plain)
    assert im.size[0] == im0.size[0] and im.size[1] > im0.size[1]  # a line above the cells, no wider
    assert im.text["Title"] == long and not getattr(im0, "text", {})


def test_to_comfyui_into_a_desktop_user_folder(tmp_path):
    """ComfyUI Desktop's user folder (no main.py) takes the export in its input/, named as SaveLatent names."""
    user = tmp_path / "Documents" / "ComfyUI"
    for name in ("input", "output", "models", "user", "custom_nodes"):
        (user / name).mkdir(parents=True)
    with_result, _ = _sources(_spec())
    out = export_job("comfyui", with_result, None, list(range(10)), False,
                     {"comfy_root": str(user), "stem": "mine"})(core.Reporter())
    assert out == str(user / "input" / "mine_00001_.latent")
    assert load_file(out)["latent_tensor"].shape[0] == 20
