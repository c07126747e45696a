"""The unsampling job: what is asked (``UnsampleSpec``), what it will produce (``Plan``), who listens
(``Reporter``), what comes back (``UnsampleResult``) and what an export records (``export_metadata``).

Nothing here makes frames: ``frames.py`` holds the arithmetic, ``sink.py`` where rows go, and the drivers
(``drive_cpu.py``, ``drive_cuda.py``) schedule them; ``unsample.run_unsample`` is the front door.
"""
from __future__ import annotations

import math
import dataclasses
import json
from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from .devices import human_bytes, resolve_device
from .errors import BadParameterError, Cancelled
from .families import Family, families_for_channels, get_family
from .formulas import FORMULAS
from .latent_io import validate_latent_shape
from .sigmas import check_names, check_steps, ksampler_sigmas, node_slice, slice_bounds

NOISE_MODES = ("independent", "shared", "trajectory")


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
    source_picture: Optional[dict] = None  # a latent encoded from a picture: the picture and the VAE (export metadata)

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


class OutputSizes:
    """The byte sizes of an output of ``positions`` steps of ``batch`` float32 frames of ``frame_shape``
    (for ``Plan`` and a browsed file's ``BatchPlan``)."""

    @property
    def frame_bytes(self) -> int:
        return 4 * math.prod(self.frame_shape)  # float32

    @property
    def step_bytes(self) -> int:
        """Bytes of one step: its frame for every batch item (B output rows)."""
        return self.frame_bytes * self.batch

    @property
    def out_bytes(self) -> int:
        return self.step_bytes * len(self.positions)


@dataclass(frozen=True, eq=False)
class Plan(OutputSizes):
    """What a spec will produce, computed (and validated) once, before anything runs."""

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


    def on(self, device: torch.device) -> "Plan":
        """The same plan run on another device (the spec says so too); nothing is validated again."""
        return dataclasses.replace(self, device=torch.device(device), spec=self.spec.replace(device=str(device)))

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
        fits = [_named(f) for f in families_for_channels(c, nd)]
        hint = f"families that take it: {', '.join(fits)}" if fits else "no known family takes this shape"
        raise BadParameterError(f"the latent is {list(latent.shape)} ({c} channels, {nd}-D) but "
                                f"{family.display_name} expects {want}; {hint}")


def _named(family: Family) -> str:
    """A family as messages name it: the display name the app shows, with the ``--model`` name when it differs."""
    return family.display_name if family.display_name == family.name else f"{family.display_name} ({family.name})"


def plan_unsample(spec: UnsampleSpec) -> Plan:
    """Validate a spec and compute its sigmas and output size. Raises a clear error for anything wrong.

    A caller that already has the plan passes it to ``run_unsample`` instead of the spec, so that a run
    is planned (and its latent checked for NaN) once.
    """
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
    """The job's side channel. Subclass and override what you need; every method is optional.

    - ``planned(plan)``: the plan, before any frame is made (not when the caller handed the plan in: it has
      it already). It comes again when a CUDA run falls back to the CPU: the run starts over on that plan,
      and the partials and progress before it are void (they come again from row 0, with the CPU's bits).
    - ``progress(done, total)``: ``done`` of ``total`` output steps are final.
    - ``partial(start, stop, frames)``: output rows ``[start*B, stop*B)`` are final; ``frames`` is a CPU
      tensor holding exactly those rows (a view: copy it if you keep it past the call). Partials come in
      output order, each right after the one before.
    - ``is_cancelled()``: asked once per chunk; True stops the job with ``Cancelled``, keeping nothing.
    - ``message(text)``: something the user should know (a fallback to the CPU, for example).
    """

    #: True when the job runs behind an interactive window: its threads then run at a lower OS priority,
    #: so that the window gets a core as soon as it needs one (the job still uses every idle core).
    background = False

    def planned(self, plan: Plan) -> None:
        pass

    def is_cancelled(self) -> bool:
        return False

    def progress(self, done: int, total: int) -> None:
        pass

    def partial(self, start: int, stop: int, frames: torch.Tensor) -> None:
        pass

    def message(self, text: str) -> None:
        pass


class _Adapted(Reporter):
    """A duck-typed reporter (any subset of the methods) seen through the full protocol."""

    def __init__(self, inner):
        self._inner = inner
        self.background = bool(getattr(inner, "background", False))
        for name in ("planned", "is_cancelled", "progress", "partial", "message"):
            fn = getattr(inner, name, None)
            if callable(fn):
                setattr(self, name, fn)


def as_reporter(reporter) -> Reporter:
    """``reporter`` as a full ``Reporter``: itself when it is one, a quiet one for None, else an adapter."""
    if reporter is None:
        return Reporter()
    return reporter if isinstance(reporter, Reporter) else _Adapted(reporter)


def check_cancel(reporter: Reporter) -> None:
    """Stop the job here when the reporter asks to (drivers call this once per chunk)."""
    if reporter.is_cancelled():
        raise Cancelled("cancelled: nothing was kept")


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
        "source": {"name": plan.spec.source_name, "sha256": plan.spec.source_sha256,
                   **({"picture": dict(plan.spec.source_picture)} if plan.spec.source_picture else {})},
    })
    return {"unsampler": json.dumps(params, separators=(",", ":"))}
