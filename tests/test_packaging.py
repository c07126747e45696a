"""Packaging and bundled resources: icon, sample latent, desktop entry, AppStream metainfo, MIME type, spec.

The external validators (desktop-file-validate, appstreamcli, update-mime-database) run only where they are
installed; on Debian/Ubuntu: apt-get install desktop-file-utils appstream shared-mime-info.
"""
import configparser
import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RES = ROOT / "resources"
PKG = ROOT / "packaging"
DESKTOP = PKG / "unsampler.desktop"
METAINFO = PKG / "io.github.unsampler.Unsampler.metainfo.xml"
MIME_XML = PKG / "unsampler-latent.xml"
SAMPLE = RES / "sample.latent"
ICON_SIZES = (16, 32, 48, 128, 256)
MIME_NS = "{http://www.freedesktop.org/standards/shared-mime-info}"


def _tool(name):
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


def _desktop_entry() -> dict:
    cp = configparser.ConfigParser(interpolation=None)
    cp.optionxform = str  # keys are case-sensitive
    cp.read(DESKTOP, encoding="utf-8")
    return dict(cp["Desktop Entry"])


# ---- icon -------------------------------------------------------------------------------------------

def test_icon_svg_parses():
    root = ET.parse(RES / "icon.svg").getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.get("viewBox") == "0 0 256 256"


@pytest.mark.parametrize("size", ICON_SIZES)
def test_icon_png_sizes(size):
    from PIL import Image

    with Image.open(RES / "icons" / f"icon-{size}.png") as im:
        assert im.format == "PNG"
        assert im.size == (size, size)
        assert im.mode == "RGBA"
        alpha = im.getchannel("A")
        assert alpha.getextrema() == (0, 255)  # transparent corners, opaque frames


def test_no_unexpected_icon_files():
    names = sorted(p.name for p in (RES / "icons").iterdir())
    assert names == sorted(f"icon-{s}.png" for s in ICON_SIZES)


# ---- sample latent ----------------------------------------------------------------------------------

def test_sample_latent_loads_like_loadlatent():
    """ComfyUI's LoadLatent: safetensors.torch.load_file, the marker present means multiplier 1."""
    import torch
    from safetensors.torch import load_file

    tensors = load_file(str(SAMPLE))
    assert "latent_format_version_0" in tensors
    lat = tensors["latent_tensor"]
    assert list(lat.shape) == [1, 4, 64, 64]
    assert lat.dtype == torch.float32
    assert bool(torch.isfinite(lat).all())
    assert SAMPLE.stat().st_size < 80 * 1024


def test_sample_latent_metadata_and_preview():
    """Credit and method are recorded, and the SD1.5 preview of the latent is a real picture."""
    import numpy as np
    from safetensors import safe_open

    from unsampler_gui.core import families

    with safe_open(str(SAMPLE), "np") as f:
        info = json.loads(f.metadata()["unsampler_sample"])
        raw = f.get_tensor("latent_tensor")
    assert "Eileen Collins" in info["credit"] and "public domain" in info["credit"]
    assert "not a VAE encoding" in info["method"]
    fam = families.get_family("SD15")
    z = raw[0].transpose(1, 2, 0).astype(np.float64) * fam.latent.scale_factor  # raw -> model space
    rgb = (z @ np.asarray(fam.latent.rgb_factors) + 1.0) / 2.0
    assert rgb.min() >= -0.01 and rgb.max() <= 1.01  # an exact fit: nothing to clip
    assert rgb.std() > 0.15  # not flat


def test_sample_latent_is_reproducible():
    """The committed file is what packaging/make_sample_latent.py builds (needs scikit-image)."""
    pytest.importorskip("skimage")
    import importlib.util

    import numpy as np
    from safetensors import safe_open

    spec = importlib.util.spec_from_file_location("make_sample_latent", PKG / "make_sample_latent.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    built, info = mod.build()
    with safe_open(str(SAMPLE), "np") as f:
        committed = f.get_tensor("latent_tensor")
        assert json.loads(f.metadata()["unsampler_sample"]) == info
    # bit-identical on one machine; allow for another LAPACK's last bit in pinv
    np.testing.assert_allclose(built, committed, rtol=1e-6, atol=1e-6)


def test_credits_name_the_source():
    text = (RES / "CREDITS.md").read_text(encoding="utf-8")
    assert "Eileen Collins, NASA, public domain, via scikit-image data.astronaut()" in text
    assert "not a VAE" in text


# ---- desktop entry, MIME type, AppStream --------------------------------------------------------------

def test_desktop_file_validates():
    exe = _tool("desktop-file-validate")
    r = subprocess.run([exe, str(DESKTOP)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "error" not in (r.stdout + r.stderr).lower(), r.stdout + r.stderr


def test_desktop_file_matches_project():
    entry = _desktop_entry()
    assert entry["Type"] == "Application"
    assert entry["Icon"] == "unsampler"
    assert entry["Exec"].split()[0] == "unsampler-gui"
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'unsampler-gui = "unsampler_gui.__main__:main"' in pyproject
    mime = ET.parse(MIME_XML).getroot().find(f"{MIME_NS}mime-type").get("type")
    assert entry["MimeType"].rstrip(";").split(";") == [mime]


def test_mime_xml():
    root = ET.parse(MIME_XML).getroot()
    types = root.findall(f"{MIME_NS}mime-type")
    assert [t.get("type") for t in types] == ["application/x-comfyui-latent"]
    assert [g.get("pattern") for g in types[0].findall(f"{MIME_NS}glob")] == ["*.latent"]


def test_mime_xml_installs(tmp_path):
    exe = _tool("update-mime-database")
    (tmp_path / "packages").mkdir()
    shutil.copy(MIME_XML, tmp_path / "packages" / MIME_XML.name)
    r = subprocess.run([exe, str(tmp_path)], capture_output=True, text=True)
    # update-mime-database exits 0 even when it cannot parse a file; the compiled type must exist
    assert (tmp_path / "application" / "x-comfyui-latent.xml").is_file(), r.stdout + r.stderr
    assert "application/x-comfyui-latent:*.latent" in (tmp_path / "globs2").read_text()


def test_metainfo_validates():
    exe = _tool("appstreamcli")
    r = subprocess.run([exe, "validate", "--no-net", str(METAINFO)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_metainfo_matches_project():
    root = ET.parse(METAINFO).getroot()
    assert root.get("type") == "desktop-application"
    assert root.findtext("id") == METAINFO.name.removesuffix(".metainfo.xml")
    assert root.findtext("project_license") == "MIT"
    assert root.find("content_rating") is not None
    assert root.findtext("launchable") == DESKTOP.name
    assert root.find("screenshots") is None  # no placeholder URLs
    mediatypes = [m.text for m in root.iter("mediatype")]
    assert mediatypes == ["application/x-comfyui-latent"]


# ---- freezer spec, licence, changelog -----------------------------------------------------------------

def test_pyinstaller_spec_compiles():
    source = (PKG / "unsampler.spec").read_text(encoding="utf-8")
    compile(source, "unsampler.spec", "exec")
    assert "package_data(ROOT)" in source and '"resources"' in source


def test_the_frozen_build_carries_all_package_data():
    """Every file of pyproject.toml's package data inside the package (core/data, core/vae/data, ...) is in the
    bundle, at its package path: a frozen app once lacked core/vae/data/vae.json."""
    import re
    import sys

    sys.path.insert(0, str(PKG))
    try:
        from bundle_data import package_data
    finally:
        sys.path.remove(str(PKG))
    bundled = {(Path(src).resolve(), dest) for src, dest in package_data(ROOT)}
    section = (ROOT / "pyproject.toml").read_text(encoding="utf-8").split("[tool.setuptools.package-data]")[1]
    section = section.split("\n[")[0]
    wanted = set()
    for pkg, globs in re.findall(r'^"([\w.]+)"\s*=\s*\[(.*?)\]', section, re.M):
        folder = Path(*pkg.split("."))
        if not (ROOT / folder).is_dir():
            continue  # resources/ is bundled from the repository root by the spec itself
        for pattern in re.findall(r'"([^"]+)"', globs):
            wanted |= {(p.resolve(), folder.as_posix()) for p in (ROOT / folder).glob(pattern)}
    assert wanted and (ROOT / "unsampler_gui/core/vae/data/vae.json").resolve() in {p for p, _ in wanted}
    assert wanted <= bundled, sorted(str(p) for p, _ in wanted - bundled)


def test_build_script_syntax():
    bash = _tool("bash")
    r = subprocess.run([bash, "-n", str(PKG / "build_dist.sh")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_license_and_changelog():
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
    import unsampler_gui

    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert f"## [{unsampler_gui.__version__}]" in changelog


