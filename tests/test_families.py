"""Every family of families.json and families_newest.json: tables, latent formats, detection facts, names and
schedule invariants, as ComfyUI builds them."""
import hashlib
import math

import numpy as np
import pytest
import torch

import reference_data as ref
from unsampler_gui.core import family_names, get_family, ksampler_sigmas, node_sigmas, sampler_names, scheduler_names
from unsampler_gui.core.errors import BadParameterError
from unsampler_gui.core.families import SHIFT_KINDS, builtin_registry, name_key
from unsampler_gui.core.model_sampling import model_sampling

#: Tables built with float32 exp/cos: their last bit follows the host (see the reference README).
TRANSCENDENTAL_TABLES = {"edm", "stable_cascade"}
NAMES = family_names()


def _sha(t: np.ndarray) -> str:
    return hashlib.sha256(t.astype("<f4").tobytes()).hexdigest()


def test_registry_has_every_detected_family(reference_dir):
    assert NAMES == list(ref.old_families()) + list(ref.new_families())
    assert len(NAMES) == 24 + 39


def _same_host_table_sha(name: str):
    """The sha256 of ComfyUI's table computed on a host of this machine's CPU vendor, or None if no file has it.

    The old families were made on an AMD host; families_newest.json (every class's default model_sampling) on an
    Intel host, so for a class whose default sampling is the family's, that entry is the Intel table."""
    e = ref.all_reference_families()[name]
    if name in ref.new_families():
        return e["model_sampling"]["sigmas_sha256_f32le"] if ref.newest_is_same_host() else None
    if ref.cpu_vendor() == "AuthenticAMD":
        return e["model_sampling"]["sigmas_sha256_f32le"]
    sm = ref.load("families_newest.json")["supported_models"][e["supported_models_class"]]["model_sampling"]
    same = sm["class_composition"] == e["model_sampling"]["class_composition"] and all(
        sm.get(k) == e["model_sampling"].get(k) for k in ("shift", "multiplier", "sigma_data", "zsnr"))
    return sm["sigmas_sha256_f32le"] if same and ref.newest_is_same_host() else None


@pytest.mark.parametrize("name", NAMES)
def test_table_matches_comfyui(name, reference_dir):
    r = ref.all_reference_families()[name]["model_sampling"]
    fam = get_family(name)
    t = model_sampling(fam.sampling).sigmas.numpy()
    assert t.dtype == np.float32 and len(t) == r["sigmas_len"]
    assert float(t[0]) == r["sigma_min"] and float(t[-1]) == r["sigma_max"]
    digest = _sha(t)
    assert fam.sampling.table_sha256 == r["sigmas_sha256_f32le"]
    if fam.sampling.kind not in TRANSCENDENTAL_TABLES:
        # only IEEE arithmetic and float64 builds: the same bits on every host
        assert t[:3].tolist() == r["sigmas_first3"] and t[-3:].tolist() == r["sigmas_last3"]
        assert digest == r["sigmas_sha256_f32le"]
    else:
        same_host = _same_host_table_sha(name)
        if same_host is not None:
            assert digest == same_host
        assert ref.ulps(t[:3], ref.f32(r["sigmas_first3"])) <= 2 and ref.ulps(t[-3:], ref.f32(r["sigmas_last3"])) <= 2


def test_transcendental_tables_are_checked_bit_for_bit_on_this_host():
    """SVD and Stable Cascade have a same-host table on both vendors; Playground v2.5 only on AMD."""
    checked = [n for n in NAMES if get_family(n).sampling.kind in TRANSCENDENTAL_TABLES and _same_host_table_sha(n)]
    want = {"SVD_img2vid", "Stable_Cascade_C"} | ({"PlaygroundV2_5"} if ref.cpu_vendor() == "AuthenticAMD" else set())
    assert set(checked) == want


@pytest.mark.parametrize("name", NAMES)
def test_sampling_facts(name, reference_dir):
    e = ref.all_reference_families()[name]
    ms, settings = e["model_sampling"], e["sampling_settings_effective"]
    s = get_family(name).sampling
    cls, prediction = ms["class_composition"]
    kind = {"ModelSamplingDiscrete": "discrete", "StableCascadeSampling": "stable_cascade",
            "ModelSamplingContinuousEDM": "edm", "ModelSamplingDiscreteFlow": "flow", "ModelSamplingFlux": "flux",
            "ModelSamplingAV": "flow_av"}[cls]
    assert (s.kind, s.prediction) == (kind, prediction)
    assert get_family(name).model_type == e["model_type"]
    if kind in SHIFT_KINDS:
        assert s.shift == ms["shift"]
    if kind in ("flow", "flow_av"):
        assert s.multiplier == ms["multiplier"]
        assert s.noise_scale == ms.get("noise_scale", 1.0)
    if kind == "flow_av":
        assert s.audio_shift == ms["audio_shift"] == settings["audio_shift"]
    if kind == "discrete":
        assert (s.num_timesteps, s.linear_start, s.linear_end, s.zsnr) == (
            ms["num_timesteps"], ms["linear_start"], ms["linear_end"], ms["zsnr"])
    if kind == "edm":
        assert s.sigma_data == ms["sigma_data"]
        assert (s.edm_sigma_min, s.edm_sigma_max) == (settings.get("sigma_min", 0.002), settings.get("sigma_max", 120.0))


def test_new_sampling_kinds_are_present():
    assert get_family("HiDreamO1").sampling.noise_scale == 8.0
    cog = get_family("CogVideoX_5B").sampling
    assert (cog.kind, cog.prediction, cog.zsnr) == ("discrete", "V_PREDICTION_DDPM", True)
    av = get_family("MiniMaxH3").sampling
    assert (av.kind, av.shift, av.audio_shift) == ("flow_av", 12.0, 3.0)
    assert get_family("LTXAV").sampling.kind == "flux"  # ModelSamplingFlux, as the reference file records


@pytest.mark.parametrize("name", NAMES)
def test_latent_format_facts(name, reference_dir):
    r = ref.all_reference_families()[name]["latent"]
    newest = ref.load("families_newest.json")["latent_formats"][r["class"]]
    lat = get_family(name).latent
    assert lat.name == r["class"]
    assert lat.scale_factor == r["scale_factor"] and lat.shift_factor == r["shift_factor"]
    assert lat.channels == r["latent_channels"] and lat.dimensions == r["latent_dimensions"]
    rows = r["latent_rgb_factors"]
    assert lat.rgb_factors == (None if rows is None else tuple(tuple(x) for x in rows))
    bias = r["latent_rgb_factors_bias"]
    assert lat.rgb_factors_bias == (None if bias is None else tuple(bias))
    assert lat.taesd_decoder_name == newest["taesd_decoder_name"]
    assert lat.spacial_downscale_ratio == newest["spacial_downscale_ratio"]
    assert lat.temporal_downscale_ratio == newest["temporal_downscale_ratio"]
    for k, mine in (("latents_mean", lat.latents_mean), ("latents_std", lat.latents_std)):
        if r.get(k):
            want = np.asarray(r[k]["tensor"], dtype=np.float64).reshape(-1)
            assert np.array_equal(np.asarray(mine), want)
        else:
            assert mine is None


def test_new_latent_formats():
    f2 = get_family("Flux2").latent
    assert (f2.channels, f2.spacial_downscale_ratio, f2.taesd_decoder_name) == (128, 16, "taef2_decoder")
    assert dict(f2.rgb_factors_reshape) == {"pixel_shuffle": 2} and len(f2.rgb_factors) == 32
    hv = get_family("HunyuanVideo15").latent
    assert (hv.channels, hv.dimensions, hv.spacial_downscale_ratio, hv.temporal_downscale_ratio) == (32, 3, 16, 4)
    assert hv.taesd_decoder_name == "lighttaehy1_5"
    av = get_family("LTXAV").latent
    assert (av.name, av.channels, av.spacial_downscale_ratio, av.temporal_downscale_ratio) == ("LTXAV", 128, 32, 8)
    for pixel in ("ZImagePixelSpace", "ChromaRadiance", "HiDreamO1", "PixelDiTT2I"):
        lat = get_family(pixel).latent
        assert (lat.channels, lat.spacial_downscale_ratio, lat.scale_factor) == (3, 1, 1.0)


@pytest.mark.parametrize("name", NAMES)
def test_detection_facts(name, reference_dir):
    """The detection helper reads these: the minimal keys with shapes, the keys with values, the unet_config and
    the safetensors metadata ComfyUI picks the class from."""
    e = ref.all_reference_families()[name]
    d = get_family(name).detection
    assert d["minimal_keys"] == e["minimal_detection_keys"]
    assert d["extra_keys_with_values"] == e["extra_keys_with_values"]
    assert d["unet_config"] == e["detected_unet_config_from_full_fake_checkpoint"]
    assert d["safetensors_metadata"] == e.get("safetensors_metadata")
    assert d["rule"]


def test_metadata_families_carry_their_metadata():
    assert get_family("WAN_Animate2").detection["safetensors_metadata"] == {
        "config": '{"transformer": {"model_type": "animate2"}}'}
    assert "causal_ar" in get_family("WAN21_CausalAR_T2V").detection["safetensors_metadata"]["config"]


def test_comfy_class_names_resolve_to_comfyuis_default_family(reference_dir):
    """Every class resolves; a class shared by several families gives the one ComfyUI builds when the state dict
    adds nothing (its model_type_without_state_dict and its own latent_format)."""
    sm = ref.load("families_newest.json")["supported_models"]
    classes = {e["supported_models_class"] for e in ref.all_reference_families().values()}
    for cls in classes:
        for spelling in (cls, cls.lower(), cls.upper()):
            fam = get_family(spelling)
            assert fam.comfy_class == cls
            assert fam.model_type == sm[cls]["model_type_without_state_dict"], cls
            assert fam.latent.name == sm[cls]["latent_format"], cls
    assert get_family("Flux2").name == "Flux2"
    assert get_family("CogVideoX_T2V").name == "CogVideoX_2B"
    assert get_family("SeedVR2").name == "SeedVR2_3B"
    assert get_family("SD20").name == "SD20" and get_family("SDXL").name == "SDXL"
    assert builtin_registry().class_defaults == {"CogVideoX_T2V": "CogVideoX_2B", "SeedVR2": "SeedVR2_3B"}


@pytest.mark.parametrize("name", NAMES)
def test_names_are_case_insensitive(name):
    for spelling in (name, name.lower(), name.upper(), name.swapcase()):
        assert get_family(spelling).name == name


def test_display_names_are_real_and_unique():
    fams = builtin_registry()
    keys = [name_key(f.display_name) for f in fams]
    assert len(set(keys)) == len(keys)
    shown = {f.name: f.display_name for f in fams}
    assert shown["Flux2"] == "FLUX.2 dev" and shown["Flux2_Klein_4B"] == "FLUX.2 [klein] 4B"
    assert shown["ZImage"] == "Z-Image" and shown["LTXAV"] == "LTX-2" and shown["HunyuanVideo15"] == "HunyuanVideo 1.5"
    for f in fams:
        assert get_family(f.display_name).name == f.name


@pytest.mark.parametrize("name", NAMES)
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


@pytest.mark.parametrize("bad", [("nope", "simple"), ("euler", "nope")])
def test_unknown_names_raise_value_error(bad):
    with pytest.raises(ValueError, match="unknown"):
        ksampler_sigmas("SD15", bad[0], bad[1], 10)


def test_unknown_family():
    with pytest.raises(BadParameterError, match="unknown model family"):
        get_family("SD99")


def test_sampler_list_is_comfyui_masters(reference_dir):
    names = sampler_names()
    assert names == ref.load("comfy_lists_newest.json")["SAMPLERS"]
    assert "cfgpp_ud10_ab" not in names
    for n in ("exp_heun_2_x0", "exp_heun_2_x0_sde", "uni_pc_bh2", "ddim"):
        assert n in names
    assert scheduler_names() == ref.load("comfy_lists_newest.json")["SCHEDULERS"]
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
    av = get_family("MiniMaxH3").with_overrides(shift=5.0)
    assert av.sampling.shift == 5.0 and av.sampling.audio_shift == 3.0


@pytest.mark.parametrize("steps", [0, -1, 10001, 2.5])
def test_bad_steps(steps):
    with pytest.raises(BadParameterError):
        ksampler_sigmas("SD15", "euler", "simple", steps)
