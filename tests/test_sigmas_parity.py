"""Parity with ComfyUI's own KSampler.sigmas and the node's slice, on every reference case.

ComfyUI's float32 transcendental kernels (exp, tan, cos, ...) round differently on different hosts, so each file
is compared bit for bit on a machine of the CPU vendor it was computed on, and within 2 ulp elsewhere (see the
reference README: ``sigmas_public.json`` is from an AMD host, ``sigmas_public_intel.json`` and
``sigmas_newest_public.json`` from an Intel host).
"""
import numpy as np
import pytest

import reference_data as ref
from unsampler_gui.core import ksampler_sigmas, node_sigmas

#: file -> (CPU vendor of the host that made it, number of cases)
FILES = {"sigmas_public.json": ("AuthenticAMD", 1728), "sigmas_public_intel.json": ("GenuineIntel", 1728),
         "sigmas_newest_public.json": ("GenuineIntel", 1188)}
OTHER_HOST_ULPS = 2


def _cases(name):
    return ref.load(name)["cases"]


def tolerance(name: str) -> int:
    return 0 if FILES[name][0] == ref.cpu_vendor() else OTHER_HOST_ULPS


def _compare(case):
    k = ksampler_sigmas(case["family"], case["sampler"], case["scheduler"], case["steps"]).numpy()
    b = node_sigmas(case["family"], case["sampler"], case["scheduler"], case["steps"], case["start_at_step"],
                    case["end_at_step"]).numpy()
    assert k.dtype == np.float32 and b.dtype == np.float32
    return ref.ulps(k, ref.f32(case["ksampler_sigmas"])), ref.ulps(b, ref.f32(case["batch_sigmas"]))


def test_the_files_are_the_documented_ones(reference_dir):
    for name, (_, count) in FILES.items():
        cases = _cases(name)
        assert len(cases) == count == ref.load(name)["count"]
        assert all("ksampler_sigmas" in c for c in cases)  # no truncated cases to skip
    assert "Intel" in ref.load("sigmas_public_intel.json")["host"]
    assert "Intel" in ref.load("sigmas_newest_public.json")["host"]
    newest = {c["family"] for c in _cases("sigmas_newest_public.json")}
    assert newest == set(ref.new_families()) and len(newest) == 39


@pytest.mark.parametrize("name", list(FILES))
def test_every_case(name, reference_dir):
    """Bit for bit against the file of this machine's CPU vendor, within 2 ulp against the other host's."""
    tol = tolerance(name)
    failures = []
    for c in _cases(name):
        uk, ub = _compare(c)
        if uk > tol or ub > tol:
            failures.append((c["family"], c["sampler"], c["scheduler"], c["steps"], c["start_at_step"],
                             c["end_at_step"], uk, ub))
    assert not failures, (len(failures), failures[:10])


def test_this_machine_has_a_bit_exact_file():
    """The machine this runs on is Intel or AMD, so one of the files is compared bit for bit."""
    assert ref.cpu_vendor() in ("GenuineIntel", "AuthenticAMD")
    assert min(tolerance(n) for n in FILES) == 0


@pytest.mark.parametrize("name", list(FILES))
def test_node_slice_matches_reference_fields(name, reference_dir):
    for c in _cases(name):
        s, e = c["eff_start"], c["eff_end"]
        assert (s, e) == (min(c["start_at_step"], min(c["steps"], c["end_at_step"])), min(c["steps"], c["end_at_step"]))
        b = node_sigmas(c["family"], c["sampler"], c["scheduler"], c["steps"], c["start_at_step"], c["end_at_step"])
        assert b.numel() == len(c["batch_sigmas"]) == max(0, min(e, len(c["ksampler_sigmas"])) - s)
        assert c["scale_factor"] == ref.all_reference_families()[c["family"]]["latent"]["scale_factor"]


def test_empty_slices_are_empty_not_errors(reference_dir):
    empties = [c for c in _cases("sigmas_public.json") if c["eff_start"] >= c["eff_end"]]
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
