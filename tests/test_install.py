"""A built wheel carries the package data, the resources and both entry points."""
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_contents(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                        str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    (whl,) = tmp_path.glob("unsampler-*.whl")
    names = set(zipfile.ZipFile(whl).namelist())
    for n in ("unsampler_gui/core/data/families.json", "unsampler_gui/core/data/comfy_lists.json",
              "unsampler_gui/resources/sample.latent", "unsampler_gui/resources/icon.svg",
              "unsampler_gui/resources/icons/icon-256.png", "unsampler_gui/cli.py", "unsampler_gui/qt/app.py"):
        assert n in names, n
    ep = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(whl).read(ep).decode()
    assert "[console_scripts]\nunsampler = unsampler_gui.cli:console_main\n" in text
    assert "[gui_scripts]\nunsampler-gui = unsampler_gui.__main__:main" in text
