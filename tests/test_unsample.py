"""The unsampling job: formulas, statistics, layout, seeds, chunking, cancel and streaming."""
import pytest
import torch

from unsampler_gui.core import (Cancelled, Reporter, UnsampleSpec, get_family, node_sigmas, plan_unsample,
                                run_unsample)
from unsampler_gui.core.errors import BadParameterError
from unsampler_gui.core.latent_io import read_latent
from unsampler_gui.core.formulas import process_in


def spec(family="SD15", shape=(1, 4, 32, 32), **kw):
    torch.manual_seed(0)
    x = torch.randn(*shape) * 0.5 + 0.2
    kw.setdefault("steps", 20)
    return UnsampleSpec(family=get_family(family), latent=x, **kw)


def test_output_layout_and_count():
    s = spec(shape=(2, 4, 8, 8), steps=10)
    r = run_unsample(s)
    assert r.latent.shape == (20, 4, 8, 8) and r.latent.dtype == torch.float32
    sig = node_sigmas("SD15", "euler", "simple", 10)
    for i in range(10):
        for b in range(2):
            d = r.latent[i * 2 + b] - s.latent[b]
            # step-major: row i*B+b is step i of item b, noised at the node's sigma i
            assert abs(d.std().item() / sig[i].item() - 1) < 0.15


@pytest.mark.parametrize("family", ["SD15", "SDXL", "SD21_768_v", "PlaygroundV2_5"])
def test_eps_statistics_match_raw_sigmas(family):
    s = spec(family, shape=(1, 4, 64, 64), steps=12)
    r = run_unsample(s)
    raw = node_sigmas(family, "euler", "simple", 12)
    fam = get_family(family)
    std = torch.tensor(fam.latent.latents_std or [1.0] * 4).view(4, 1, 1)
    for i in range(12):
        d = (r.latent[i] - s.latent[0]) / std  # Playground: per-channel std scales the noise
        assert d.std().item() == pytest.approx(raw[i].item(), rel=0.03)
        assert abs(d.mean().item()) < 0.05 * raw[i].item() + 1e-6


@pytest.mark.parametrize("family", ["SD15", "SDXL"])
@pytest.mark.parametrize("noise", ["independent", "shared", "trajectory"])
def test_model_equals_legacy_bit_for_bit(family, noise):
    a = run_unsample(spec(family, formula="model", noise=noise, seed=3)).latent
    b = run_unsample(spec(family, formula="legacy", noise=noise, seed=3)).latent
    assert torch.equal(a, b)


@pytest.mark.parametrize("family", ["Flux", "SD3", "WAN21_T2V"])
def test_flow_identity_in_model_space(family):
    fam = get_family(family)
    shape = (1, fam.latent.channels, 3, 16, 16) if fam.latent.dimensions == 3 else (1, fam.latent.channels, 16, 16)
    s = spec(family, shape=shape, steps=8, noise="shared", seed=5)
    r = run_unsample(s)
    x_m = process_in(s.latent, fam)
    # recover eps from the highest-noise frame, then check every frame is (1-sigma) x_m + sigma eps
    sig = r.sigmas
    z = process_in(r.latent, fam)
    eps = (z[-1] - (1 - sig[-1]) * x_m[0]) / sig[-1]
    for i in range(len(sig)):
        want = (1 - sig[i]) * x_m[0] + sig[i] * eps
        assert torch.allclose(z[i], want, atol=2e-4, rtol=1e-4)
    assert eps.std().item() == pytest.approx(1.0, abs=0.05)


def test_flow_legacy_differs_from_model():
    a = run_unsample(spec("Flux", shape=(1, 16, 8, 8), formula="model")).latent
    b = run_unsample(spec("Flux", shape=(1, 16, 8, 8), formula="legacy")).latent
    assert not torch.allclose(a, b)


def test_trajectory_increments_are_independent_with_right_variance():
    s = spec(shape=(1, 4, 64, 64), steps=10, noise="trajectory", seed=11)
    r = run_unsample(s)
    raw = node_sigmas("SD15", "euler", "simple", 10)
    frames = r.latent
    incs = [frames[0] - s.latent[0]] + [frames[i] - frames[i - 1] for i in range(1, 10)]
    for i in range(10):
        want = raw[i] ** 2 - (raw[i - 1] ** 2 if i else 0.0)
        assert incs[i].var().item() == pytest.approx(float(want), rel=0.05)
        # marginal: each frame's total noise has the node's sigma
        assert (frames[i] - s.latent[0]).std().item() == pytest.approx(raw[i].item(), rel=0.03)
    flat = torch.stack([t.flatten() / t.std() for t in incs])
    corr = torch.corrcoef(flat)
    off = corr - torch.eye(10)
    assert off.abs().max().item() < 0.05


def test_trajectory_flow_marginals():
    fam = get_family("Flux")
    s = spec("Flux", shape=(1, 16, 32, 32), steps=10, noise="trajectory", seed=2)
    r = run_unsample(s)
    x_m = process_in(s.latent, fam)[0]
    z = process_in(r.latent, fam)
    for i, sg in enumerate(r.sigmas.tolist()):
        resid = z[i] - (1 - sg) * x_m
        assert resid.std().item() == pytest.approx(sg, rel=0.04)


def test_shared_noise_is_one_eps():
    s = spec(steps=6, noise="shared")
    r = run_unsample(s)
    raw = r.raw_sigmas
    e0 = (r.latent[0] - s.latent[0]) / raw[0]
    e5 = (r.latent[5] - s.latent[0]) / raw[5]
    assert torch.allclose(e0, e5, atol=1e-3)


@pytest.mark.parametrize("noise", ["independent", "shared", "trajectory"])
def test_seed_is_bit_identical_whatever_chunks_and_threads(noise):
    base = run_unsample(spec(shape=(2, 4, 8, 8), steps=50, noise=noise, seed=7, normalize=True)).latent
    for chunk, threads in ((1, 1), (7, 2), (50, 3), (3, 4)):
        other = run_unsample(spec(shape=(2, 4, 8, 8), steps=50, noise=noise, seed=7, normalize=True,
                                  chunk_frames=chunk, threads=threads)).latent
        assert torch.equal(base, other), (chunk, threads)
    assert not torch.equal(base, run_unsample(spec(shape=(2, 4, 8, 8), steps=50, noise=noise, seed=8,
                                                   normalize=True)).latent)


@pytest.mark.parametrize("noise", ["independent", "shared", "trajectory"])
def test_subsets_are_bit_identical_to_the_full_run(noise):
    full = run_unsample(spec(shape=(2, 4, 8, 8), steps=30, noise=noise, seed=9)).latent
    pos = (29, 3, 4, 5, 17, 0)
    sub = run_unsample(spec(shape=(2, 4, 8, 8), steps=30, noise=noise, seed=9, frames=pos, chunk_frames=2)).latent
    for o, p in enumerate(pos):
        assert torch.equal(sub[o * 2:(o + 1) * 2], full[p * 2:(p + 1) * 2])


def test_independent_frames_depend_on_schedule_step_not_slice():
    a = run_unsample(spec(steps=30)).latent
    b = run_unsample(spec(steps=30, start_at_step=10, end_at_step=20)).latent
    # the node's slice [10:20] flipped: frame j of b is schedule step 19-j, which is frame 29-(19-j) of a
    for j in range(10):
        assert torch.equal(b[j], a[10 + j])


def test_video_latent_5d():
    s = spec("WAN21_T2V", shape=(2, 16, 3, 8, 8), steps=5)
    r = run_unsample(s)
    assert r.latent.shape == (10, 16, 3, 8, 8)


def test_normalize_subtracts_first_latent_mean():
    s = spec(steps=10, normalize=True, seed=1)
    r = run_unsample(s)
    plain = run_unsample(s.replace(normalize=False)).latent
    shift = plain[0].mean()
    assert torch.allclose(r.latent, plain - shift, atol=1e-6)
    assert abs(r.latent[0].mean().item()) < 1e-5


def test_zero_sigma_frame_is_the_input():
    s = spec(steps=1000, scheduler="beta")
    r = run_unsample(s)
    assert r.raw_sigmas[0] == 0.0 and torch.equal(r.latent[0], s.latent[0])


class Cancelling(Reporter):
    def __init__(self, after):
        self.after, self.calls, self.partials = after, 0, []

    def is_cancelled(self):
        self.calls += 1
        return self.calls > self.after

    def partial(self, start, stop, frames):
        self.partials.append((start, stop))


def test_cancel_stops_at_next_chunk_and_reports_partials():
    rep = Cancelling(after=2)
    with pytest.raises(Cancelled):
        run_unsample(spec(steps=100, chunk_frames=10), rep)
    assert rep.partials == [(0, 10), (10, 20)]


def test_progress_and_partials_cover_everything():
    class Rec(Reporter):
        def __init__(self):
            self.prog, self.parts = [], []

        def progress(self, d, t):
            self.prog.append((d, t))

        def partial(self, a, b, frames):
            self.parts.append((a, b, frames.shape[0]))

    rep = Rec()
    run_unsample(spec(shape=(2, 4, 8, 8), steps=25, chunk_frames=10), rep)
    assert rep.prog[-1] == (25, 25)
    assert [(a, b) for a, b, _ in rep.parts] == [(0, 10), (10, 20), (20, 25)]
    assert [n for *_, n in rep.parts] == [20, 20, 10]


@pytest.mark.parametrize("noise", ["independent", "trajectory"])
def test_streaming_file_equals_in_memory_export(tmp_path, noise):
    s = spec(shape=(2, 4, 8, 8), steps=40, noise=noise, seed=4)
    mem = run_unsample(s)
    from unsampler_gui.core.export import export_latent

    a = export_latent(mem, tmp_path / "mem.latent")
    b = run_unsample(s, output=str(tmp_path / "stream.latent"), max_memory=20_000).path
    assert open(a, "rb").read() == open(b, "rb").read()
    assert torch.equal(read_latent(b).tensor, mem.latent)
    # several chunks in flight, each in its own staging slot, written strictly in order
    for threads, chunk in ((1, 3), (3, 3), (4, 1)):
        c = run_unsample(s.replace(threads=threads, chunk_frames=chunk), output=str(tmp_path / "c.latent"),
                         overwrite=True).path
        assert open(c, "rb").read() == open(a, "rb").read(), (threads, chunk)


def test_cancelled_stream_leaves_nothing(tmp_path):
    out = tmp_path / "x.latent"
    with pytest.raises(Cancelled):
        run_unsample(spec(steps=100, chunk_frames=5), Cancelling(after=3), output=str(out))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kw,match", [
    (dict(steps=0), "steps"), (dict(start_at_step=5, end_at_step=5), "nothing to do"),
    (dict(steps=10, start_at_step=11), "nothing to do"), (dict(sampler="nope"), "unknown sampler"),
    (dict(scheduler="nope"), "unknown scheduler"), (dict(noise="pink"), "noise"),
    (dict(formula="x"), "formula"), (dict(steps=1, scheduler="kl_optimal"), "NaN"),
])
def test_bad_parameters(kw, match):
    with pytest.raises(BadParameterError, match=match):
        plan_unsample(spec(**kw))


def test_channel_mismatch_names_matching_families():
    with pytest.raises(BadParameterError, match="Flux"):
        plan_unsample(spec("SD15", shape=(1, 16, 8, 8)))


def test_output_size_known_before_running():
    p = plan_unsample(spec(shape=(1, 4, 64, 64), steps=10000))
    assert p.out_shape == (10000, 4, 64, 64) and p.out_bytes == 10000 * 4 * 64 * 64 * 4


def test_cuda_request_without_cuda_is_clear():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    from unsampler_gui.core.errors import ResourceError

    with pytest.raises(ResourceError, match="CUDA"):
        plan_unsample(spec(device="cuda"))


def test_vectorised_frame_seeds_match_the_scalar_mix():
    from unsampler_gui.core.noise import TAG_FRAME, frame_seed, frame_seeds

    for seed in (0, 1, -5, 2**64 - 1, 123456789012345):
        steps, items = [0, 1, 9999, 42, 7], [0, 3, 1, 63, 0]
        assert frame_seeds(seed, TAG_FRAME, steps, items) == [frame_seed(seed, TAG_FRAME, s, i)
                                                               for s, i in zip(steps, items)]


@pytest.mark.parametrize("family", [f for f in __import__("unsampler_gui.core", fromlist=["x"]).family_names()])
def test_every_family_follows_comfyui_noise_scaling_in_model_space(family):
    """For every family: process_in(out_i) == a_i * process_in(x) + sigma_i * eps, with a = 1 for EPS/V/EDM
    models and a = 1 - sigma for flow models (ComfyUI's noise_scaling), and one eps in shared mode."""
    fam = get_family(family)
    shape = (2, fam.latent.channels, 2, 8, 8) if fam.latent.dimensions == 3 else (2, fam.latent.channels, 8, 8)
    s = spec(family, shape=shape, steps=6, noise="shared", seed=1)
    r = run_unsample(s)
    assert r.latent.shape == (12, *shape[1:])
    x_m = process_in(s.latent, fam)
    z = process_in(r.latent, fam).view(6, 2, *shape[1:])
    sig = r.sigmas.double()
    a = (1 - sig) if fam.sampling.is_flow else torch.ones_like(sig)
    eps = (z[-1].double() - a[-1] * x_m.double()) / sig[-1]
    for i in range(6):
        want = a[i] * x_m.double() + sig[i] * eps
        assert torch.allclose(z[i].double(), want, rtol=1e-4, atol=1e-4 * (1 + float(sig[i]))), (family, i)
    for noise in ("independent", "trajectory"):
        assert torch.isfinite(run_unsample(s.replace(noise=noise)).latent).all()


@pytest.mark.parametrize("family,shape", [("SD15", (2, 4, 8, 8)), ("SD15", (1, 4, 5, 7)), ("SD15", (1, 4, 1, 3)),
                                          ("Flux", (1, 16, 6, 6)), ("SD3", (2, 16, 4, 4))])
@pytest.mark.parametrize("formula", ["model", "legacy"])
def test_noise_scale_inside_normal_is_bit_identical_to_a_separate_multiply(family, shape, formula, monkeypatch):
    """On the CPU the frame's scale g goes into normal_'s std; the bits must equal z * g done apart
    (sign of zero included), for vectorised, tail and tiny frames, with zero-sigma frames too."""
    from unsampler_gui.core import unsample

    s = spec(family, shape, steps=25, formula=formula, seed=3, scheduler="beta")
    folded = run_unsample(s).latent
    init = unsample._Engine.__init__

    used = []

    def unfolded(self, plan):
        init(self, plan)
        used.append(self.g_in_noise is not None)
        self.g_in_noise = None

    monkeypatch.setattr(unsample._Engine, "__init__", unfolded)
    plain = run_unsample(s).latent
    assert torch.equal(folded.view(torch.int32), plain.view(torch.int32))
    # frames under 16 values take torch's double-precision path: there the scale stays a separate multiply
    assert used == [shape[1] * shape[2] * shape[3] >= 16]


@pytest.mark.parametrize("family,shape,formula", [("SD15", (2, 4, 8, 8), "model"), ("Flux", (1, 16, 6, 6), "model"),
                                                  ("PlaygroundV2_5", (2, 4, 8, 8), "model"),
                                                  ("SD3", (1, 16, 4, 4), "legacy")])
def test_frames_drawn_through_the_cache_buffer_match_any_group_size(family, shape, formula, monkeypatch):
    """CPU frames are drawn a few at a time into a small buffer and finished from there into the output;
    the group size (1 frame, a few, the whole chunk) never changes a bit. PlaygroundV2_5 has a
    per-channel noise scale, Flux an affine formula, and every run has a zero-sigma frame."""
    from unsampler_gui.core import unsample

    s = spec(family, shape, steps=1000, scheduler="beta", frames=tuple(range(0, 800, 33)), formula=formula,
             seed=11, chunk_frames=10)
    assert run_unsample(s.replace(frames=(0,))).raw_sigmas[0] == 0.0
    frame = shape[1] * shape[2] * shape[3] * 4 * shape[0]
    runs = []
    for stage in (1, 3 * frame, 1 << 30):
        monkeypatch.setattr(unsample, "STAGE_BYTES", stage)
        runs.append(run_unsample(s).latent.view(torch.int32))
    assert torch.equal(runs[0], runs[1]) and torch.equal(runs[0], runs[2])
