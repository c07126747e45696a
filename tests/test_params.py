"""RunParams: one record of the run parameters, with their registries, dicts, metadata and CLI options."""
from __future__ import annotations

import argparse

import pytest
import torch

from unsampler_gui import core
from unsampler_gui.core import params
from unsampler_gui.core.devices import DEVICES
from unsampler_gui.core.schedulers import SCHEDULERS


def test_frozen_and_comparable():
    a, b = params.default(), params.RunParams()
    assert a == b and hash(a) == hash(b)
    assert a.replace(steps=30) != a and a.replace(steps=30) == b.replace(steps=30)
    with pytest.raises(Exception):
        a.steps = 3


def test_choices_come_from_the_registries():
    assert params.get("family").options() == tuple(core.family_names())
    assert params.get("sampler").options() == tuple(core.sampler_names())
    assert params.get("scheduler").options() == tuple(SCHEDULERS)
    assert params.get("noise").options() == tuple(core.NOISE_MODES)
    assert params.get("formula").options() == tuple(core.FORMULAS)
    assert params.get("device").options() == tuple(DEVICES)
    assert params.get("prediction").options(core.get_family("SDXL")) == ("EPS", "V_PREDICTION")
    assert params.get("prediction").options(core.get_family("Flux")) == ("CONST",)


def test_defaults_are_the_nodes():
    p = params.default()
    assert (p.family, p.sampler, p.scheduler, p.steps, p.start_at_step, p.end_at_step, p.normalize) == \
        ("SD15", core.sampler_names()[0], "simple", 10000, 0, 10000, False)
    assert (p.seed, p.noise, p.formula, p.device, p.shift, p.prediction) == (0, "independent", "model", "auto",
                                                                             None, None)


def test_from_dict_takes_valid_values_only():
    base = params.default()
    p = params.from_dict({"steps": 30.0, "seed": -1, "noise": "loud", "sampler": 3, "scheduler": "karras",
                          "normalize": "yes", "start_at_step": True, "nonsense": 1}, base)
    assert (p.steps, p.scheduler) == (30, "karras")
    assert (p.seed, p.noise, p.sampler, p.normalize, p.start_at_step) == (0, "independent", "euler", False, 0)
    assert params.from_dict("not a dict", base) is base
    # an override that does not fit the family is dropped (SD1.5 has no shift; CONST is not an SD prediction)
    assert params.from_dict({"shift": 3.0, "prediction": "CONST"}).shift is None
    assert params.from_dict({"shift": 3.0, "prediction": "CONST"}).prediction is None
    flux = params.from_dict({"family": "Flux", "shift": 3.0})
    assert (flux.family, flux.shift) == ("Flux", 3.0)
    # settings saved before RunParams: the override box was off, so its values are not overrides
    assert params.from_dict({"family": "Flux", "overrides": False, "shift": 3.0}).shift is None
    assert params.from_dict({"family": "SDXL"}, skip=("family",)).family == "SD15"


def test_dict_round_trip():
    p = params.default().replace(family="Flux", sampler="dpm_2", steps=33, seed=7, shift=2.5, noise="trajectory")
    assert params.from_dict(params.to_dict(p)) == p


def test_effective_family_applies_overrides():
    flux = core.get_family("Flux")
    assert params.effective_family(params.default(), flux) is flux
    fam = params.effective_family(params.default().replace(shift=3.0), flux)
    assert fam.sampling.shift == 3.0
    fam = params.effective_family(params.default().replace(prediction="v"), core.get_family("SDXL"))
    assert fam.sampling.prediction == "V_PREDICTION"  # the words ComfyUI users write are understood
    with pytest.raises(core.BadParameterError):
        params.effective_family(params.default().replace(shift=3.0), core.get_family("SD15"))


def test_metadata_keys_stay_compatible():
    """An export made from RunParams has exactly the keys an UnsampleSpec export always had."""
    lat = torch.zeros(1, 4, 8, 8)
    p = params.default().replace(steps=5, seed=3, scheduler="karras")
    spec = params.make_spec(p, core.get_family("SD15"), lat, source_name="x.latent")
    plain = core.UnsampleSpec(family=core.get_family("SD15"), latent=lat, steps=5, seed=3, scheduler="karras",
                              source_name="x.latent")
    assert spec.params() == plain.params()
    assert spec.replace(frames=(0, 1)).run_params is p  # the plan, the result and the exports keep it
    plan = core.plan_unsample(spec)
    assert isinstance(plan.spec, params.RunSpec) and plan.spec.run_params is p


def test_old_exports_restore():
    """The ``unsampler`` JSON of an export written before RunParams (keys as they were) restores."""
    old = {"family": "SDXL", "model": "SDXL", "sampler": "dpm_2", "scheduler": "karras", "steps": 30,
           "start_at_step": 3, "end_at_step": 20, "normalize": True, "seed": 77, "noise": "trajectory",
           "formula": "legacy", "prediction": "EPS", "shift": 1.0, "scale_factor": 0.13025, "frames": "all",
           "version": "0.1.0", "sigmas": [0.1, 0.2]}
    p = params.from_metadata(old, params.default().replace(device="cpu"))
    assert (p.family, p.sampler, p.scheduler, p.steps, p.start_at_step, p.end_at_step, p.normalize, p.seed,
            p.noise, p.formula) == ("SDXL", "dpm_2", "karras", 30, 3, 20, True, 77, "trajectory", "legacy")
    assert p.device == "cpu" and p.shift is None  # not restored: the device is this machine's choice


def _parser(command):
    sp = argparse.ArgumentParser()
    params.add_cli_options(sp, command)
    return sp


def test_cli_options_have_the_field_defaults():
    args = _parser(params.RUN).parse_args(["--model", "SD15"])
    assert params.from_cli(args, params.RUN, skip=("family",)) == params.default()
    args = _parser(params.RUN).parse_args(["--model", "x", "--start", "3", "--end", "9", "--normalize",
                                           "--noise", "shared", "--shift", "2"])
    p = params.from_cli(args, params.RUN, skip=("family",))
    assert (p.start_at_step, p.end_at_step, p.normalize, p.noise, p.shift) == (3, 9, True, "shared", 2.0)
    assert args.model == "x"
    info = _parser(params.INFO).parse_args(["--shift", "3"])
    assert info.shift == 3.0 and not hasattr(info, "steps")
    with pytest.raises(core.BadParameterError, match="steps must be between 1 and 10000"):
        params.from_cli(_parser(params.SIGMAS).parse_args(["--model", "SD15", "--steps", "0"]), params.SIGMAS)
