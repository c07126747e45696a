"""The public schedule API: ComfyUI's ``KSampler(...).sigmas`` and the BatchUnsampler node's slice.

``ksampler_sigmas`` and ``node_sigmas`` are the functions other parts (and outside checks) call.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Optional, Union

import torch

from .errors import BadParameterError
from .families import Family, get_family
from .model_sampling import model_sampling
from .samplers import discards_penultimate, sampler_names
from .schedulers import SCHEDULERS

#: The node's ranges (ComfyUI INPUT_TYPES of BatchUnsampler): steps 1..10000, start/end 0..10000.
MAX_STEPS = 10000
FamilyLike = Union[str, Family]


def check_names(sampler: str, scheduler: str) -> None:
    """Raise a clear ValueError for a sampler or scheduler ComfyUI does not have (ComfyUI silently falls back)."""
    if scheduler not in SCHEDULERS:
        raise BadParameterError(f"unknown scheduler {scheduler!r}; ComfyUI's schedulers are: {', '.join(SCHEDULERS)}")
    if sampler not in sampler_names():
        raise BadParameterError(f"unknown sampler {sampler!r}; ComfyUI's samplers are: {', '.join(sampler_names())}")


def check_steps(steps) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or isinstance(steps, float):
        try:
            if int(steps) != steps:
                raise ValueError
            steps = int(steps)
        except (TypeError, ValueError):
            raise BadParameterError(f"steps must be a whole number, got {steps!r}") from None
    if not 1 <= steps <= MAX_STEPS:
        raise BadParameterError(f"steps must be between 1 and {MAX_STEPS}, got {steps}")
    return steps


@lru_cache(maxsize=256)
def _schedule(sampling, discard: bool, scheduler: str, steps: int) -> torch.Tensor:
    ms = model_sampling(sampling)
    if discard:
        sigmas = SCHEDULERS[scheduler](ms, steps + 1)
        sigmas = torch.cat([sigmas[:-2], sigmas[-1:]])
    else:
        sigmas = SCHEDULERS[scheduler](ms, steps)
    sigmas = sigmas.to(torch.float32).contiguous()
    sigmas.requires_grad_(False)
    return sigmas


def ksampler_sigmas(family: FamilyLike, sampler: str, scheduler: str, steps: int) -> torch.Tensor:
    """ComfyUI's ``KSampler(model, steps, sampler, scheduler, denoise=1.0).sigmas``.

    float32, high to low, in model space, normally ending in 0. Unknown names raise ValueError.
    """
    fam = get_family(family)
    check_names(sampler, scheduler)
    steps = check_steps(steps)
    return _schedule(fam.sampling, discards_penultimate(sampler), scheduler, steps).clone()


def slice_bounds(steps: int, start_at_step: int, end_at_step: int) -> tuple:
    """The node's slice: ``e = min(steps, end)``, ``s = min(start, e)``."""
    for name, v in (("start_at_step", start_at_step), ("end_at_step", end_at_step)):
        if isinstance(v, bool) or int(v) != v or not 0 <= int(v) <= MAX_STEPS:
            raise BadParameterError(f"{name} must be a whole number between 0 and {MAX_STEPS}, got {v!r}")
    e = min(int(steps), int(end_at_step))
    s = min(int(start_at_step), e)
    return s, e


def node_slice(family: FamilyLike, schedule: torch.Tensor, steps: int, start_at_step: int,
               end_at_step: int) -> tuple:
    """The node's slice of a schedule, low to high: (model-space sigmas, raw sigmas = model / scale_factor)."""
    fam = get_family(family)
    s, e = slice_bounds(steps, start_at_step, end_at_step)
    return schedule[s:e].flip(0), (schedule[s:e] / fam.latent.scale_factor).flip(0)


def node_sigmas(family: FamilyLike, sampler: str, scheduler: str, steps: int,
                start_at_step: int = 0, end_at_step: int = 10000) -> torch.Tensor:
    """The BatchUnsampler node's sigmas: ``(schedule[s:e] / scale_factor).flip(0)``, float32, low to high.

    These are raw-latent-space noise levels. May be empty (start >= end); ``run_unsample`` refuses that.
    """
    schedule = ksampler_sigmas(family, sampler, scheduler, steps)
    return node_slice(family, schedule, steps, start_at_step, end_at_step)[1]


def model_space_sigmas(family: FamilyLike, sampler: str, scheduler: str, steps: int,
                       start_at_step: int = 0, end_at_step: int = 10000) -> torch.Tensor:
    """The same slice as ``node_sigmas`` but not divided: model-space sigmas, low to high."""
    schedule = ksampler_sigmas(family, sampler, scheduler, steps)
    return node_slice(family, schedule, steps, start_at_step, end_at_step)[0]


def sigmas_document(family: FamilyLike, sampler: str, scheduler: str, steps: int, start_at_step: int = 0,
                    end_at_step: int = 10000, model: Optional[str] = None) -> dict:
    """The schedule and the node's slice as JSON values (``unsampler sigmas --json`` and the sigma export).

    Floats are the float32 values themselves, so ``numpy.float32(x)`` gives them back exactly; NaN is null.
    """
    from .sigma_format import json_floats

    fam = get_family(family)
    schedule = ksampler_sigmas(fam, sampler, scheduler, steps)
    model_sig, raw = node_slice(fam, schedule, steps, start_at_step, end_at_step)
    return {"model": model or fam.name, "family": fam.name, "sampler": sampler, "scheduler": scheduler,
            "steps": steps, "start_at_step": start_at_step, "end_at_step": end_at_step,
            "scale_factor": fam.latent.scale_factor, "schedule": json_floats(schedule.tolist()),
            "sigmas": json_floats(model_sig.tolist()), "raw_sigmas": json_floats(raw.tolist())}
