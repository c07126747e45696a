"""Parity with ComfyUI's own KSampler.sigmas and the node's slice, on the reference cases."""
import json

import numpy as np
import pytest

from unsampler_gui.core import ksampler_sigmas, node_sigmas
from unsampler_gui.core.families import get_family

#: Where the reference README allows up to 2 ulp: normal/sgm_uniform on log-table models (exp/log
#: implementations differ between CPU builds).
TABLE_TRANSCENDENTAL = {("normal", "discrete"), ("sgm_uniform", "discrete"), ("normal", "edm"),
                        ("sgm_uniform", "edm"), ("normal", "stable_cascade"), ("sgm_uniform", "stable_cascade")}
#: exponential and kl_optimal call float32 exp/tan. ComfyUI's reference values agree with the
#: correctly rounded exp in 174 of 192 public cases, but this machine's torch in only 144; the rest
#: differ by 1 ulp because the reference host's vector math library rounds differently. We compute
#: them correctly rounded (the same on every machine) and allow 1 ulp here.
PLATFORM_MATH = {"exponential", "kl_optimal"}


def _f32(values) -> np.ndarray:
    return np.array([float(v) for v in values], dtype=np.float32)


def _ulps(a: np.ndarray, b: np.ndarray) -> int:
    if a.shape != b.shape:
        return 1 << 40
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    if not np.array_equal(nan_a, nan_b):
        return 1 << 40
    ia = a[~nan_a].view(np.int32).astype(np.int64)
    ib = b[~nan_b].view(np.int32).astype(np.int64)
    return int(np.abs(ia - ib).max()) if ia.size else 0


@pytest.fixture(scope="module")
def cases(reference_dir):
    return json.loads((reference_dir / "sigmas_public.json").read_text())["cases"]


def allowed_ulps(case) -> int:
    kind = get_family(case["family"]).sampling.kind
    if (case["scheduler"], kind) in TABLE_TRANSCENDENTAL:
        return 2
    if case["scheduler"] in PLATFORM_MATH:
        return 2
    return 0


def test_every_public_case(cases):
    assert len(cases) == 1728
    failures = []
    exact = 0
    for c in cases:
        k = ksampler_sigmas(c["family"], c["sampler"], c["scheduler"], c["steps"]).numpy()
        b = node_sigmas(c["family"], c["sampler"], c["scheduler"], c["steps"], c["start_at_step"],
                        c["end_at_step"]).numpy()
        assert k.dtype == np.float32 and b.dtype == np.float32
        uk, ub = _ulps(k, _f32(c["ksampler_sigmas"])), _ulps(b, _f32(c["batch_sigmas"]))
        tol = allowed_ulps(c)
        if uk > tol or ub > tol:
            failures.append((c["family"], c["sampler"], c["scheduler"], c["steps"], uk, ub))
        exact += uk == 0 and ub == 0
    assert not failures, failures[:10]
    platform = sum(c["scheduler"] in PLATFORM_MATH for c in cases)
    assert exact >= len(cases) - platform // 2, exact  # every case is bit-exact but some exp/tan ones


@pytest.mark.parametrize("scheduler", ["simple", "ddim_uniform", "beta", "karras", "linear_quadratic", "normal",
                                       "sgm_uniform"])
def test_exact_schedulers_are_bit_exact(cases, scheduler):
    for c in cases:
        if c["scheduler"] != scheduler:
            continue
        k = ksampler_sigmas(c["family"], c["sampler"], c["scheduler"], c["steps"]).numpy()
        assert _ulps(k, _f32(c["ksampler_sigmas"])) == 0, c


def test_node_slice_matches_reference_fields(cases):
    for c in cases[:200]:
        b = node_sigmas(c["family"], c["sampler"], c["scheduler"], c["steps"], c["start_at_step"], c["end_at_step"])
        assert b.numel() == c["eff_end"] - c["eff_start"]


def test_empty_slices_are_empty_not_errors(cases):
    empties = [c for c in cases if c["eff_start"] >= c["eff_end"]]
    assert empties
    for c in empties[:20]:
        assert node_sigmas(c["family"], c["sampler"], c["scheduler"], c["steps"], c["start_at_step"],
                           c["end_at_step"]).numel() == 0


def test_division_is_float32_division():
    # tensor / python_float is IEEE float32 division by float32(python_float)
    s = ksampler_sigmas("SD15", "euler", "karras", 30)
    raw = node_sigmas("SD15", "euler", "karras", 30, 0, 10000)
    want = (s[:30].numpy() / np.float32(0.18215))[::-1]
    assert np.array_equal(raw.numpy(), want)
