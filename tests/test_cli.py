"""The ``unsampler`` command line, run as a user would (a subprocess)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import safetensors.torch as st
import torch

from unsampler_gui.core import ksampler_sigmas, node_sigmas
from unsampler_gui.core.latent_io import write_latent


def cli(*args, env=None, **kw):
    e = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "unsampler_gui.cli", *map(str, args)], capture_output=True,
                          text=True, env=e, timeout=300, **kw)


def test_version():
    r = cli("--version")
    assert r.returncode == 0 and "unsampler" in r.stdout


def test_sigmas_json_is_exact():
    r = cli("sigmas", "--model", "sdxl", "--sampler", "dpm_2", "--scheduler", "karras", "--steps", "30",
            "--start", "3", "--end", "20", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert {"model", "sampler", "scheduler", "steps", "start_at_step", "end_at_step", "schedule", "sigmas",
            "raw_sigmas"} <= set(d)
    sched = ksampler_sigmas("SDXL", "dpm_2", "karras", 30)
    assert np.array_equal(np.array(d["schedule"], dtype=np.float32), sched.numpy())
    assert np.array_equal(np.array(d["sigmas"], dtype=np.float32), sched[3:20].flip(0).numpy())
    assert np.array_equal(np.array(d["raw_sigmas"], dtype=np.float32),
                          node_sigmas("SDXL", "dpm_2", "karras", 30, 3, 20).numpy())


def test_sigmas_table():
    r = cli("sigmas", "--model", "Flux", "--steps", "4")
    assert r.returncode == 0 and "sigma" in r.stdout and len(r.stdout.splitlines()) == 2 + 5


@pytest.mark.parametrize("args,match", [
    (["sigmas", "--model", "SD99", "--steps", "3"], "unknown model family"),
    (["sigmas", "--model", "SD15", "--steps", "0"], "steps"),
    (["sigmas", "--model", "SD15", "--steps", "3", "--scheduler", "nope"], "unknown scheduler"),
    (["sigmas", "--model", "SD15", "--steps", "3", "--sampler", "nope"], "unknown sampler"),
])
def test_errors_are_one_line_exit_2(args, match):
    r = cli(*args)
    assert r.returncode == 2
    assert match in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_run_writes_a_loadlatent_file(tmp_path):
    src = tmp_path / "in.latent"
    write_latent(src, torch.randn(2, 4, 8, 8))
    out = tmp_path / "out.latent"
    r = cli("run", "--model", "SD15", "--latent", src, "--steps", "30", "--seed", "5", "--output", out)
    assert r.returncode == 0, r.stderr
    sd = st.load_file(str(out))
    assert "latent_format_version_0" in sd and sd["latent_tensor"].shape == (60, 4, 8, 8)
    assert "Traceback" not in r.stderr and "30/30" in r.stderr
    # the same again refuses to overwrite, then overwrites when asked; same seed, same bytes
    r2 = cli("run", "--model", "SD15", "--latent", src, "--steps", "30", "--seed", "5", "--output", out)
    assert r2.returncode == 2 and "--overwrite" in r2.stderr
    first = out.read_bytes()
    r3 = cli("run", "--model", "SD15", "--latent", src, "--steps", "30", "--seed", "5", "--output", out,
             "--overwrite", "--max-memory", "64K")
    assert r3.returncode == 0 and out.read_bytes() == first


def test_run_subset_flags(tmp_path):
    src = tmp_path / "in.latent"
    write_latent(src, torch.randn(1, 4, 8, 8))
    full, sub = tmp_path / "full.latent", tmp_path / "sub.latent"
    assert cli("run", "--model", "SD15", "--latent", src, "--steps", "20", "-o", full).returncode == 0
    r = cli("run", "--model", "SD15", "--latent", src, "--steps", "20", "-o", sub, "--range", "4:16", "--every", "4",
            "--reverse")
    assert r.returncode == 0, r.stderr
    a, b = st.load_file(str(full))["latent_tensor"], st.load_file(str(sub))["latent_tensor"]
    assert torch.equal(b, a[[12, 8, 4]])


def test_run_channel_mismatch(tmp_path):
    src = tmp_path / "in.latent"
    write_latent(src, torch.randn(1, 16, 8, 8))
    r = cli("run", "--model", "SD15", "--latent", src, "--steps", "5", "-o", tmp_path / "o.latent")
    assert r.returncode == 2 and "Flux" in r.stderr and not (tmp_path / "o.latent").exists()


def test_info_on_export(tmp_path):
    src = tmp_path / "in.latent"
    write_latent(src, torch.randn(1, 4, 8, 8))
    out = tmp_path / "out.latent"
    assert cli("run", "--model", "SD15", "--latent", src, "--steps", "5", "-o", out).returncode == 0
    r = cli("info", out, "--json")
    d = json.loads(r.stdout)
    assert d["kind"] == "latent" and d["shape"] == [5, 4, 8, 8] and d["marker"] is True
    assert d["unsampler"]["steps"] == 5 and d["unsampler"]["source"]["name"] == "in.latent"
    r = cli("info", out)
    assert r.returncode == 0 and "unsampler export" in r.stdout


def test_families_list():
    r = cli("families", "--json")
    names = [f["name"] for f in json.loads(r.stdout)]
    assert "SD15" in names and "QwenImage" in names and len(names) == 24 + 39


def test_info_and_run_with_a_checkpoint(tmp_path):
    from ckpt_factory import fullish_entries, write_safetensors

    ckpt = tmp_path / "flux1-dev.safetensors"
    write_safetensors(ckpt, fullish_entries("Flux"))
    r = cli("info", ckpt, "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["kind"] == "checkpoint" and d["family"] == "Flux" and d["prediction"] == "CONST"
    assert d["shift"] == 1.15 and d["evidence"]
    r = cli("info", ckpt, "--shift", "3.0", "--json")
    assert json.loads(r.stdout)["shift"] == 3.0
    r = cli("sigmas", "--model", ckpt, "--steps", "4", "--json")
    assert np.array_equal(np.array(json.loads(r.stdout)["schedule"], dtype=np.float32),
                          ksampler_sigmas("Flux", "euler", "simple", 4).numpy())
    src = tmp_path / "in.latent"
    write_latent(src, torch.randn(1, 16, 8, 8))
    r = cli("run", "--model", ckpt, "--latent", src, "--steps", "4", "-o", tmp_path / "o.latent")
    assert r.returncode == 0, r.stderr
    meta = json.loads(cli("info", tmp_path / "o.latent", "--json").stdout)["unsampler"]
    assert meta["family"] == "Flux" and meta["model"].endswith("flux1-dev.safetensors")


def test_info_refuses_lora_and_pickle_payload(tmp_path):
    import pickle

    from ckpt_factory import lora_entries, write_safetensors

    lora = tmp_path / "style.safetensors"
    write_safetensors(lora, lora_entries())
    r = cli("info", lora)
    assert r.returncode == 2 and "LoRA" in r.stderr and "Traceback" not in r.stderr
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    ckpt = tmp_path / "evil.ckpt"
    ckpt.write_bytes(pickle.dumps({"state_dict": Payload()}))
    r = cli("info", ckpt)
    assert r.returncode == 2 and "refusing" in r.stderr
    assert not marker.exists()


# ---- unsampler export: every kind the app writes, from the registry ------------------------------------


def _export(tmp_path, kind, *args, steps=12, batch=1):
    src = tmp_path / "in.latent"
    if not src.exists():
        write_latent(src, torch.randn(batch, 4, 8, 8, generator=torch.Generator().manual_seed(3)))
    return cli("export", kind, "--model", "SD15", "--latent", src, "--steps", steps, "--seed", 4, *args)


def _full(tmp_path, steps=12):
    from unsampler_gui import core
    lat = core.read_latent(tmp_path / "in.latent").tensor
    return core.run_unsample(core.UnsampleSpec(family=core.get_family("SD15"), latent=lat, steps=steps, seed=4)).latent


def test_export_kinds_are_the_registry():
    from unsampler_gui.core.exports import EXPORTS

    r = cli("export", "--help")
    assert r.returncode == 0 and all(k in r.stdout for k in EXPORTS)
    r = cli("export", "nope", "--model", "SD15", "--latent", "x")
    assert r.returncode == 2


def test_export_latent_subset_reversed(tmp_path):
    out = tmp_path / "part.latent"
    r = _export(tmp_path, "latent", "-o", out, "--range", "2:11", "--every", "3", "--reverse")
    assert r.returncode == 0, r.stderr
    t = st.load_file(str(out))
    assert "latent_format_version_0" in t and torch.equal(t["latent_tensor"], _full(tmp_path)[[8, 5, 2]])
    from safetensors import safe_open
    with safe_open(str(out), "pt") as f:
        meta = json.loads(f.metadata()["unsampler"])
    assert meta["frames"] == [8, 5, 2] and meta["seed"] == 4 and meta["source"]["name"] == "in.latent"
    r = _export(tmp_path, "latent", "-o", out)  # exists: refused, then replaced when asked
    assert r.returncode == 2 and "--overwrite" in r.stderr
    assert _export(tmp_path, "latent", "-o", out, "--overwrite").returncode == 0
    assert torch.equal(st.load_file(str(out))["latent_tensor"], _full(tmp_path))


def test_export_to_comfyui(tmp_path):
    comfy = tmp_path / "ComfyUI"
    (comfy / "comfy").mkdir(parents=True)
    (comfy / "main.py").write_text("")
    for n in (1, 2):
        r = _export(tmp_path, "comfyui", "--comfyui", comfy, "--name", "astronaut")
        assert r.returncode == 0, r.stderr
        assert (comfy / "input" / f"astronaut_0000{n}_.latent").is_file()
    r = _export(tmp_path, "comfyui", "--comfyui", comfy)  # the default name says what it holds
    assert r.returncode == 0 and (comfy / "input" / "in_SD15_simple_12_00001_.latent").is_file()
    r = _export(tmp_path, "comfyui", "--comfyui", tmp_path / "ComfyUI" / "comfy")
    assert r.returncode == 2 and "ComfyUI" in r.stderr and "Traceback" not in r.stderr
    assert _export(tmp_path, "comfyui").returncode == 2


def test_export_sigmas(tmp_path):
    r = _export(tmp_path, "sigmas_json", "-o", tmp_path / "s", steps=10)
    assert r.returncode == 0, r.stderr
    doc = json.loads((tmp_path / "s.json").read_text())  # the kind's extension is added
    assert len(doc["schedule"]) == 11 and len(doc["sigmas"]) == 10
    assert _export(tmp_path, "sigmas_text", "-o", tmp_path / "s.txt", steps=10).returncode == 0
    text = (tmp_path / "s.txt").read_text()
    assert "e-" not in text and len(text.split(",")) == 11
    assert _export(tmp_path, "sigmas_text", "-o", tmp_path / "slice.txt", "--which", "slice",
                   steps=10).returncode == 0
    assert len((tmp_path / "slice.txt").read_text().split(",")) == 10


def test_export_pictures(tmp_path):
    from PIL import Image

    r = _export(tmp_path, "contact_sheet", "-o", tmp_path / "sheet.png", "--cell", "64", batch=2)
    assert r.returncode == 0, r.stderr
    w, h = Image.open(tmp_path / "sheet.png").size
    assert w == 4 * (64 + 4) and 3 * 64 + 18 < h < 4 * 64 + 24  # 12 cells of 64 px (2 px pad), 4 x 3, a title
    r = _export(tmp_path, "animation", "-o", tmp_path / "anim.gif", "--every", "3", "--size", "48", "--item", "1",
                batch=2)
    assert r.returncode == 0, r.stderr
    im = Image.open(tmp_path / "anim.gif")
    assert im.n_frames == 4 and max(im.size) == 48
    r = _export(tmp_path, "animation", "-o", tmp_path / "a.webp", "--item", "2", batch=2)
    assert r.returncode == 2 and "batch item 2" in r.stderr and not (tmp_path / "a.webp").exists()


def test_program_ends_without_teardown_but_with_all_its_output():
    """``console_main`` (the ``unsampler`` program) skips the interpreter's teardown: every line of a long
    output still reaches a pipe, and the exit status is main()'s, for a success and for an error."""
    code = "from unsampler_gui.cli import console_main; console_main()"
    r = subprocess.run([sys.executable, "-c", code, "sigmas", "--model", "SD15", "--steps", "5000"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 5003 and lines[-1].split()[0] == "5000"  # a heading, a column line, steps 0..5000
    r = subprocess.run([sys.executable, "-c", code, "sigmas", "--model", "NoSuchFamily"], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 2 and "unknown model family" in r.stderr


def test_a_run_of_a_named_family_imports_only_what_it_needs(tmp_path):
    """``run --model SD15 --latent``: no Qt, no PIL, no scipy, no diffusers, no VAE networks and no checkpoint
    readers or detection rules (a checkpoint given by path loads those, as before)."""
    src = tmp_path / "in.latent"
    write_latent(src, torch.randn(1, 4, 8, 8))
    code = ("import sys; from unsampler_gui.cli import main\n"
            f"rc = main(['run', '--model', 'SD15', '--latent', {str(src)!r}, '--steps', '3', '-o', "
            f"{str(tmp_path / 'o.latent')!r}])\n"
            "heavy = ('PySide6', 'PIL', 'scipy', 'diffusers', 'transformers', 'unsampler_gui.core.vae.loader', "
            "'unsampler_gui.core.vae.encode', 'unsampler_gui.core.vae.find', 'unsampler_gui.core.detect.rules', "
            "'unsampler_gui.core.detect.pickle_reader', 'unsampler_gui.core.detect.diffusers_folder')\n"
            "print(rc, sorted(m for m in sys.modules if m.split('.')[0] in heavy or m in heavy))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[0] == "0 []"
