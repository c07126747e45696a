"""The frame maker: formulas, statistics, layout, seeds, and frames on demand (``Frames``) bit-identical to a run."""
import pytest
import torch

from unsampler_gui.core import FrameMaker, Frames, Keyframe, get_family, node_sigmas, plan_unsample, run_unsample
from unsampler_gui.core import frames as frames_mod
from unsampler_gui.core.formulas import process_in


def test_output_layout_and_count(make_spec):
    s = make_spec(shape=(2, 4, 8, 8), steps=10)
    r = run_unsample(s)
    assert r.latent.shape == (20, 4, 8, 8) and r.latent.dtype == torch.float32
    sig = node_sigmas("SD15", "euler", "simple", 10)
    for i in range(10):
        for b in range(2):
            d = r.latent[i * 2 + b] - s.latent[b]
            # step-major: row i*B+b is step i of item b, noised at the node's sigma i
            assert abs(d.std().item() / sig[i].item() - 1) < 0.15


@pytest.mark.parametrize("family", ["SD15", "SDXL", "SD21_768_v", "PlaygroundV2_5"])
def test_eps_statistics_match_raw_sigmas(make_spec, family):
    s = make_spec(family, shape=(1, 4, 64, 64), steps=12)
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
def test_model_equals_legacy_bit_for_bit(make_spec, family, noise):
    a = run_unsample(make_spec(family, formula="model", noise=noise, seed=3)).latent
    b = run_unsample(make_spec(family, formula="legacy", noise=noise, seed=3)).latent
    assert torch.equal(a, b)


@pytest.mark.parametrize("family", ["Flux", "SD3", "WAN21_T2V"])
def test_flow_identity_in_model_space(make_spec, family):
    fam = get_family(family)
    shape = (1, fam.latent.channels, 3, 16, 16) if fam.latent.dimensions == 3 else (1, fam.latent.channels, 16, 16)
    s = make_spec(family, shape=shape, steps=8, noise="shared", seed=5)
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


def test_flow_legacy_differs_from_model(make_spec):
    a = run_unsample(make_spec("Flux", shape=(1, 16, 8, 8), formula="model")).latent
    b = run_unsample(make_spec("Flux", shape=(1, 16, 8, 8), formula="legacy")).latent
    assert not torch.allclose(a, b)


def test_trajectory_increments_are_independent_with_right_variance(make_spec):
    s = make_spec(shape=(1, 4, 64, 64), steps=10, noise="trajectory", seed=11)
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


def test_trajectory_flow_marginals(make_spec):
    fam = get_family("Flux")
    s = make_spec("Flux", shape=(1, 16, 32, 32), steps=10, noise="trajectory", seed=2)
    r = run_unsample(s)
    x_m = process_in(s.latent, fam)[0]
    z = process_in(r.latent, fam)
    for i, sg in enumerate(r.sigmas.tolist()):
        resid = z[i] - (1 - sg) * x_m
        assert resid.std().item() == pytest.approx(sg, rel=0.04)


def test_shared_noise_is_one_eps(make_spec):
    s = make_spec(steps=6, noise="shared")
    r = run_unsample(s)
    raw = r.raw_sigmas
    e0 = (r.latent[0] - s.latent[0]) / raw[0]
    e5 = (r.latent[5] - s.latent[0]) / raw[5]
    assert torch.allclose(e0, e5, atol=1e-3)


@pytest.mark.parametrize("noise", ["independent", "shared", "trajectory"])
def test_seed_is_bit_identical_whatever_chunks_and_threads(make_spec, noise):
    base = run_unsample(make_spec(shape=(2, 4, 8, 8), steps=50, noise=noise, seed=7, normalize=True)).latent
    for chunk, threads in ((1, 1), (7, 2), (50, 3), (3, 4)):
        other = run_unsample(make_spec(shape=(2, 4, 8, 8), steps=50, noise=noise, seed=7, normalize=True,
                                       chunk_frames=chunk, threads=threads)).latent
        assert torch.equal(base, other), (chunk, threads)
    assert not torch.equal(base, run_unsample(make_spec(shape=(2, 4, 8, 8), steps=50, noise=noise, seed=8,
                                                        normalize=True)).latent)


@pytest.mark.parametrize("noise", ["independent", "shared", "trajectory"])
@pytest.mark.parametrize("pos", [(29, 3, 4, 5, 17, 0), tuple(range(29, -1, -1)), (4, 4, 2, 2, 2, 9, 4)])
def test_subsets_are_bit_identical_to_the_full_run(make_spec, noise, pos):
    full = run_unsample(make_spec(shape=(2, 4, 8, 8), steps=30, noise=noise, seed=9)).latent
    for chunk in (1, 2, 7):
        sub = run_unsample(make_spec(shape=(2, 4, 8, 8), steps=30, noise=noise, seed=9, frames=pos,
                                     chunk_frames=chunk)).latent
        for o, p in enumerate(pos):
            assert torch.equal(sub[o * 2:(o + 1) * 2], full[p * 2:(p + 1) * 2]), (chunk, o)


def test_independent_frames_depend_on_schedule_step_not_slice(make_spec):
    a = run_unsample(make_spec(steps=30)).latent
    b = run_unsample(make_spec(steps=30, start_at_step=10, end_at_step=20)).latent
    # the node's slice [10:20] flipped: frame j of b is schedule step 19-j, which is frame 29-(19-j) of a
    for j in range(10):
        assert torch.equal(b[j], a[10 + j])


def test_video_latent_5d(make_spec):
    s = make_spec("WAN21_T2V", shape=(2, 16, 3, 8, 8), steps=5)
    r = run_unsample(s)
    assert r.latent.shape == (10, 16, 3, 8, 8)


def test_normalize_subtracts_first_latent_mean(make_spec):
    s = make_spec(steps=10, normalize=True, seed=1)
    r = run_unsample(s)
    plain = run_unsample(s.replace(normalize=False)).latent
    shift = plain[0].mean()
    assert torch.allclose(r.latent, plain - shift, atol=1e-6)
    assert abs(r.latent[0].mean().item()) < 1e-5


def test_zero_sigma_frame_is_the_input(make_spec):
    s = make_spec(steps=1000, scheduler="beta")
    r = run_unsample(s)
    assert r.raw_sigmas[0] == 0.0 and torch.equal(r.latent[0], s.latent[0])


def test_vectorised_frame_seeds_match_the_scalar_mix():
    from unsampler_gui.core.noise import TAG_FRAME, frame_seed, frame_seeds

    for seed in (0, 1, -5, 2**64 - 1, 123456789012345):
        steps, items = [0, 1, 9999, 42, 7], [0, 3, 1, 63, 0]
        assert frame_seeds(seed, TAG_FRAME, steps, items) == [frame_seed(seed, TAG_FRAME, s, i)
                                                               for s, i in zip(steps, items)]


@pytest.mark.parametrize("family", [f for f in __import__("unsampler_gui.core", fromlist=["x"]).family_names()])
def test_every_family_follows_comfyui_noise_scaling_in_model_space(make_spec, family):
    """For every family: process_in(out_i) == a_i * process_in(x) + sigma_i * eps, with a = 1 for EPS/V/EDM
    models and a = 1 - sigma for flow models (ComfyUI's noise_scaling), and one eps in shared mode."""
    fam = get_family(family)
    shape = (2, fam.latent.channels, 2, 8, 8) if fam.latent.dimensions == 3 else (2, fam.latent.channels, 8, 8)
    s = make_spec(family, shape=shape, steps=6, noise="shared", seed=1)
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
def test_noise_scale_inside_normal_is_bit_identical_to_a_separate_multiply(make_spec, family, shape, formula,
                                                                           monkeypatch):
    """On the CPU the frame's scale g goes into normal_'s std; the bits must equal z * g done apart
    (sign of zero included), for vectorised, tail and tiny frames, with zero-sigma frames too."""
    s = make_spec(family, shape, steps=25, formula=formula, seed=3, scheduler="beta")
    folded = run_unsample(s).latent
    init = FrameMaker.__init__
    used = []

    def unfolded(self, plan, noise=None):
        init(self, plan, noise)
        used.append(self._g_in_noise is not None)
        self._g_in_noise = None

    monkeypatch.setattr(FrameMaker, "__init__", unfolded)
    plain = run_unsample(s).latent
    assert torch.equal(folded.view(torch.int32), plain.view(torch.int32))
    # frames under 16 values take torch's double-precision path: there the scale stays a separate multiply
    assert used == [shape[1] * shape[2] * shape[3] >= 16]


@pytest.mark.parametrize("family,shape,formula", [("SD15", (2, 4, 8, 8), "model"), ("Flux", (1, 16, 6, 6), "model"),
                                                  ("PlaygroundV2_5", (2, 4, 8, 8), "model"),
                                                  ("SD3", (1, 16, 4, 4), "legacy")])
def test_frames_drawn_through_the_cache_buffer_match_any_group_size(make_spec, family, shape, formula, monkeypatch):
    """CPU frames are drawn a few at a time into a small buffer and finished from there into the output;
    the group size (1 frame, a few, the whole chunk) never changes a bit. PlaygroundV2_5 has a
    per-channel noise scale, Flux an affine formula, and every run has a zero-sigma frame."""
    s = make_spec(family, shape, steps=1000, scheduler="beta", frames=tuple(range(0, 800, 33)), formula=formula,
                  seed=11, chunk_frames=10)
    assert run_unsample(s.replace(frames=(0,))).raw_sigmas[0] == 0.0
    frame = shape[1] * shape[2] * shape[3] * 4 * shape[0]
    runs = []
    for stage in (1, 3 * frame, 1 << 30):
        monkeypatch.setattr(frames_mod, "STAGE_BYTES", stage)
        runs.append(run_unsample(s).latent.view(torch.int32))
    assert torch.equal(runs[0], runs[1]) and torch.equal(runs[0], runs[2])


# ---- frames on demand ------------------------------------------------------------------------------

@pytest.mark.parametrize("noise", ["independent", "shared", "trajectory"])
@pytest.mark.parametrize("family,shape,normalize", [("SD15", (2, 4, 8, 8), True), ("Flux", (1, 16, 5, 7), False),
                                                    ("WAN21_T2V", (2, 16, 2, 4, 4), True),
                                                    ("PlaygroundV2_5", (1, 4, 6, 6), True)])
def test_frames_on_demand_equal_the_run(make_spec, noise, family, shape, normalize):
    """Any frame alone, any block of frames in any order, is the same bits as in a full run (normalised too)."""
    s = make_spec(family, shape, steps=40, noise=noise, normalize=normalize, seed=21, scheduler="beta")
    full = run_unsample(s).latent
    B = shape[0]
    fr = Frames(plan_unsample(s))
    for i in (0, 1, 17, 39):
        assert torch.equal(fr.frame(i), full[i * B:(i + 1) * B]), i
    rows = [33, 2, 2, 39, 0, 18]
    got = fr.frames(rows)
    assert torch.equal(got, torch.cat([full[i * B:(i + 1) * B] for i in rows]))


def test_frames_take_node_steps_whatever_the_plan_outputs(make_spec):
    """``Frames`` counts node steps 0..N-1; a plan of a subset still gives every step."""
    s = make_spec(shape=(2, 4, 8, 8), steps=30, noise="trajectory", seed=3)
    full = run_unsample(s).latent
    fr = Frames(plan_unsample(s.replace(frames=(5, 1))))
    assert torch.equal(fr.frames(range(30)), full)


@pytest.mark.parametrize("family,normalize", [("SD15", True), ("Flux", False), ("WAN21_T2V", True)])
def test_a_trajectory_continues_from_a_kept_keyframe(make_spec, family, normalize, monkeypatch):
    """Walking on from a keyframe gives the bits of walking from the start, whatever the piece size."""
    fam = get_family(family)
    shape = (2, fam.latent.channels) + ((2,) if fam.latent.dimensions == 3 else ()) + (4, 4)
    s = make_spec(family, shape, steps=50, noise="trajectory", normalize=normalize, seed=8)
    full = run_unsample(s).latent
    B = shape[0]
    fr = Frames(plan_unsample(s))
    head, key = fr.walk(0, 20)
    assert isinstance(key, Keyframe) and key.step == 19
    assert torch.equal(head, full[:20 * B])
    monkeypatch.setattr(frames_mod, "WALK_BYTES", 1)  # one step per piece: the walk is the same
    tail, key2 = fr.walk(27, 50, keyframe=key)
    assert torch.equal(tail, full[27 * B:])
    assert torch.equal(fr.frames([45, 30], keyframe=key), torch.cat([full[45 * B:46 * B], full[30 * B:31 * B]]))
    # a keyframe is the un-normalised frame: the walk's state, not what an export shows
    assert key2.step == 49 and torch.equal(fr.frame(49), tail[-B:])
    with pytest.raises(ValueError, match="before"):
        fr.walk(10, 12, keyframe=key)


def test_the_walk_needs_the_frame_before_it(make_spec):
    s = make_spec(shape=(1, 4, 4, 4), steps=10, noise="trajectory")
    maker = FrameMaker(plan_unsample(s))
    rows = torch.empty(2, 4, 4, 4)
    maker.draw(rows, [3, 4])
    with pytest.raises(ValueError, match="needs frame 2"):
        maker.walk(rows, 3, None)


def test_frame_maker_holds_no_run_state(make_spec):
    """One maker serves runs with and without normalisation: the shift is the caller's, computed on request."""
    s = make_spec(shape=(2, 4, 8, 8), steps=12, normalize=True, seed=2)
    maker = FrameMaker(plan_unsample(s))
    shift = maker.normalize_shift()
    raw = torch.empty(2 * 12, 4, 8, 8)
    maker.fill(raw, list(range(12)))
    assert torch.equal(shift, raw[:2].reshape(2, -1).mean(dim=1))
    assert torch.equal(frames_mod.shift_(raw.clone(), shift, 2), run_unsample(s).latent)
    assert torch.equal(raw, run_unsample(s.replace(normalize=False)).latent)


def test_a_trajectory_frame_after_step_0_is_never_made_directly(make_spec):
    maker = FrameMaker(plan_unsample(make_spec(shape=(1, 4, 4, 4), steps=10, noise="trajectory")))
    rows = torch.empty(1, 4, 4, 4)
    maker.fill(rows, [0])  # frame 0 is drawn directly (the normalize shift needs it)
    with pytest.raises(ValueError, match="draw and walk"):
        maker.fill(rows, [3])


def test_overlapping_one_thread_blocks_restore_torch_threads_last():
    """A run and frames made meanwhile for the app overlap: torch's thread count comes back only when both end."""
    from unsampler_gui.core.devices import one_intraop_thread

    torch.set_num_threads(2)
    run, view = one_intraop_thread(), one_intraop_thread()
    run.__enter__()
    view.__enter__()
    assert torch.get_num_threads() == 1
    run.__exit__(None, None, None)  # the run ends first: the view still runs on one thread
    assert torch.get_num_threads() == 1
    view.__exit__(None, None, None)
    assert torch.get_num_threads() == 2
