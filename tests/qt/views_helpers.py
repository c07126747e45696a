"""Shared pieces of the sequence-view tests: fake plans, feeding a store, waiting for the views' work."""
import torch

from support import WAIT_MS
from unsampler_gui import core


def fake_plan(steps=10000, batch=1, family="SD15", spatial=(8, 8), frames=None):
    fam = core.get_family(family)
    shape = (batch, fam.latent.channels) + ((3,) if fam.latent.dimensions == 3 else ()) + tuple(spatial)
    spec = core.UnsampleSpec(family=fam, latent=torch.zeros(shape), steps=steps, end_at_step=steps,
                             frames=frames)
    return core.plan_unsample(spec)


def fake_frames(plan, seed=0):
    """Output rows like a run's: step i is N(0, 1) * (1 + raw sigma_i) plus a per-step offset."""
    g = torch.Generator().manual_seed(seed)
    out = torch.randn(plan.out_shape, generator=g)
    n = len(plan.positions)
    scale = 1 + plan.raw_sigmas[list(plan.positions)].repeat_interleave(plan.batch)
    offset = torch.linspace(-1, 1, n).repeat_interleave(plan.batch)
    view = (-1,) + (1,) * len(plan.frame_shape)
    return out * scale.view(view) + offset.view(view)


def feed(store, plan, out=None, chunk=512, begin=True):
    """Hand a store the rows of ``out`` chunk by chunk, as the worker does. Returns ``out``."""
    out = fake_frames(plan) if out is None else out
    if begin:
        store.begin(plan)
    B, n = plan.batch, len(plan.positions)
    for c0 in range(0, n, chunk):
        c1 = min(n, c0 + chunk)
        store.add(c0, c1, out[c0 * B:c1 * B])
    return out


def finish(store, plan, out):
    store.finish(core.UnsampleResult(plan=plan, latent=out, path=None, seconds=0.0, device="cpu"))


def settle(qtbot, *views):
    """Wait until each of ``views`` (a store, a thumbnail model, a viewer) has delivered the work it was given."""
    qtbot.waitUntil(lambda: not any(v.busy() for v in views), timeout=WAIT_MS)


def shown(qtbot, viewer, step):
    """Wait until the viewer's preview of ``step``, with its current item and display, is on screen; returns it."""
    qtbot.waitUntil(lambda: viewer.shown is not None and viewer.shown == viewer.wanted and viewer.shown.step == step,
                    timeout=WAIT_MS)
    return viewer.last_render
