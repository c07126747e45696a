"""``unsampler families --json`` and ``--families PATH`` on every command, run as a user would."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from unsampler_gui.core.families import builtin_registry
from unsampler_gui.core.family_format import family_from_definition
from unsampler_gui.core.latent_io import read_latent, write_latent


def cli(*args, config=None):
    env = dict(os.environ)
    if config is not None:
        env["UNSAMPLER_CONFIG_DIR"] = str(config)
    return subprocess.run([sys.executable, "-m", "unsampler_gui.cli", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def listing():
    r = cli("families", "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_families_json_is_every_family_in_the_file_format(listing):
    assert [d["name"] for d in listing] == [f.name for f in builtin_registry()]
    for d in listing:
        assert family_from_definition(d) == builtin_registry().get(d["name"])
        assert {"name", "display_name", "sampling", "latent"} <= set(d) and "kind" in d["sampling"]


@pytest.mark.parametrize("name,where", [("Flux2", "before"), ("CogVideoX_5B", "after"), ("HiDreamO1", "after"),
                                        ("PlaygroundV2_5", "before"), ("MiniMaxH3", "before")])
def test_a_renamed_builtin_entry_gives_the_same_sigmas(listing, tmp_path, name, where):
    entry = next(d for d in listing if d["name"] == name)
    entry["name"] = "My" + name
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(entry))
    args = ["sigmas", "--scheduler", "karras", "--steps", "30", "--start", "3", "--end", "25", "--json"]
    want = cli(*args, "--model", name)
    opt = ["--families", path]
    got = cli(*(opt + args if where == "before" else args + opt), "--model", "My" + name)
    assert want.returncode == 0 and got.returncode == 0, got.stderr
    a, b = json.loads(want.stdout), json.loads(got.stdout)
    assert b["family"] == "My" + name and got.stderr == ""
    for k in ("schedule", "sigmas", "raw_sigmas"):
        assert np.array_equal(np.array(a[k], np.float32).view(np.int32), np.array(b[k], np.float32).view(np.int32))


def test_config_folder_families_are_listed_and_usable(tmp_path, listing):
    folder = tmp_path / "families"
    folder.mkdir()
    entry = dict(next(d for d in listing if d["name"] == "SD15"), name="MySD", display_name="My SD")
    (folder / "mine.json").write_text(json.dumps(entry))
    r = cli("families", config=tmp_path)
    assert r.returncode == 0 and "MySD" in r.stdout and f"(user: {folder / 'mine.json'})" in r.stdout
    r = cli("families", "--json", config=tmp_path)
    assert json.loads(r.stdout)[-1]["name"] == "MySD"
    r = cli("sigmas", "--model", "mysd", "--steps", "5", "--json", config=tmp_path)
    assert r.returncode == 0 and json.loads(r.stdout)["family"] == "MySD"


def test_run_with_a_user_family_is_bit_identical(tmp_path, listing):
    entry = dict(next(d for d in listing if d["name"] == "Flux"), name="MyFlux")
    fams = tmp_path / "fams"
    fams.mkdir()
    (fams / "a.json").write_text(json.dumps([entry]))
    src = tmp_path / "in.latent"
    write_latent(src, torch.randn(1, 16, 8, 8, generator=torch.Generator().manual_seed(3)))
    outs = []
    for model, extra in (("Flux", []), ("MyFlux", ["--families", fams])):
        out = tmp_path / f"{model}.latent"
        r = cli("run", "--model", model, "--latent", src, "--steps", "20", "--seed", "5", "--output", out, *extra)
        assert r.returncode == 0, r.stderr
        outs.append(read_latent(out).tensor)
    assert torch.equal(outs[0].view(torch.int32), outs[1].view(torch.int32))


def test_a_bad_file_is_a_warning_and_the_builtin_families_still_work(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "Bad", "sampling": {"kind": "flow", "shift": -2}, "latent": {"channels": 4}}))
    r = cli("--families", bad, "sigmas", "--model", "SD15", "--steps", "4", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["family"] == "SD15"
    line, = r.stderr.splitlines()
    assert line == f"unsampler: warning: skipped {bad}: sampling.shift: must be a number > 0, got -2"
    r = cli("sigmas", "--model", "Bad", "--steps", "4", "--families", bad)
    assert r.returncode == 2 and "unknown model family 'Bad'" in r.stderr and "sampling.shift" in r.stderr
    assert "Traceback" not in r.stderr
    r = cli("families", "--families", tmp_path / "missing.json")
    assert r.returncode == 0 and "missing.json: no such file or folder" in r.stderr and "SD15" in r.stdout


def test_the_readme_lists_every_builtin_family():
    """The README's table is ``unsampler families --markdown`` of the built-in families (regenerate it with that)."""
    from pathlib import Path

    from unsampler_gui.cli import families_markdown

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    block = text.split("<!-- families:start -->\n", 1)[1].split("\n<!-- families:end -->", 1)[0]
    assert block == families_markdown(list(builtin_registry()))
    for f in builtin_registry():
        assert f"| `{f.name}` | {f.display_name} |" in block
