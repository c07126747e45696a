"""User-defined families: the definition format, files and folders, the config folder, bad files, immutability."""
import dataclasses
import json
import os
import re

import pytest
import torch

from unsampler_gui.core import config_dir as cfg
from unsampler_gui.core import family_names, get_family, ksampler_sigmas, node_sigmas, scheduler_names
from unsampler_gui.core.errors import BadParameterError
from unsampler_gui.core.families import Registry, builtin_registry, registry, use_registry
from unsampler_gui.core.family_files import (FamilyFileError, load_registry, read_family_file, reload_families,
                                             write_family_file)
from unsampler_gui.core.family_format import FamilyDefinitionError, definition_of, family_from_definition
from unsampler_gui.core.unsample import UnsampleSpec, run_unsample

BUILTIN = [f.name for f in builtin_registry()]
MY_FLUX = {"name": "MyFlux", "sampling": {"kind": "flux", "shift": 1.15},
           "latent": {"channels": 16, "scale_factor": 0.3611, "shift_factor": 0.1159}}


@pytest.fixture(autouse=True)
def builtin_only():
    use_registry(None)
    yield
    use_registry(None)


def _write(path, data):
    path.write_text(json.dumps(data) if not isinstance(data, str) else data, encoding="utf-8")
    return path


def _renamed(name, new):
    d = definition_of(get_family(name))
    d["name"] = new
    return d


# ------------------------------------------------------------------------------------------ the format

@pytest.mark.parametrize("name", BUILTIN)
def test_every_builtin_family_round_trips_through_its_definition(name):
    fam = get_family(name)
    d = definition_of(fam)
    again = family_from_definition(json.loads(json.dumps(d)))
    assert again == fam and again.sampling == fam.sampling and again.latent == fam.latent
    assert definition_of(again) == d
    assert again.detection == fam.detection and again.reference == fam.reference


@pytest.mark.parametrize("name", BUILTIN)
def test_a_renamed_copy_of_every_builtin_family_gives_bit_identical_sigmas(name, tmp_path):
    """What an outside check does: a built-in entry, renamed, written to a file and loaded with --families."""
    path = _write(tmp_path / "mine.json", _renamed(name, "Copy_of_" + name))
    use_registry(load_registry([path]))
    fam = get_family("copy_of_" + name.lower())
    assert fam.name == "Copy_of_" + name and not fam.builtin and fam.source == str(path)
    for scheduler in scheduler_names():
        for sampler, steps in (("euler", 7), ("dpm_2", 30)):
            a = ksampler_sigmas(name, sampler, scheduler, steps)
            b = ksampler_sigmas(fam, sampler, scheduler, steps)
            assert torch.equal(a.view(torch.int32), b.view(torch.int32)), (scheduler, sampler, steps)
        assert torch.equal(node_sigmas(name, "euler", scheduler, 30, 5, 25),
                           node_sigmas(fam, "euler", scheduler, 30, 5, 25))


def test_a_family_written_from_scratch_with_builtin_parameters_is_bit_identical():
    """Only the parameters a user would type: Flux.1 dev's sampling and latent format."""
    mine = family_from_definition(MY_FLUX, source="x.json")
    flux = get_family("Flux")
    assert mine.sampling.kind == "flux" and mine.model_type == "FLUX" and mine.display_name == "MyFlux"
    for scheduler in scheduler_names():
        assert torch.equal(ksampler_sigmas(mine, "euler", scheduler, 25), ksampler_sigmas(flux, "euler", scheduler, 25))
    x = torch.randn(1, 16, 8, 8, generator=torch.Generator().manual_seed(1))
    runs = [run_unsample(UnsampleSpec(family=f, latent=x, steps=12, seed=9, scheduler="beta")) for f in (mine, flux)]
    assert torch.equal(runs[0].latent.view(torch.int32), runs[1].latent.view(torch.int32))


def test_defaults_follow_comfyui():
    flow = family_from_definition({"name": "F", "sampling": {"kind": "flow"}, "latent": {"channels": 4}})
    s = flow.sampling
    assert (s.prediction, s.shift, s.multiplier, s.noise_scale) == ("CONST", 1.0, 1000.0, 1.0)
    assert flow.model_type == "FLOW" and flow.latent.scale_factor == 1.0 and flow.latent.dimensions == 2
    d = family_from_definition({"name": "D", "sampling": {"kind": "discrete", "prediction": "v_prediction"},
                                "latent": {"channels": 4, "scale_factor": 0.18215}})
    assert d.sampling == dataclasses.replace(get_family("SD21_768_v").sampling, table_sha256=None)
    assert torch.equal(ksampler_sigmas(d, "euler", "karras", 10), ksampler_sigmas("SD21_768_v", "euler", "karras", 10))
    e = family_from_definition({"name": "E", "sampling": {"kind": "edm", "sigma_max": 80.0, "sigma_data": 0.5},
                                "latent": {"channels": 4}})
    assert e.model_type == "EDM" and e.sampling.edm_sigma_max == 80.0
    assert torch.equal(ksampler_sigmas(e, "euler", "normal", 10), ksampler_sigmas("PlaygroundV2_5", "euler", "normal", 10))


def test_new_kinds_in_user_files():
    av = family_from_definition({"name": "AV", "sampling": {"kind": "flow_av", "shift": 12.0, "audio_shift": 3.0},
                                 "latent": {"channels": 32, "dimensions": 3}})
    assert torch.equal(ksampler_sigmas(av, "euler", "simple", 10), ksampler_sigmas("MiniMaxH3", "euler", "simple", 10))
    cog = family_from_definition({"name": "Cog", "sampling": {"kind": "discrete", "prediction": "V_PREDICTION_DDPM",
                                                              "zsnr": True}, "latent": {"channels": 16}})
    assert cog.model_type == "V_PREDICTION_DDPM"
    assert torch.equal(ksampler_sigmas(cog, "euler", "normal", 9), ksampler_sigmas("CogVideoX_5B", "euler", "normal", 9))


# ------------------------------------------------------------------------------------------ files

def test_file_shapes(tmp_path):
    single = _write(tmp_path / "a.json", MY_FLUX)
    listed = _write(tmp_path / "b.json", [_renamed("SD15", "B1"), _renamed("SDXL", "B2")])
    keyed = _write(tmp_path / "c.json", {"C1": {k: v for k, v in MY_FLUX.items() if k != "name"}})
    wrapped = _write(tmp_path / "d.json", {"families": [_renamed("Flux2", "D1")]})
    assert [f.name for f in read_family_file(single)] == ["MyFlux"]
    assert [f.name for f in read_family_file(listed)] == ["B1", "B2"]
    assert [f.name for f in read_family_file(keyed)] == ["C1"]
    assert [f.name for f in read_family_file(wrapped)] == ["D1"]
    reg = load_registry([tmp_path])  # a folder: every *.json in it, by name
    assert reg.names() == BUILTIN + ["MyFlux", "B1", "B2", "C1", "D1"] and not reg.problems


def test_the_config_folder_is_loaded_and_the_same_file_only_once(tmp_path, monkeypatch):
    monkeypatch.setenv("UNSAMPLER_CONFIG_DIR", str(tmp_path))
    folder = tmp_path / "families"
    folder.mkdir()
    path = _write(folder / "mine.json", MY_FLUX)
    _write(folder / "notes.txt", "not a family")
    _write(folder / ".hidden.json", "{")
    assert cfg.families_dir() == folder
    reg = reload_families([path])
    assert registry() is reg and reg.names()[-1] == "MyFlux" and len(reg) == len(BUILTIN) + 1
    assert not reg.problems
    assert load_registry(config=False).names() == BUILTIN


def test_config_dir_is_qts(monkeypatch, tmp_path):
    monkeypatch.setenv("UNSAMPLER_CONFIG_DIR", str(tmp_path / "x"))
    assert cfg.config_dir() == tmp_path / "x"
    monkeypatch.delenv("UNSAMPLER_CONFIG_DIR")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    if os.name != "nt":
        assert cfg.config_dir() == tmp_path / "Unsampler"
        monkeypatch.delenv("XDG_CONFIG_HOME")
        assert cfg.config_dir() == cfg.Path(os.path.expanduser("~")) / ".config" / "Unsampler"


def test_write_family_file_reads_back(tmp_path):
    fam = family_from_definition(MY_FLUX)
    path = write_family_file(fam, tmp_path / "fams")
    assert path == tmp_path / "fams" / "MyFlux.json" and not list((tmp_path / "fams").glob(".*"))
    assert read_family_file(path)[0] == fam
    with pytest.raises(Exception, match="already exists"):
        write_family_file(fam, tmp_path / "fams")


def test_write_family_file_is_the_one_atomic_writer_without_the_exports(tmp_path):
    """A family file is written by ``core.atomic`` itself (fsync, rename, umask mode, the one set of messages),
    with no export module loaded: a process that saves a family imports neither ``export`` nor ``exports``."""
    import subprocess
    import sys

    code = ("import os, sys; os.umask(0o027)\n"
            "from unsampler_gui.core.family_files import write_family_file\n"
            "from unsampler_gui.core.family_format import family_from_definition\n"
            f"p = write_family_file(family_from_definition({MY_FLUX!r}), {str(tmp_path)!r})\n"
            "print(oct(os.stat(p).st_mode & 0o777), sorted(m for m in sys.modules if m.startswith('unsampler_gui.core.export')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0o640", "[]"]
    assert read_family_file(tmp_path / "MyFlux.json")[0] == family_from_definition(MY_FLUX)


# ------------------------------------------------------------------------------------------ bad files

def _with(path, value):
    d = json.loads(json.dumps(MY_FLUX))
    *parents, last = path.split(".")
    node = d
    for p in parents:
        node = node[p]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return d


BAD = [
    ("shift", _with("sampling.shift", -1), "sampling.shift"),
    ("shift zero", _with("sampling.shift", 0), "sampling.shift"),
    ("shift text", _with("sampling.shift", "3"), "sampling.shift"),
    ("shift bool", _with("sampling.shift", True), "sampling.shift"),
    ("misspelt", _with("sampling.shfit", 3.0), "sampling.shfit"),
    ("kind", _with("sampling.kind", "rectified"), "sampling.kind"),
    ("prediction", _with("sampling.prediction", "EPS"), "sampling.prediction"),
    ("no sampling", _with("sampling", KeyError), "sampling"),
    ("no latent", _with("latent", KeyError), "latent"),
    ("no channels", _with("latent.channels", KeyError), "latent.channels"),
    ("channels", _with("latent.channels", 0), "latent.channels"),
    ("channels text", _with("latent.channels", "16"), "latent.channels"),
    ("dimensions", _with("latent.dimensions", 4), "latent.dimensions"),
    ("scale", _with("latent.scale_factor", 0), "latent.scale_factor"),
    ("mean length", _with("latent.latents_mean", [0.0] * 3), "latent.latents_mean"),
    ("mean alone", dict(_with("latent.shift_factor", None), latent={"channels": 2, "latents_mean": [0, 1]}),
     "latent.latents_std"),
    ("rgb width", _with("latent.latent_rgb_factors", [[1, 2]] * 16), "latent.latent_rgb_factors[0]"),
    ("rgb rows", _with("latent.latent_rgb_factors", [[1, 2, 3]] * 17), "latent.latent_rgb_factors"),
    ("unknown top", _with("colour", "red"), "colour"),
    ("unknown latent", _with("latent.chanels", 16), "latent.chanels"),
    ("name", _with("name", "my family"), "name"),
    ("builtin name", _with("name", "sdxl"), "name"),
    ("display", _with("display_name", 3), "display_name"),
    ("discrete betas", {"name": "X", "sampling": {"kind": "discrete", "linear_start": 0.02, "linear_end": 0.01},
                        "latent": {"channels": 4}}, "sampling.linear_end"),
    ("timesteps", {"name": "X", "sampling": {"kind": "discrete", "num_timesteps": 1.5}, "latent": {"channels": 4}},
     "sampling.num_timesteps"),
    ("edm", {"name": "X", "sampling": {"kind": "edm", "sigma_min": 5, "sigma_max": 1}, "latent": {"channels": 4}},
     "sampling.sigma_max"),
    ("nan", '{"name": "X", "sampling": {"kind": "flux", "shift": NaN}, "latent": {"channels": 4}}', "NaN"),
    ("json", '{"name": "X", ', "not valid JSON (line 1"),
    ("list entry", [MY_FLUX, {"name": "Y", "sampling": {"kind": "flux"}, "latent": {"channels": -1}}],
     "[1].latent.channels"),
    ("twice", [MY_FLUX, MY_FLUX], "[1].name"),
    ("keyed mismatch", {"A": dict(MY_FLUX)}, "A.name"),
    ("empty", [], "holds no family"),
    ("not an object", "3", "must hold a family definition"),
]


@pytest.mark.parametrize("label,content,field", BAD, ids=[b[0] for b in BAD])
def test_a_bad_file_is_named_with_its_field_and_skipped_whole(label, content, field, tmp_path):
    good = _write(tmp_path / "good.json", _renamed("SD15", "Good"))
    bad = _write(tmp_path / "bad.json", content)
    before = registry()
    reg = load_registry([good, bad])
    assert registry() is before  # loading installs nothing by itself
    assert len(reg.problems) == 1
    msg = reg.problems[0]
    assert msg.startswith(f"{bad}: ") and field in msg, msg
    assert "\n" not in msg and "Traceback" not in msg
    assert reg.names() == BUILTIN + ["Good"]  # the built-in families and the good file still work
    use_registry(reg)
    assert torch.equal(ksampler_sigmas("Good", "euler", "karras", 5), ksampler_sigmas("SD15", "euler", "karras", 5))
    with pytest.raises(BadParameterError, match="MyFlux|unknown model family"):
        get_family("MyFlux")
    if label != "builtin name":  # a clash with another family is found when the registry is built, not in the file
        with pytest.raises(FamilyFileError, match=re.escape(field)):
            read_family_file(bad)


def test_a_missing_path_and_an_unreadable_file_are_problems_not_crashes(tmp_path):
    binary = tmp_path / "bin.json"
    binary.write_bytes(b"\xff\xfe\x00bad")
    reg = load_registry([tmp_path / "nope.json", binary])
    assert reg.names() == BUILTIN
    assert any("nope.json: no such file or folder" in p for p in reg.problems)
    assert any("not a UTF-8 text file" in p for p in reg.problems)


def test_a_name_taken_by_an_earlier_file_is_refused(tmp_path):
    a = _write(tmp_path / "a.json", MY_FLUX)
    b = _write(tmp_path / "b.json", dict(MY_FLUX, display_name="second"))
    reg = load_registry([a, b])
    assert reg.names().count("MyFlux") == 1 and reg.get("MyFlux").source == str(a)
    assert reg.problems == (f"{b}: name: 'MyFlux' is already a family of {a}; choose another name",)


# ------------------------------------------------------------------------------------------ immutability

def test_registries_are_immutable_and_independent(tmp_path):
    path = _write(tmp_path / "a.json", MY_FLUX)
    base = builtin_registry()
    reg = load_registry([path])
    assert base.names() == BUILTIN and reg is not base
    with pytest.raises((AttributeError, TypeError)):
        reg._by_key["x"] = None
    fam = reg.get("MyFlux")
    with pytest.raises(dataclasses.FrozenInstanceError):
        fam.sampling.shift = 3.0
    # nothing of a file's JSON stays shared with the family made from it
    d = json.loads(json.dumps(_renamed("Flux2", "Z")))
    z = family_from_definition(d)
    d["detection"]["minimal_keys"].clear()
    d["reference"]["sigma_min"] = 0
    assert z.detection["minimal_keys"] and z.reference["sigma_min"] != 0
    assert isinstance(reg, Registry) and len(reg) == len(base) + 1


def test_a_reload_starts_from_the_builtin_families(tmp_path):
    a = _write(tmp_path / "a.json", MY_FLUX)
    bad = _write(tmp_path / "bad.json", {"name": "Q", "sampling": {"kind": "nope"}, "latent": {"channels": 4}})
    reload_families([a])
    assert "MyFlux" in family_names()
    reg = reload_families([bad])
    assert "MyFlux" not in family_names() and "Q" not in family_names() and family_names() == BUILTIN
    assert reg.problems and "sampling.kind" in reg.problems[0]
    with pytest.raises(FamilyDefinitionError, match="sampling.kind"):
        family_from_definition({"name": "Q", "sampling": {"kind": "nope"}, "latent": {"channels": 4}})
