"""Every family x every scheduler x cases no reference file has: checked against schedules derived here.

The reference files hold 3 samplers x few step counts for 4 + 39 families. For every family and every scheduler,
other step counts and the discard-penultimate samplers are checked against an independent path written from
ComfyUI's formulas (comfy/samplers.py, k_diffusion/sampling.py, comfy/model_sampling.py) in numpy:

- the table itself comes from the facts of the families files (its sha256 is checked in test_families.py);
  for discrete models it is rebuilt here in float64 from the betas and compared;
- simple, ddim_uniform, beta, linear_quadratic and the flow/flux normal and sgm_uniform schedules use only
  table lookups and IEEE float32 arithmetic: derived bit for bit;
- karras, exponential, kl_optimal and the normal/sgm_uniform schedules of discrete, EDM and Stable Cascade
  models go through float32 pow/exp/tan/log/cos, whose last bit depends on the host: the float32 operations are
  replayed here in numpy and the transcendental step is taken in float64, correctly rounded; ComfyUI's
  float32 kernels are within 2 ulp of that (the same bound as between the reference hosts).

``torch.linspace`` is taken as given (ComfyUI calls it; it is not ours to re-derive).
"""
import math

import numpy as np
import pytest
import torch

import reference_data as ref
from unsampler_gui.core import family_names, get_family, ksampler_sigmas, node_sigmas, scheduler_names
from unsampler_gui.core.model_sampling import model_sampling

STEPS = (1, 2, 3, 5, 8, 13, 30, 77, 100, 1000)
SAMPLERS = ("euler", "dpm_2")  # dpm_2: computed for steps + 1, penultimate dropped
TRANSCENDENTAL_ULPS = 2
F = np.float32


def _table(name) -> np.ndarray:
    return model_sampling(get_family(name).sampling).sigmas.numpy()


def _ends(name):
    """float(sigma_min), float(sigma_max) as ComfyUI's handlers get them: the facts of the families files."""
    r = ref.all_reference_families()[name]["model_sampling"]
    return r["sigma_min"], r["sigma_max"]


def _append_zero(x):
    return np.concatenate([np.asarray(x, F), np.zeros(1, F)])


def _linspace(a, b, n) -> np.ndarray:
    return torch.linspace(a, b, n).numpy()


# ----------------------------------------------------------------------------------------- exact schedulers

def simple(table, steps):
    ss = len(table) / steps
    return _append_zero([table[-(1 + int(x * ss))] for x in range(steps)])


def ddim_uniform(table, steps):
    if math.isclose(float(table[1]), 0, abs_tol=0.00001):
        steps, sigs = steps + 1, []
    else:
        sigs = [0.0]
    stride = max(len(table) // steps, 1)
    sigs += [float(v) for v in table[1::stride]]
    return np.asarray(sigs[::-1], F)


def beta(table, steps, a=0.6, b=0.6):
    from scipy.stats import beta as dist

    ts = np.rint(dist.ppf(1 - np.linspace(0, 1, steps, endpoint=False), a, b) * (len(table) - 1))
    keep = [int(t) for i, t in enumerate(ts) if i == 0 or t != ts[i - 1]]
    return _append_zero(table[keep])


def linear_quadratic(table, steps, threshold=0.025):
    if steps == 1:
        sched = [1.0, 0.0]
    else:
        lin_steps = steps // 2
        lin = [i * threshold / lin_steps for i in range(lin_steps)]
        diff = lin_steps - threshold * steps
        q_steps = steps - lin_steps
        q_coef = diff / (lin_steps * q_steps ** 2)
        l_coef = threshold / lin_steps - 2 * diff / (q_steps ** 2)
        const = q_coef * lin_steps ** 2
        quad = [q_coef * i ** 2 + l_coef * i + const for i in range(lin_steps, steps)]
        sched = [1.0 - x for x in lin + quad + [1.0]]
    return np.asarray(sched, F) * table[-1]


# --------------------------------------------------------------------- sigma-min/max schedulers (float64 step)

def karras(n, smin, smax, rho=7.0):
    ramp = _linspace(0, 1, n)
    base = F(smax ** (1 / rho)) + ramp * F(smin ** (1 / rho) - smax ** (1 / rho))
    return _append_zero((base.astype(np.float64) ** rho).astype(F))


def exponential(n, smin, smax):
    return _append_zero(np.exp(_linspace(math.log(smax), math.log(smin), n).astype(np.float64)).astype(F))


def kl_optimal(n, smin, smax):
    with np.errstate(invalid="ignore", divide="ignore"):
        adj = np.arange(n, dtype=F) / F(n - 1)
        arg = adj * F(math.atan(smin)) + (F(1) - adj) * F(math.atan(smax))
    return _append_zero(np.tan(arg.astype(np.float64)).astype(F))


# ------------------------------------------------------------------------------- normal / sgm_uniform

def _discrete_log_table(s) -> np.ndarray:
    """ModelSamplingDiscrete in float64 (linear betas, cumprod, optional zero-terminal-SNR), log then float32."""
    betas = np.linspace(s.linear_start ** 0.5, s.linear_end ** 0.5, s.num_timesteps, dtype=np.float64) ** 2
    ac = np.cumprod(1.0 - betas)
    sig = ((1 - ac) / ac) ** 0.5
    if s.zsnr:
        a = (1 / (sig * sig + 1)) ** 0.5
        a0, at = a[0], a[-1]
        a = (a - at) * (a0 / (a0 - at))
        ab = a ** 2
        ab[-1] = 4.8973451890853435e-08
        sig = ((1 - ab) / ab) ** 0.5
    return sig.astype(F), np.log(sig).astype(F)


def _sigma_fns(fam):
    """(timestep(sigma) as float32, sigma(t) as float32 or float64-then-rounded, exact?) of a family."""
    s = fam.sampling
    if s.kind in ("flow", "flow_av"):
        def sigma(t):
            t = (t / F(s.multiplier)).astype(F)
            if s.shift == 1.0:
                return t
            return (F(s.shift) * t / (F(1) + F(s.shift - 1) * t)).astype(F)
        return (lambda sg: (sg * F(s.multiplier)).astype(F)), sigma, True
    if s.kind == "flux":
        e = F(math.exp(s.shift))

        def sigma(t):
            z = e + ((F(1) / t) * F(1) - F(1))  # python / tensor is reciprocal() * value; ** 1.0 is exact
            return ((F(1) / z) * e).astype(F)
        return (lambda sg: sg.astype(F)), sigma, True
    if s.kind == "discrete":
        table, log_table = _discrete_log_table(s)
        assert np.array_equal(table, _table(fam.name))  # the table rebuilt on its own is ComfyUI's

        def timestep(sg):
            return np.abs(np.log(np.float64(sg)).astype(F) - log_table).argmin()

        def sigma(t):
            t = np.clip(t.astype(F), 0, len(log_table) - 1)
            lo, hi = np.floor(t).astype(int), np.ceil(t).astype(int)
            w = (t - np.floor(t)).astype(F)
            ls = (F(1) - w) * log_table[lo] + w * log_table[hi]
            return np.exp(ls.astype(np.float64)).astype(F)
        return timestep, sigma, False
    if s.kind == "edm":
        return (lambda sg: (F(0.25) * F(np.log(np.float64(sg))))), \
            (lambda t: np.exp((t / F(0.25)).astype(F).astype(np.float64)).astype(F)), False
    if s.kind == "stable_cascade":
        # StableCascadeSampling's float32 chain, replayed op by op; cos/log/sigmoid/acos taken correctly rounded
        def r(fn, x):
            return F(fn(np.float64(x)))
        cs = F(8e-3)
        pi = F(math.pi)
        init = F(r(math.cos, F(F(cs / F(F(1) + cs)) * pi) * F(0.5)) ** 2)
        log_shift = F(F(2) * r(math.log, F(F(1) / F(s.shift))))

        def one_sigma(t):
            ac = F(F(r(math.cos, F(F(F(F(t + cs) / F(F(1) + cs)) * pi) * F(0.5))) ** 2) / init)
            if s.shift != 1.0:
                ac = r(lambda v: 1 / (1 + math.exp(-v)), F(r(math.log, F(ac / F(F(1) - ac))) + log_shift))
            ac = min(max(ac, F(0.0001)), F(0.9999))
            return F(np.sqrt(F(F(F(1) - ac) / ac)))

        def sigma(t):
            return np.asarray([one_sigma(F(v)) for v in np.atleast_1d(t)], F)

        def timestep(sg):
            var = min(max(F(F(1) / F(F(F(sg) * F(sg)) + F(1))), F(0)), F(1))
            root = F(np.sqrt(F(var * init)))
            return F(F(F(r(math.acos, root) / F(pi * F(0.5))) * F(F(1) + cs)) - cs)
        return timestep, sigma, False
    raise AssertionError(s.kind)


def normal(fam, table, steps, sgm=False):
    timestep, sigma, _ = _sigma_fns(fam)
    start, end = timestep(table[-1]), timestep(table[0])
    if sgm:
        ts = _linspace(float(start), float(end), steps + 1)[:-1]
        return _append_zero(sigma(ts))
    if math.isclose(float(sigma(np.asarray([end], F))[0]), 0, abs_tol=0.00001):
        return np.asarray(sigma(_linspace(float(start), float(end), steps + 1)), F)
    return _append_zero(sigma(_linspace(float(start), float(end), steps)))


def derived(fam, scheduler, steps):
    table = _table(fam.name)
    smin, smax = _ends(fam.name)
    return {
        "simple": lambda: simple(table, steps), "ddim_uniform": lambda: ddim_uniform(table, steps),
        "beta": lambda: beta(table, steps), "linear_quadratic": lambda: linear_quadratic(table, steps),
        "karras": lambda: karras(steps, smin, smax), "exponential": lambda: exponential(steps, smin, smax),
        "kl_optimal": lambda: kl_optimal(steps, smin, smax),
        "normal": lambda: normal(fam, table, steps), "sgm_uniform": lambda: normal(fam, table, steps, sgm=True),
    }[scheduler]()


#: Stable Cascade's sigma(t) clamps alpha_cumprod at 0.9999 and takes 1 - alpha_cumprod: near the low end that
#: subtraction keeps ~12 of 24 bits, so one ulp of a cos changes the result by up to ~1e3 ulp. Its normal and
#: sgm_uniform schedules are compared relatively there (the bits themselves are checked against ComfyUI by the
#: reference-file cases of the same operations).
CASCADE_RTOL = 5e-4


def allowed_ulps(fam, scheduler):
    if scheduler in ("normal", "sgm_uniform") and fam.sampling.kind == "stable_cascade":
        return None
    if scheduler in ("karras", "exponential", "kl_optimal"):
        return TRANSCENDENTAL_ULPS
    if scheduler in ("normal", "sgm_uniform") and not _sigma_fns(fam)[2]:
        return TRANSCENDENTAL_ULPS
    return 0


@pytest.mark.parametrize("scheduler", scheduler_names())
@pytest.mark.parametrize("name", family_names())
def test_schedule_equals_the_derived_one(name, scheduler, reference_dir):
    fam = get_family(name)
    tol = allowed_ulps(fam, scheduler)
    for sampler in SAMPLERS:
        for steps in STEPS:
            want = derived(fam, scheduler, steps + 1 if sampler == "dpm_2" else steps)
            if sampler == "dpm_2":
                want = np.concatenate([want[:-2], want[-1:]])
            got = ksampler_sigmas(fam, sampler, scheduler, steps).numpy()
            if tol is None:
                assert got.shape == want.shape and np.allclose(got, want, rtol=CASCADE_RTOL, atol=0), (steps, got, want)
            else:
                assert ref.ulps(got, want) <= tol, (sampler, steps, got[:6], want[:6])


@pytest.mark.parametrize("name", family_names())
def test_node_slices_are_float32_divisions(name):
    fam = get_family(name)
    scale = F(fam.latent.scale_factor)
    for scheduler in ("karras", "normal", "beta"):
        for steps, start, end in ((30, 0, 10000), (30, 10, 20), (7, 2, 5), (13, 13, 13), (8, 0, 3)):
            sched = ksampler_sigmas(fam, "euler", scheduler, steps).numpy()
            e = min(steps, end)
            s = min(start, e)
            want = (sched[s:e] / scale)[::-1]
            got = node_sigmas(fam, "euler", scheduler, steps, start, end).numpy()
            assert np.array_equal(got, want)


def _comfy_normal(ms, steps: int, sgm: bool) -> torch.Tensor:
    """ComfyUI's normal_scheduler / sgm_uniform, literally: sigma() on one 0-d timestep at a time."""
    start, end = ms.timestep(ms.sigma_max), ms.timestep(ms.sigma_min)
    append_zero = True
    if sgm:
        timesteps = torch.linspace(start, end, steps + 1)[:-1]
    else:
        if math.isclose(float(ms.sigma(end)), 0, abs_tol=0.00001):
            steps += 1
            append_zero = False
        timesteps = torch.linspace(start, end, steps)
    sigs = [float(ms.sigma(timesteps[x])) for x in range(len(timesteps))]
    if append_zero:
        sigs += [0.0]
    return torch.FloatTensor(sigs)


@pytest.mark.parametrize("name", family_names())
def test_normal_and_sgm_uniform_have_the_bits_of_comfyuis_one_at_a_time_loop(name):
    """normal/sgm_uniform call sigma() on a whole vector where that gives ComfyUI's bits (plain arithmetic, or
    kernels checked to round a vector as one element): every family, both schedulers, many step counts
    (vector bodies and tails), against ComfyUI's own loop over 0-d tensors."""
    from unsampler_gui.core.sigmas import _schedule

    fam = get_family(name)
    ms = model_sampling(fam.sampling)
    counts = (1, 2, 7, 16, 17, 33, 100, 1001) + ((10000,) if name in ("SD15", "SDXL", "PlaygroundV2_5") else ())
    for steps in counts:
        for sgm in (False, True):
            _schedule.cache_clear()
            got = ksampler_sigmas(fam, "euler", "sgm_uniform" if sgm else "normal", steps)
            want = _comfy_normal(ms, steps, sgm)
            assert torch.equal(got.view(torch.int32), want.view(torch.int32)), (steps, sgm)


def test_each_kernel_is_vectorised_only_where_this_build_rounds_a_vector_alike():
    """exp (discrete, EDM), cos, log and the powers pass the probe on this build; sigmoid (a shifted Stable
    Cascade) does not, and ``kernel`` then takes it one 0-d element at a time: the bits of ComfyUI's loop
    either way, on the values a 10,000-step schedule feeds the kernels."""
    from unsampler_gui.core.model_sampling import _KERNELS, kernel, vector_kernel_is_scalar

    verdicts = {op: vector_kernel_is_scalar(op) for op in _KERNELS}
    assert verdicts["exp"] and verdicts["cos"] and not verdicts["sigmoid"]
    g = torch.Generator().manual_seed(7)
    for op, fn in _KERNELS.items():
        x = torch.rand(10007, generator=g) * 30 - 15 if op != "log" and op != "pow_half" else torch.rand(10007) * 50
        assert torch.equal(kernel(op, x).view(torch.int32), torch.stack([fn(v) for v in x.unbind()]).view(torch.int32))
    x = torch.rand(10007, generator=g) * 40 - 20
    assert not torch.equal(torch.sigmoid(x), torch.stack([torch.sigmoid(v) for v in x.unbind()]))  # why


def test_schedules_do_not_depend_on_torchs_thread_count():
    """A scheduler runs on one intra-op thread when its vector kernels round a vector as one element (then
    the split cannot matter); its bits are those of torch's default threads, for every scheduler."""
    from unsampler_gui.core.sigmas import _schedule

    before = torch.get_num_threads()
    got = {}
    try:
        for threads in (before, 1, 3):
            torch.set_num_threads(threads)
            for fam in ("SD15", "PlaygroundV2_5", "Flux", "Stable_Cascade_C"):
                for sch in scheduler_names():
                    _schedule.cache_clear()
                    got.setdefault((fam, sch), []).append(ksampler_sigmas(fam, "euler", sch, 1001).view(torch.int32))
    finally:
        torch.set_num_threads(before)
    for (fam, sch), runs in got.items():
        if sch == "karras":  # its pow does not round a vector as one element here: it keeps torch's threads
            continue
        assert all(torch.equal(runs[0], r) for r in runs[1:]), (fam, sch)
