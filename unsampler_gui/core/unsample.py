"""The unsampling job: ``run_unsample(spec, reporter)``.

The BatchUnsampler node's job, without its defects: any batch size, 5-D video latents, a seed,
flow-model noising, and one preallocated output (or a stream to disk) instead of three copies.
Frames are made in chunks; after each chunk the reporter gets progress and the finished frames,
and a cancel request stops the job before the next chunk.
"""
from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from .devices import available_memory, default_threads, human_bytes, resolve_device
from .errors import BadParameterError, Cancelled, ResourceError
from .families import Family, families_for_channels, get_family
from .formulas import FORMULAS, Coefficients, coefficients, trajectory_increments
from .latent_io import LatentWriter, validate_latent_shape
from .prefault import prefault
from .noise import TAG_FRAME, TAG_SHARED, frame_seed, frame_seeds, normal_
from .sigmas import check_names, check_steps, ksampler_sigmas, node_slice, slice_bounds

NOISE_MODES = ("independent", "shared", "trajectory")
#: Chunks aim at this many bytes: big enough to amortise Python, small enough to stay in cache.
CHUNK_BYTES = 8 << 20
#: CPU: frames are drawn into a per-thread buffer of about this size, small enough to stay in the cache.
STAGE_BYTES = 256 << 10


@dataclass(frozen=True, eq=False)
class UnsampleSpec:
    """Everything a run needs, frozen. ``latent`` is a float32 CPU tensor [B,C,H,W] or [B,C,T,H,W]."""

    family: Family
    latent: torch.Tensor
    sampler: str = "euler"
    scheduler: str = "simple"
    steps: int = 10000
    start_at_step: int = 0
    end_at_step: int = 10000
    normalize: bool = False
    seed: int = 0
    noise: str = "independent"
    formula: str = "model"
    device: str = "auto"
    frames: Optional[tuple] = None  # output positions to produce (node order indices); None = all
    chunk_frames: int = 0  # 0 = automatic
    threads: int = 0  # 0 = all cores
    source_name: Optional[str] = None
    source_sha256: Optional[str] = None
    model_source: Optional[str] = None  # the checkpoint path or family name the user chose

    def replace(self, **changes) -> "UnsampleSpec":
        return dataclasses.replace(self, **changes)

    def params(self) -> dict:
        """The run's parameters as plain JSON values (stored in every export)."""
        fam = self.family
        return {
            "family": fam.name, "model": self.model_source or fam.name, "sampler": self.sampler,
            "scheduler": self.scheduler, "steps": self.steps, "start_at_step": self.start_at_step,
            "end_at_step": self.end_at_step, "normalize": self.normalize, "seed": self.seed, "noise": self.noise,
            "formula": self.formula, "prediction": fam.sampling.prediction, "shift": fam.sampling.shift,
            "scale_factor": fam.latent.scale_factor, "shift_factor": fam.latent.shift_factor,
        }


@dataclass(frozen=True, eq=False)
class Plan:
    """What a spec will produce, computed before anything runs."""

    spec: UnsampleSpec
    schedule: torch.Tensor  # full KSampler sigmas, model space, high to low
    model_sigmas: torch.Tensor  # the node's slice, model space, low to high  [N]
    raw_sigmas: torch.Tensor  # node_sigmas: model_sigmas / scale_factor  [N]
    schedule_index: torch.Tensor  # index into ``schedule`` of each of the N steps (int64)
    positions: tuple  # which of the N steps are output, in output order
    batch: int
    frame_shape: tuple  # one latent: [C, H, W] or [C, T, H, W]
    device: torch.device

    @property
    def n_steps(self) -> int:
        return int(self.model_sigmas.numel())

    @property
    def out_shape(self) -> tuple:
        return (len(self.positions) * self.batch, *self.frame_shape)

    @property
    def frame_bytes(self) -> int:
        n = 4
        for s in self.frame_shape:
            n *= s
        return n

    @property
    def out_bytes(self) -> int:
        return self.frame_bytes * len(self.positions) * self.batch

    def describe(self) -> str:
        return (f"{len(self.positions)} steps x {self.batch} = {self.out_shape[0]} latents "
                f"{list(self.out_shape)}, {human_bytes(self.out_bytes)}")


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise BadParameterError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


def check_latent_for_family(latent: torch.Tensor, family: Family) -> None:
    """The latent's channel count and rank must fit the family; the message names the families that fit."""
    validate_latent_shape(tuple(latent.shape))
    c, nd = int(latent.shape[1]), latent.dim()
    if c != family.latent.channels or nd != family.latent.ndim:
        want = f"{family.latent.channels} channels, {family.latent.ndim}-D"
        fits = [f.name for f in families_for_channels(c, nd)]
        hint = f"families that take it: {', '.join(fits)}" if fits else "no known family takes this shape"
        raise BadParameterError(f"the latent is {list(latent.shape)} ({c} channels, {nd}-D) but {family.name} "
                                f"expects {want}; {hint}")


def plan_unsample(spec: UnsampleSpec) -> Plan:
    """Validate a spec and compute its sigmas and output size. Raises a clear error for anything wrong."""
    fam = get_family(spec.family)
    _check_choice("noise", spec.noise, NOISE_MODES)
    _check_choice("formula", spec.formula, FORMULAS)
    check_names(spec.sampler, spec.scheduler)
    steps = check_steps(spec.steps)
    if not isinstance(spec.latent, torch.Tensor):
        raise BadParameterError("the latent must be a tensor")
    check_latent_for_family(spec.latent, fam)
    if not torch.isfinite(spec.latent).all():
        raise BadParameterError("the latent holds NaN or Inf values")
    s, e = slice_bounds(steps, spec.start_at_step, spec.end_at_step)
    if s >= e:
        raise BadParameterError(
            f"nothing to do: start_at_step {spec.start_at_step} and end_at_step {spec.end_at_step} with "
            f"{steps} steps select no sigmas (the node uses schedule[{s}:{e}]); lower start or raise end")
    schedule = ksampler_sigmas(fam, spec.sampler, spec.scheduler, steps)
    model_sigmas, raw_sigmas = node_slice(fam, schedule, steps, s, e)
    if not torch.isfinite(model_sigmas).all():
        raise BadParameterError(
            f"{spec.scheduler} with {steps} step(s) gives NaN sigmas in ComfyUI too (kl_optimal divides 0 by 0 "
            "for 1 step); use 2 or more steps, or a sampler such as dpm_2 that computes one step more")
    n = int(model_sigmas.numel())
    positions = tuple(range(n)) if spec.frames is None else tuple(int(p) for p in spec.frames)
    if not positions:
        raise BadParameterError("no frames selected")
    bad = [p for p in positions if not 0 <= p < n]
    if bad:
        raise BadParameterError(f"frame {bad[0]} is out of range: this schedule has {n} steps (0..{n - 1})")
    device = resolve_device(spec.device)
    return Plan(spec=spec.replace(family=fam), schedule=schedule, model_sigmas=model_sigmas, raw_sigmas=raw_sigmas,
                schedule_index=torch.arange(e - 1, s - 1, -1, dtype=torch.int64), positions=positions,
                batch=int(spec.latent.shape[0]), frame_shape=tuple(int(v) for v in spec.latent.shape[1:]),
                device=device)


class Reporter:
    """The job's side channel. Subclass and override what you need; all methods are optional.

    ``partial(start, stop, frames)``: output rows ``[start*B, stop*B)`` are final; ``frames`` is a CPU
    tensor holding exactly those rows (a view: copy it if you keep it past the call).
    """

    def is_cancelled(self) -> bool:
        return False

    def progress(self, done: int, total: int) -> None:
        pass

    def partial(self, start: int, stop: int, frames: torch.Tensor) -> None:
        pass

    def message(self, text: str) -> None:
        pass

    #: True when the job runs behind an interactive window: its threads then run at a lower OS priority,
    #: so that the window gets a core as soon as it needs one (the job still uses every idle core).
    background = False


@dataclass
class UnsampleResult:
    plan: Plan
    latent: Optional[torch.Tensor]  # [len(positions)*B, ...] in memory, or None when streamed to ``path``
    path: Optional[str]
    seconds: float
    device: str

    @property
    def sigmas(self) -> torch.Tensor:
        """Model-space sigmas of the output frames, in output order."""
        return self.plan.model_sigmas[list(self.plan.positions)]

    @property
    def raw_sigmas(self) -> torch.Tensor:
        return self.plan.raw_sigmas[list(self.plan.positions)]

    def metadata(self) -> dict:
        return export_metadata(self.plan)


def export_metadata(plan: Plan, positions: Optional[Sequence[int]] = None) -> dict:
    """The ``__metadata__`` of an export: {"unsampler": JSON text of every parameter and the sigmas}."""
    import json

    from .. import __version__

    pos = list(plan.positions if positions is None else positions)
    params = plan.spec.params()
    params.update({
        "version": __version__, "batch": plan.batch, "frame_shape": list(plan.frame_shape),
        "layout": "step-major: row i*B+b is step i of item b",
        "frames": pos if pos != list(range(plan.n_steps)) else "all",
        "schedule": [float(v) for v in plan.schedule.tolist()],
        "model_sigmas": [float(plan.model_sigmas[p]) for p in pos],
        "sigmas": [float(plan.raw_sigmas[p]) for p in pos],
        "source": {"name": plan.spec.source_name, "sha256": plan.spec.source_sha256},
    })
    return {"unsampler": json.dumps(params, separators=(",", ":"))}


@functools.lru_cache(maxsize=None)
def _std_in_normal_is_exact() -> bool:
    """True when this torch's CPU ``normal_(0, std)`` equals ``normal_() * std`` bit for bit.

    It does wherever the Box-Muller transform ends in ``z * std + mean`` in float32 (frames of 16
    values or more); checked once per process, with a vectorised body and a tail, so that another
    torch build can never change a frame's bits.
    """
    g = torch.Generator()
    a, b = torch.empty(77), torch.empty(77)
    for std in (0.7310585975646973, 14.614640235900879, 1e-3):
        g.manual_seed(12345)
        a.normal_(0.0, std, generator=g)
        g.manual_seed(12345)
        b.normal_(generator=g).mul_(std)
        if not torch.equal(a.view(torch.int32), b.view(torch.int32)):
            return False
    return True


class _Engine:
    """Makes frames for one plan on one device. Stateless per frame except the trajectory's last frame."""

    def __init__(self, plan: Plan):
        spec = plan.spec
        self.plan = plan
        self.dev = plan.device
        self.B = plan.batch
        self.nd = len(plan.frame_shape)
        x = spec.latent.to(self.dev, torch.float32).contiguous()
        coef = coefficients(spec.family, plan.model_sigmas, plan.raw_sigmas, spec.formula, plan.frame_shape[0])
        self.per_channel_g = not bool((coef.g == coef.g[:, :1]).all())  # decided on the CPU: no device sync
        # On the CPU a frame's noise scale g > 0 goes into normal_'s std: its Box-Muller transform
        # multiplies by std anyway (fma(z, std, 0) == z * std, bit for bit), which saves a pass over the
        # whole output. Frames with g == 0 (and per-channel g) keep the separate multiply.
        fold = (not self.per_channel_g and self.dev.type == "cpu" and spec.noise == "independent"
                and math.prod(plan.frame_shape) >= 16 and _std_in_normal_is_exact())
        self.g_in_noise = [v if v > 0 else None for v in coef.g[:, 0].tolist()] if fold else None
        if spec.noise == "trajectory":
            r, d = trajectory_increments(coef)
            self.r_list = r.tolist()
            self.d = d.to(self.dev)
        self.coef = Coefficients(a=coef.a.to(self.dev), g=coef.g.to(self.dev),
                                 m=None if coef.m is None else coef.m.to(self.dev), additive=coef.additive)
        if self.coef.m is not None:
            self.m = self.coef.frame_shape_view(self.coef.m, self.nd)
            self.xc = x - self.m  # x - m, per item
        else:
            self.m = None
            self.xc = x
        self.x = x
        self.k = plan.schedule_index.tolist()
        self.seed = int(spec.seed)
        self.tls = threading.local()
        self.norm_shift = None
        self.shared_eps = None
        if spec.noise == "shared":
            self.shared_eps = torch.empty_like(x)
            gen = self._gen()
            for b in range(self.B):
                normal_(self.shared_eps[b], gen, frame_seed(self.seed, TAG_SHARED, 0, b))

    def _gen(self) -> torch.Generator:
        g = getattr(self.tls, "gen", None)
        if g is None:
            g = self.tls.gen = torch.Generator(device=self.dev)
        return g

    def _finish(self, v: torch.Tensor, steps: list) -> None:
        """v [n, B, ...] holds noise for the given steps; make it ``m + a*(x - m) + g*v`` in place."""
        self._finisher(steps)(v, v, 0, len(steps))

    def _finisher(self, steps: list):
        """The terms of ``m + a*(x - m) + g*eps`` for a chunk's steps, as ``fin(noise, out, j0, j1)``:
        rows j0..j1 of the chunk, from ``noise`` (scaled in place) into ``out`` (which may be ``noise``).

        Only exact IEEE multiplies and adds (no fused or alpha forms), so a frame's bits never depend
        on how frames are grouped into chunks, or whether they are finished in place or from a buffer.
        """
        n = len(steps)
        shape = (n, 1, -1) + (1,) * (self.nd - 1)
        scalar = (n, 1) + (1,) * self.nd
        g, a = self._rows(self.coef.g, steps), self._rows(self.coef.a, steps)
        gin = self.g_in_noise
        if gin is None:
            scale, zeros = (g.view(shape) if self.per_channel_g else g[:, 0].reshape(scalar)), ()
        else:  # the noise already carries g, except on frames with g == 0
            scale, zeros = None, [j for j, k in enumerate(steps) if gin[k] is None]
        a_term = None if self.coef.additive else a.reshape(scalar)
        x1, xc1, m = self.x.unsqueeze(0), self.xc.unsqueeze(0), self.m

        def fin(noise: torch.Tensor, out: torch.Tensor, j0: int, j1: int) -> None:
            if out is not noise:
                prefault(out)  # fresh output memory: map its pages in one call, not page by page
            if scale is not None:
                noise.mul_(scale[j0:j1])
            for j in zeros:
                if j0 <= j < j1:
                    noise[j - j0].mul_(g[j, 0])
            if a_term is None:
                torch.add(noise, x1, out=out)
            else:
                torch.add(noise, torch.mul(xc1, a_term[j0:j1], out=self._scratch("term", noise)), out=out)
                if m is not None:
                    out.add_(m)

        return fin

    def _scratch(self, name: str, like: torch.Tensor) -> torch.Tensor:
        """A per-thread buffer shaped like ``like``, reused from chunk to chunk (a new temporary per chunk
        would leave freed chunk-sized blocks in every thread's malloc arena)."""
        buf = getattr(self.tls, name, None)
        if buf is None or buf.numel() < like.numel() or buf.device != like.device:
            buf = torch.empty(like.numel(), dtype=like.dtype, device=like.device)
            setattr(self.tls, name, buf)
        return buf[:like.numel()].view(like.shape)

    def _rows(self, t: torch.Tensor, steps: list) -> torch.Tensor:
        """t[steps]: a slice when the steps are consecutive (no host-to-device index copy on CUDA)."""
        if steps == list(range(steps[0], steps[0] + len(steps))):
            return t[steps[0]:steps[0] + len(steps)]
        return t.index_select(0, torch.tensor(steps, dtype=torch.int64, device=self.dev))

    def fill_rows(self, rows: torch.Tensor, steps: list) -> None:
        """Write finished frames for ``steps`` into ``rows`` [len(steps)*B, ...] (independent or shared;
        CPU only: the CUDA pipeline draws its noise in blocks and calls ``_finish`` itself)."""
        n, B = len(steps), self.B
        v = rows.view(n, B, *rows.shape[1:])
        if self.shared_eps is not None:
            v.copy_(self.shared_eps.unsqueeze(0).expand_as(v))
            self._finish(v, steps)
            return
        # a few frames at a time are drawn into a small per-thread buffer that stays in the cache, and
        # finished from there into the output, which is then written once instead of three times
        fin = self._finisher(steps)
        seeds, stds = self._seeds(steps)
        per = max(1, min(n, STAGE_BYTES // max(1, rows[0].numel() * 4 * B)))
        stage = self._scratch("stage", rows[:per * B])
        frames = stage.unbind(0)
        gen = self._gen()
        for j0 in range(0, n, per):
            j1 = min(n, j0 + per)
            k = (j1 - j0) * B
            self._draw(gen, frames[:k], seeds[j0 * B:j1 * B], stds and stds[j0 * B:j1 * B])
            fin(stage[:k].view(j1 - j0, B, *rows.shape[1:]), v[j0:j1], j0, j1)

    def _seeds(self, steps: list):
        """Each frame's seed, from (seed, schedule step, item), and its normal_ std (None: all 1)."""
        ks = [self.k[i] for i in steps for _ in range(self.B)]
        seeds = frame_seeds(self.seed, TAG_FRAME, ks, list(range(self.B)) * len(steps))
        gin = self.g_in_noise
        stds = None if gin is None else [gin[i] or 1.0 for i in steps for _ in range(self.B)]
        return seeds, stds

    @staticmethod
    def _draw(gen: torch.Generator, frames, seeds, stds) -> None:
        if not stds:
            for frame, s in zip(frames, seeds):
                gen.manual_seed(s)
                frame.normal_(generator=gen)
            return
        for frame, s, std in zip(frames, seeds, stds):
            gen.manual_seed(s)
            frame.normal_(0.0, std, generator=gen)

    def fill_noise_rows(self, rows: torch.Tensor, steps: list) -> None:
        """rows [len(steps)*B, ...] <- each frame's own noise, seeded from (seed, schedule step, item)."""
        seeds, stds = self._seeds(steps)
        self._draw(self._gen(), rows.unbind(0), seeds, stds)

    def trajectory_step(self, out: torch.Tensor, i: int, prev: Optional[torch.Tensor]) -> None:
        """out[b] holds eta_i for every item; turn it into frame i, given frame i-1 (``prev``)."""
        if prev is None:
            self._finish(out.unsqueeze(0), [i])
            return
        out.mul_(self.coef.frame_shape_view(self.d[i], self.nd))
        if self.m is None:
            out.add_(prev * self.r_list[i])
        else:
            out.add_((prev - self.m) * self.r_list[i])
            out.add_(self.m)


def _available_check(plan: Plan, streaming: bool) -> None:
    if streaming or plan.device.type != "cpu":
        return
    avail = available_memory()
    if avail is not None and plan.out_bytes > avail * 0.9:
        raise ResourceError(
            f"the output needs {human_bytes(plan.out_bytes)} but only {human_bytes(avail)} of memory is free: "
            "export straight to a file (streaming, bounded memory) or use fewer steps")


def _chunk_steps(plan: Plan) -> int:
    if plan.spec.chunk_frames and plan.spec.chunk_frames > 0:
        return int(plan.spec.chunk_frames)
    return max(1, CHUNK_BYTES // max(1, plan.frame_bytes * plan.batch))


def _alloc(shape, device: torch.device) -> torch.Tensor:
    try:
        return torch.empty(shape, dtype=torch.float32, device=device)
    except (RuntimeError, MemoryError) as e:
        n = 4
        for s in shape:
            n *= s
        raise ResourceError(f"out of memory: could not allocate {human_bytes(n)} on {device.type}; "
                            "try fewer steps, or export straight to a file") from e


def run_unsample(spec: UnsampleSpec, reporter: Optional[Reporter] = None, output: Optional[str] = None,
                 overwrite: bool = False, max_memory: Optional[int] = None) -> UnsampleResult:
    """Run a BatchUnsampler job.

    Returns the ``[len(frames)*B, ...]`` output (step-major: row ``i*B+b`` is step i of item b) in one
    preallocated tensor, or, with ``output``, streams it into a ``.latent`` with bounded memory and
    renames it into place only when complete. Raises ``Cancelled`` when the reporter asks to stop;
    nothing partial is returned or left on disk.
    """
    rep = reporter or Reporter()
    plan = plan_unsample(spec)
    try:
        return _run(plan, rep, output, overwrite, max_memory)
    except torch.cuda.OutOfMemoryError:
        if plan.device.type != "cuda":
            raise
        rep.message("CUDA ran out of memory; running on the CPU instead")
        torch.cuda.empty_cache()
        return _run(plan_unsample(spec.replace(device="cpu")), rep, output, overwrite, max_memory)


def _run(plan: Plan, rep: Reporter, output: Optional[str], overwrite: bool,
         max_memory: Optional[int]) -> UnsampleResult:
    t0 = time.perf_counter()
    streaming = output is not None
    _available_check(plan, streaming)
    if plan.device.type == "cuda":
        from .cuda_pipeline import run_cuda  # imported only when a GPU is used

        return run_cuda(plan, rep, output, overwrite, max_memory, t0)
    eng = _Engine(plan)
    chunk = _chunk_steps(plan)
    threads = plan.spec.threads or default_threads()
    if streaming and max_memory:  # the staging slots (one per chunk in flight) take at most a quarter of the cap
        slot_frames = int(max_memory * 0.25) // (_in_flight(threads) * max(1, plan.frame_bytes * plan.batch))
        chunk = max(1, min(chunk, slot_frames))
    with _single_intraop_thread():
        return _run_cpu(plan, eng, rep, output, overwrite, max_memory, t0, chunk, threads, streaming)


@contextlib.contextmanager
def _single_intraop_thread():
    """The job parallelises over frames itself; torch's own intra-op threads would oversubscribe the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _run_cpu(plan, eng, rep, output, overwrite, max_memory, t0, chunk, threads, streaming) -> UnsampleResult:
    B = plan.batch
    n_out = len(plan.positions)
    if plan.spec.normalize:
        first = _alloc((B, *plan.frame_shape), plan.device)
        eng.fill_rows(first, [0])
        eng.norm_shift = first.reshape(B, -1).mean(dim=1)  # float32 mean of step 0, per item
    writer = LatentWriter(output, plan.out_shape, export_metadata(plan), overwrite=overwrite) if streaming else None
    with writer or contextlib.nullcontext():  # the writer removes its temporary file if anything fails
        out = _alloc(plan.out_shape, plan.device) if not streaming else None
        staging = (_alloc((_in_flight(threads) * min(chunk, n_out) * B, *plan.frame_shape), plan.device)
                   if streaming and plan.spec.noise != "trajectory" else None)
        init = _lower_thread_priority if getattr(rep, "background", False) else None
        if init:
            init()
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="unsample", initializer=init) as pool:
            if plan.spec.noise == "trajectory":
                _run_trajectory(eng, plan, rep, pool, threads, chunk, out, writer)
            else:
                _run_independent(eng, plan, rep, pool, threads, chunk, out, staging, writer)
        path = writer.commit() if writer else None
    return UnsampleResult(plan=plan, latent=out, path=path, seconds=time.perf_counter() - t0, device="cpu")


def _lower_thread_priority(niceness: int = 10) -> None:
    """Lower the calling thread's scheduling priority (Linux: per thread; elsewhere a no-op)."""
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, max(os.getpriority(os.PRIO_PROCESS, tid), niceness))
    except (AttributeError, OSError):
        pass


def _parallel(pool: ThreadPoolExecutor, threads: int, n: int, fn) -> None:
    """Run fn(j0, j1) over [0, n) split into up to ``threads`` contiguous ranges, one per thread."""
    parts = max(1, min(threads, n))
    size = -(-n // parts)
    ranges = [(p * size, min(n, (p + 1) * size)) for p in range(parts) if p * size < n]
    if len(ranges) == 1:
        fn(*ranges[0])
        return
    for f in [pool.submit(fn, j0, j1) for j0, j1 in ranges]:
        f.result()


def _emit(eng: _Engine, plan: Plan, rep: Reporter, c0: int, c1: int, block: torch.Tensor, writer) -> None:
    if eng.norm_shift is not None:
        block.view(c1 - c0, plan.batch, -1).sub_(eng.norm_shift.view(1, plan.batch, 1))
    if writer is not None:
        writer.write(block)
    rep.partial(c0, c1, block)
    rep.progress(c1, len(plan.positions))


def _check_cancel(rep: Reporter) -> None:
    if rep.is_cancelled():
        raise Cancelled("cancelled: nothing was kept")


def _in_flight(threads: int) -> int:
    """Chunks in flight at once: one per worker, plus one queued so that no worker waits for the next."""
    return threads + 1


def _run_independent(eng, plan, rep, pool, threads, chunk, out, staging, writer) -> None:
    """Chunks are independent tasks: each worker fills whole chunks, and this thread emits them in order.

    No barrier between chunks, so a worker that finishes early (page faults vary) starts the next
    chunk instead of waiting for the other. At most ``window`` chunks are in flight; a streamed run
    fills one staging slot per chunk in flight and writes a slot only after its chunk is done.
    """
    B, positions = plan.batch, plan.positions
    n = len(positions)
    starts = list(range(0, n, chunk))
    window = _in_flight(threads)  # a streamed run has one staging slot per chunk in flight

    def bounds(i: int):
        return starts[i], min(n, starts[i] + chunk)

    def block(i: int) -> torch.Tensor:
        c0, c1 = bounds(i)
        if out is not None:
            return out[c0 * B:c1 * B]
        s0 = (i % window) * min(chunk, n) * B
        return staging[s0:s0 + (c1 - c0) * B]

    def work(i: int) -> torch.Tensor:
        c0, c1 = bounds(i)
        rows = block(i)
        eng.fill_rows(rows, list(positions[c0:c1]))
        return rows

    pending = collections.deque()
    nxt, emitted = 0, False
    try:
        while nxt < len(starts) or pending:
            _check_cancel(rep)  # once per chunk emitted
            # the first chunk goes alone: while its frames are handed out (a GUI may pause the job
            # then to show them), no other chunk competes for the cores
            while nxt < len(starts) and len(pending) < (window if emitted else 1):
                pending.append((nxt, pool.submit(work, nxt)))
                nxt += 1
            i, fut = pending.popleft()
            rows = fut.result()
            _emit(eng, plan, rep, *bounds(i), rows, writer)
            emitted = True
    finally:
        for _, fut in pending:  # cancelled or failed: drop what has not started, let the rest finish
            fut.cancel()
        for _, fut in pending:
            if not fut.cancelled():
                fut.exception()


def _run_trajectory(eng, plan, rep, pool, threads, chunk, out, writer) -> None:
    """Walk every step in order (each frame builds on the previous one) and emit the selected frames.

    Frames selected out of step order are held until their turn comes.
    """
    B, N = plan.batch, plan.n_steps
    order = {}
    for o, p in enumerate(plan.positions):
        order.setdefault(p, []).append(o)
    direct = out is not None and list(plan.positions) == list(range(N))
    work = out if direct else _alloc((min(chunk, N) * B, *plan.frame_shape), plan.device)
    last = max(plan.positions)
    prev = None
    held = {}  # output index -> frames [B, ...]
    emitted = 0
    for c0 in range(0, last + 1, chunk):
        _check_cancel(rep)
        c1 = min(last + 1, c0 + chunk)
        block = work[c0 * B:c1 * B] if direct else work[:(c1 - c0) * B]
        _parallel(pool, threads, c1 - c0,
                  lambda j0, j1: eng.fill_noise_rows(block[j0 * B:j1 * B], list(range(c0 + j0, c0 + j1))))
        for j in range(c1 - c0):
            eng.trajectory_step(block[j * B:(j + 1) * B], c0 + j, prev if j == 0 else block[(j - 1) * B:j * B])
        prev = block[(c1 - c0 - 1) * B:].clone()  # before _emit may normalise the block in place
        if direct:
            _emit(eng, plan, rep, c0, c1, block, writer)
            continue
        for j in range(c1 - c0):
            for o in order.get(c0 + j, ()):
                held[o] = block[j * B:(j + 1) * B].clone()
        n = 0
        while emitted + n in held:
            n += 1
        if n:
            run = torch.cat([held.pop(o) for o in range(emitted, emitted + n)])
            if out is not None:
                out[emitted * B:(emitted + n) * B].copy_(run)
                run = out[emitted * B:(emitted + n) * B]
            _emit(eng, plan, rep, emitted, emitted + n, run, writer)
            emitted += n
