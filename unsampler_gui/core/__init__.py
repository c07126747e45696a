"""Unsampler's Qt-free numerical core.

Public API (kept stable: other parts and outside checks call these names):

- ``ksampler_sigmas(family, sampler, scheduler, steps)``: ComfyUI's ``KSampler(...).sigmas``.
- ``node_sigmas(family, sampler, scheduler, steps, start_at_step, end_at_step)``: the node's sigmas.
- ``run_unsample(spec, reporter, sink)``: the unsampling job; ``UnsampleSpec``, ``Reporter``, ``plan_unsample``;
  sinks ``MemorySink``, ``LatentSink``; ``Frames``: any frame on demand, bit-identical to a run's.
- ``read_latent``, ``write_latent``: ComfyUI ``.latent`` files.
- ``get_family``, ``family_names``: the family registry.
"""
from .errors import BadFileError, BadParameterError, Cancelled, ResourceError, UnsamplerError
from .families import Family, all_families, families_for_channels, family_names, get_family
from .latent_io import LatentFile, LatentWriter, read_latent, write_latent
from .samplers import sampler_names, scheduler_names
from .sigmas import ksampler_sigmas, model_space_sigmas, node_sigmas
from .job import NOISE_MODES, Plan, Reporter, UnsampleResult, UnsampleSpec, plan_unsample
from .frames import FrameMaker, Frames, Keyframe
from .sink import LatentSink, MemorySink
from .unsample import run_unsample
from .formulas import FORMULAS

__all__ = [
    "BadFileError", "BadParameterError", "Cancelled", "ResourceError", "UnsamplerError",
    "Family", "all_families", "families_for_channels", "family_names", "get_family",
    "LatentFile", "LatentWriter", "read_latent", "write_latent",
    "sampler_names", "scheduler_names", "ksampler_sigmas", "model_space_sigmas", "node_sigmas",
    "NOISE_MODES", "FORMULAS", "Plan", "Reporter", "UnsampleResult", "UnsampleSpec", "plan_unsample", "run_unsample",
    "FrameMaker", "Frames", "Keyframe", "LatentSink", "MemorySink",
]
