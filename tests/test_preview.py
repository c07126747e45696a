"""Previews, statistics and pictures (core, Qt-free)."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from unsampler_gui import core
from unsampler_gui.core import pictures, preview, stats
from unsampler_gui.core.errors import BadParameterError, Cancelled, ResourceError


def _formula_in(family) -> str:
    m = re.match(r"process_in:\s*(.*?)\s*;", family.latent.process_formula)
    assert m, family.latent.process_formula
    return m.group(1)


@pytest.mark.parametrize("name", core.family_names())
def test_to_model_space_matches_the_family_formula(name):
    fam = core.get_family(name)
    lat = fam.latent
    shape = (lat.channels,) + ((3,) if lat.dimensions == 3 else ()) + (5, 6)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(shape, generator=g) * 3 + 0.25
    per_ch = (-1,) + (1,) * (len(shape) - 1)
    env = {
        "x": x, "scale_factor": lat.scale_factor, "shift_factor": lat.shift_factor,
        "latents_mean": None if lat.latents_mean is None else torch.tensor(lat.latents_mean).reshape(per_ch),
        "latents_std": None if lat.latents_std is None else torch.tensor(lat.latents_std).reshape(per_ch),
    }
    expected = eval(_formula_in(fam), {}, env)  # the formula string, as ComfyUI's process_in
    got = preview.to_model_space(x, fam)
    assert got.dtype == torch.float32 and got.shape == x.shape
    torch.testing.assert_close(got, expected.float(), rtol=1e-6, atol=1e-6)
    # a block [N, C, ...] is converted frame by frame
    block = torch.stack([x, -x])
    torch.testing.assert_close(preview.to_model_space(block, fam)[1], preview.to_model_space(-x, fam))


def test_to_model_space_rejects_the_wrong_channel_count():
    with pytest.raises(BadParameterError, match="16 channels"):
        preview.to_model_space(torch.zeros(4, 8, 8), core.get_family("Flux"))


def test_latent_to_rgb_of_a_known_latent_sd15():
    fam = core.get_family("SD15")
    f = np.array(fam.latent.rgb_factors, dtype=np.float64)  # [4, 3]
    x = torch.zeros(4, 2, 3)
    x[1, 0, 0] = 0.5 / fam.latent.scale_factor  # model-space value 0.5 in channel 1 at (0, 0)
    x[:, 1, 2] = torch.tensor([1.0, -1.0, 0.5, 0.25]) / fam.latent.scale_factor
    lin = preview.latent_rgb_linear(x, fam)
    assert lin.shape == (2, 3, 3) and lin.dtype == np.float32
    np.testing.assert_allclose(lin[0, 0], 0.5 * f[1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(lin[1, 2], np.array([1.0, -1.0, 0.5, 0.25]) @ f, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(lin[0, 1], 0.0, atol=1e-7)
    rgb = preview.latent_to_rgb(x, fam)
    np.testing.assert_allclose(rgb, np.clip((lin + 1) / 2, 0, 1))
    assert rgb[0, 1].tolist() == [0.5, 0.5, 0.5]  # zero latent is mid-grey, as in ComfyUI


def test_latent_to_rgb_adds_the_bias_and_uses_model_space_flux():
    fam = core.get_family("Flux")
    lat = fam.latent
    f = np.array(lat.rgb_factors, dtype=np.float64)
    b = np.array(lat.rgb_factors_bias, dtype=np.float64)
    v = torch.linspace(-1, 1, 16)
    x = (v / lat.scale_factor + lat.shift_factor).reshape(16, 1, 1)  # process_in gives back v
    lin = preview.latent_rgb_linear(x, fam)
    np.testing.assert_allclose(lin[0, 0], v.double().numpy() @ f + b, rtol=1e-5, atol=1e-5)


def test_video_frames_use_the_time_index_and_fallback_to_channels():
    fam = core.get_family("WAN21_T2V")
    x = torch.randn(16, 4, 6, 8)
    for t in (0, 3):
        np.testing.assert_allclose(preview.latent_rgb_linear(x, fam, time_index=t),
                                   preview.latent_rgb_linear(x[:, t:t + 1], fam), rtol=1e-6)
    assert preview.thumbnail(x, fam, 32, time_index=99).shape == (24, 32, 3)  # clamped, aspect kept
    ch = preview.channel_image(x, 5, time_index=2)
    np.testing.assert_array_equal(ch, x[5, 2].numpy())
    nofactors = core.get_family("SD15").__class__(**{
        **core.get_family("SD15").__dict__,
        "latent": core.get_family("SD15").latent.__class__(**{**core.get_family("SD15").latent.__dict__,
                                                              "rgb_factors": None})})
    y = torch.randn(4, 3, 3)
    np.testing.assert_allclose(preview.latent_rgb_linear(y, nofactors),
                               (y[:3] * 0.18215).permute(1, 2, 0).numpy(), rtol=1e-6)


def test_contrast_and_uint8():
    img = np.linspace(-1, 1, 1001, dtype=np.float32)
    assert preview.to_uint8(img, -1, 1)[[0, 500, 1000]].tolist() == [0, 128, 255]
    assert preview.to_uint8(img, 0, 0).tolist() == [128] * 1001  # flat range: grey, no division by zero
    lo, hi = preview.auto_range(img)
    assert lo == pytest.approx(-0.99, abs=1e-6) and hi == pytest.approx(0.99, abs=1e-6)
    assert preview.contrast_range(img, "fixed") == (-1.0, 1.0)
    assert preview.contrast_range(img, (2, 3)) == (2.0, 3.0)
    with pytest.raises(BadParameterError):
        preview.contrast_range(img, "bogus")
    fam = core.get_family("SD15")
    x = torch.randn(4, 16, 16)
    auto = preview.render(x, fam, contrast="auto")
    assert auto.dtype == np.uint8 and auto.shape == (16, 16, 3)
    assert auto.min() == 0 and auto.max() == 255
    shared = preview.reference_range(x, fam)
    np.testing.assert_array_equal(preview.render(x, fam, contrast=shared), auto)
    gray = preview.render(x, fam, mode=2, contrast="auto")
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()


def test_thumbnail_sizes():
    fam = core.get_family("SD15")
    assert preview.thumbnail(torch.randn(4, 64, 32), fam, 96).shape == (96, 48, 3)
    big = preview.thumbnail(torch.randn(4, 128, 128), fam, 64)
    assert big.shape == (64, 64, 3) and big.flags["C_CONTIGUOUS"]


def test_frame_stats_and_step_accumulator():
    g = torch.Generator().manual_seed(0)
    block = torch.randn(6, 4, 8, 8, generator=g) * torch.arange(1, 7).view(6, 1, 1, 1)
    s = stats.frame_stats(block)
    flat = block.reshape(6, -1).double().numpy()
    np.testing.assert_allclose(s.mean, flat.mean(1), rtol=1e-9)
    np.testing.assert_allclose(s.std, flat.std(1), rtol=1e-9)
    np.testing.assert_allclose(s.min, flat.min(1))
    np.testing.assert_allclose(s.max, flat.max(1))
    acc = stats.StepStats(5, batch=2)  # 5 steps, 2 items: 10 rows
    rows = torch.randn(10, 4, 8, 8, generator=g)
    acc.add(2, 4, rows[4:8])
    assert acc.count == 2 and acc.contiguous == 0 and np.isnan(acc.mean[0, 0])
    acc.add(0, 2, rows[0:4])
    assert acc.contiguous == 4
    acc.add(4, 5, rows[8:10])
    assert acc.count == 5 and acc.contiguous == 5
    ref = stats.frame_stats(rows)
    np.testing.assert_allclose(acc.series("std", item=1), ref.std[1::2])
    assert acc.at(3, 0)["max"] == pytest.approx(float(rows[6].max()))
    counts, edges = stats.histogram(rows[0], bins=10)
    assert counts.sum() == rows[0].numel() and len(edges) == 11
    np.testing.assert_array_equal(counts, np.histogram(rows[0].numpy(), bins=10)[0])


def _run(steps=30, family="SD15"):
    fam = core.get_family(family)
    x = torch.randn(1, fam.latent.channels, 16, 16, generator=torch.Generator().manual_seed(3))
    return fam, core.run_unsample(core.UnsampleSpec(family=fam, latent=x, steps=steps, end_at_step=steps))


def test_contact_sheet_written_atomically_and_readable(tmp_path):
    fam, r = _run()
    pos = list(range(0, 30, 3))
    path = tmp_path / "sheet.png"
    calls = []

    class Rep(core.Reporter):
        def progress(self, done, total):
            calls.append((done, total))

    out = pictures.contact_sheet(r.latent[pos], fam, pos, r.sigmas[pos].tolist(), path, columns=4, cell=64,
                                 reporter=Rep())
    assert out == str(path)
    with Image.open(path) as im:
        assert im.format == "PNG" and im.mode == "RGB"
        w, h = im.size
    assert w == 4 * (64 + 4) and h % 3 == 0  # 4 columns, 3 rows
    assert calls[-1] == (10, 10)
    assert [p.name for p in tmp_path.iterdir()] == ["sheet.png"]  # no temporary left behind
    with pytest.raises(ResourceError, match="already exists"):
        pictures.contact_sheet(r.latent[:2], fam, [0, 1], None, path)
    pictures.contact_sheet(r.latent[:2], fam, [0, 1], None, path, overwrite=True, cell=32)
    with Image.open(path) as im:
        assert im.size[0] == 2 * (32 + 4)


@pytest.mark.parametrize("ext,fmt", [(".webp", "WEBP"), (".gif", "GIF")])
def test_animation_written_and_readable(tmp_path, ext, fmt):
    fam, r = _run()
    path = tmp_path / f"anim{ext}"
    pictures.animation(r.latent[:7], fam, path, fps=10, size=40, positions=list(range(7)),
                       sigmas=r.sigmas[:7].tolist())
    with Image.open(path) as im:
        assert im.format == fmt and im.n_frames == 7 and im.size == (40, 40)
        im.seek(1)
        im.load()
        assert im.info.get("duration") == 100
    with pytest.raises(ResourceError, match="already exists"):
        pictures.animation(r.latent[:2], fam, path)
    assert len(list(tmp_path.iterdir())) == 1


def test_animation_rejects_other_extensions_and_cancels_cleanly(tmp_path):
    fam, r = _run()
    with pytest.raises(BadParameterError, match="webp or .gif"):
        pictures.animation(r.latent[:2], fam, tmp_path / "a.png")

    class Stop(core.Reporter):
        def __init__(self):
            self.n = 0

        def is_cancelled(self):
            self.n += 1
            return self.n > 3

    with pytest.raises(Cancelled):
        pictures.animation(r.latent, fam, tmp_path / "a.webp", reporter=Stop())
    with pytest.raises(Cancelled):
        pictures.contact_sheet(r.latent, fam, list(range(30)), None, tmp_path / "s.png", reporter=Stop())
    assert list(tmp_path.iterdir()) == []


def test_contact_sheet_refuses_giant_sheets(tmp_path):
    fam, r = _run()
    with pytest.raises(BadParameterError, match="limit"):
        pictures.contact_sheet(r.latent[:1].expand(10000, -1, -1, -1), fam, list(range(10000)), None,
                               tmp_path / "big.png", cell=256)
    assert list(tmp_path.iterdir()) == []


def test_core_preview_modules_do_not_import_qt():
    code = ("import sys; import unsampler_gui.core.preview, unsampler_gui.core.stats, unsampler_gui.core.pictures; "
            "bad = [m for m in sys.modules if m.startswith(('PySide6', 'PyQt', 'pyqtgraph'))]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=os.path.dirname(os.path.dirname(__file__)))
