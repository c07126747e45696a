"""Unsampler's Qt-free numerical core.

Public API (kept stable: other parts and outside checks call these names):

- ``ksampler_sigmas(family, sampler, scheduler, steps)``: ComfyUI's ``KSampler(...).sigmas``.
- ``node_sigmas(family, sampler, scheduler, steps, start_at_step, end_at_step)``: the node's sigmas.
- ``run_unsample(spec, reporter, sink)``: the unsampling job; ``UnsampleSpec``, ``Reporter``, ``plan_unsample``;
  sinks ``MemorySink``, ``LatentSink``; ``Frames``: any frame on demand, bit-identical to a run's.
- ``read_latent``, ``write_latent``: ComfyUI ``.latent`` files.
- ``get_family``, ``family_names``: the family registry.
"""
from __future__ import annotations

import importlib

#: Where each public name lives. The names are loaded on first use (PEP 562), so that importing the package, or
#: a light module of it (errors, families, samplers), does not import torch: the window paints before torch loads.
_HOME = {
    "errors": ("BadFileError", "BadParameterError", "Cancelled", "ResourceError", "UnsamplerError"),
    "families": ("Family", "all_families", "families_for_channels", "family_names", "get_family"),
    "latent_io": ("LatentFile", "LatentWriter", "read_latent", "write_latent"),
    "samplers": ("sampler_names", "scheduler_names"),
    "sigmas": ("ksampler_sigmas", "model_space_sigmas", "node_sigmas"),
    "job": ("NOISE_MODES", "Plan", "Reporter", "UnsampleResult", "UnsampleSpec", "plan_unsample"),
    "frames": ("FrameMaker", "Frames", "Keyframe"),
    "sink": ("LatentSink", "MemorySink"),
    "unsample": ("run_unsample",),
    "formulas": ("FORMULAS",),
}
_WHERE = {name: module for module, names in _HOME.items() for name in names}

__all__ = [name for names in _HOME.values() for name in names]


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # the next look-up is a plain one
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
