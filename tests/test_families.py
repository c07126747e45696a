"""Every family of families.json: tables, ends and schedule invariants, as ComfyUI builds them."""
import hashlib
import json
import math

import numpy as np
import pytest
import torch

from unsampler_gui.core import family_names, get_family, ksampler_sigmas, node_sigmas, sampler_names, scheduler_names
from unsampler_gui.core.errors import BadParameterError
from unsampler_gui.core.model_sampling import model_sampling

#: Tables built with float32 exp/cos on this machine: their ends are exact, interior values may differ
#: by an ulp from the reference host (see the reference README's numerical notes).
TRANSCENDENTAL_TABLES = {"edm", "stable_cascade"}


def _ref_families(reference_dir):
    return json.loads((reference_dir / "families.json").read_text())["detected_families"]


def test_registry_has_every_detected_family(reference_dir):
    assert family_names() == list(_ref_families(reference_dir))


@pytest.mark.parametrize("name", family_names())
def test_table_matches_comfyui(name, reference_dir):
    ref = _ref_families(reference_dir)[name]["model_sampling"]
    fam = get_family(name)
    ms = model_sampling(fam.sampling)
    t = ms.sigmas.numpy()
    assert t.dtype == np.float32 and len(t) == ref["sigmas_len"]
    assert t[:3].tolist() == ref["sigmas_first3"] and t[-3:].tolist() == ref["sigmas_last3"]
    assert float(t[0]) == ref["sigma_min"] and float(t[-1]) == ref["sigma_max"]
    digest = hashlib.sha256(t.astype("<f4").tobytes()).hexdigest()
    if fam.sampling.kind not in TRANSCENDENTAL_TABLES:
        assert digest == ref["sigmas_sha256_f32le"]


@pytest.mark.parametrize("name", family_names())
def test_latent_format_facts(name, reference_dir):
    ref = _ref_families(reference_dir)[name]["latent"]
    lat = get_family(name).latent
    assert lat.scale_factor == ref["scale_factor"] and lat.shift_factor == ref["shift_factor"]
    assert lat.channels == ref["latent_channels"] and lat.dimensions == ref["latent_dimensions"]


@pytest.mark.parametrize("name", family_names())
@pytest.mark.parametrize("scheduler", scheduler_names())
def test_schedule_invariants(name, scheduler):
    fam = get_family(name)
    smax = model_sampling(fam.sampling).sigmas_list[-1]
    for sampler in ("euler", "dpm_2"):
        for steps in (1, 2, 7, 30):
            s = ksampler_sigmas(fam, sampler, scheduler, steps)
            assert s.dtype == torch.float32
            if scheduler == "kl_optimal" and steps == 1 and sampler == "euler":
                assert math.isnan(s[0]) and s[1] == 0  # ComfyUI's 0/0, kept as is
                continue
            assert s[-1] == 0.0
            if scheduler not in ("ddim_uniform", "beta"):
                assert len(s) == steps + 1
            finite = s[torch.isfinite(s)]
            assert len(finite) == len(s)
            assert bool((finite[:-1] >= finite[1:]).all()), (name, scheduler, steps, s)
            assert float(s[0]) <= smax * (1 + 1e-4) + 1e-6  # kl_optimal: tan(atan(700)) in float32
            raw = node_sigmas(fam, sampler, scheduler, steps, 0, 10000)
            assert len(raw) == min(steps, len(s))


def test_names_are_case_insensitive():
    assert get_family("sdxl").name == "SDXL" and get_family("wan21_t2v").name == "WAN21_T2V"


@pytest.mark.parametrize("bad", [("nope", "simple"), ("euler", "nope")])
def test_unknown_names_raise_value_error(bad):
    with pytest.raises(ValueError, match="unknown"):
        ksampler_sigmas("SD15", bad[0], bad[1], 10)


def test_unknown_family():
    with pytest.raises(BadParameterError, match="unknown model family"):
        get_family("SD99")


def test_sampler_list_includes_newer_names():
    names = sampler_names()
    for n in ("exp_heun_2_x0", "exp_heun_2_x0_sde", "cfgpp_ud10_ab", "uni_pc_bh2", "ddim"):
        assert n in names
    assert names[0] == "euler" and scheduler_names()[0] == "simple"


def test_discard_penultimate_keeps_length():
    a = ksampler_sigmas("SD15", "euler", "karras", 10)
    b = ksampler_sigmas("SD15", "dpm_2", "karras", 10)
    assert len(a) == len(b) == 11 and not torch.equal(a, b)


def test_quirks():
    assert len(ksampler_sigmas("SD15", "euler", "ddim_uniform", 7)) == 9
    s = ksampler_sigmas("SD15", "euler", "ddim_uniform", 1)
    assert s.tolist() == [pytest.approx(0.0413144, rel=1e-5), 0.0]
    beta = ksampler_sigmas("SD15", "euler", "beta", 1000)
    assert len(beta) == 848
    assert node_sigmas("SD15", "euler", "beta", 1000, 0, 10000)[0] == 0.0
    sim = ksampler_sigmas("SD15", "euler", "simple", 10000)
    assert len(sim) == 10001 and bool((sim[:10] == sim[0]).all())


def test_overrides():
    f = get_family("Flux").with_overrides(shift=3.0)
    assert f.sampling.shift == 3.0
    assert not torch.equal(ksampler_sigmas(f, "euler", "normal", 10), ksampler_sigmas("Flux", "euler", "normal", 10))
    with pytest.raises(BadParameterError):
        get_family("SD15").with_overrides(shift=2.0)
    v = get_family("SD20").with_overrides(prediction="v_prediction")
    assert v.sampling.prediction == "V_PREDICTION"


@pytest.mark.parametrize("steps", [0, -1, 10001, 2.5])
def test_bad_steps(steps):
    with pytest.raises(BadParameterError):
        ksampler_sigmas("SD15", "euler", "simple", steps)
