"""The unsampling job's front door: ``run_unsample(spec, reporter, sink)``.

The BatchUnsampler node's job, without its defects: any batch size, 5-D video latents, a seed,
flow-model noising, and one preallocated output (or a stream to disk) instead of three copies.
Frames are made in chunks; after each chunk the reporter gets progress and the finished frames,
and a cancel request stops the job before the next chunk.

The layers, each in its own module: ``job`` (spec, plan, reporter, result, metadata), ``frames`` (the
frame maker), ``chunks`` (chunk sizes and order), ``sink`` (memory or a streamed ``.latent``), and the
two drivers that schedule them, ``drive_cpu`` and ``drive_cuda``. The names callers used from this
module before the split are re-exported here.
"""
from __future__ import annotations

import os
from typing import Optional, Union

import torch

from .chunks import check_memory_cap
from .drive_cpu import run_cpu
from .drive_cuda import run_cuda
from .job import (NOISE_MODES, Plan, Reporter, UnsampleResult, UnsampleSpec, as_reporter,
                  check_latent_for_family, export_metadata, plan_unsample)
from .sink import LatentSink, MemorySink

__all__ = ["run_unsample", "LatentSink", "MemorySink",  # and, as before the split:
           "NOISE_MODES", "Plan", "Reporter", "UnsampleResult", "UnsampleSpec", "check_latent_for_family",
           "export_metadata", "plan_unsample"]


def run_unsample(job: Union[UnsampleSpec, Plan], reporter: Optional[Reporter] = None, sink=None, *,
                 output: Optional[str] = None, overwrite: bool = False,
                 max_memory: Optional[int] = None) -> UnsampleResult:
    """Run a BatchUnsampler job: a spec, or the plan of one the caller already has (planned once).

    ``sink``: ``MemorySink()`` (the default) returns the ``[len(frames)*B, ...]`` output (step-major: row
    ``i*B+b`` is step i of item b) in one preallocated tensor; ``LatentSink(path, overwrite, max_memory)``
    streams it into a ``.latent`` with bounded memory and renames it into place only when complete.
    The keywords ``output``, ``overwrite`` and ``max_memory`` are the older spelling of a ``LatentSink``.
    Raises ``Cancelled`` when the reporter asks to stop; nothing partial is returned or left on disk.
    """
    if isinstance(sink, (str, os.PathLike)):  # the older positional form: run_unsample(spec, rep, path)
        sink, output = None, sink
    if output is not None:
        if sink is not None:
            raise TypeError("run_unsample takes a sink or output=..., not both")
        sink = LatentSink(output, overwrite=overwrite, max_memory=max_memory)
    sink = sink or MemorySink()
    rep = as_reporter(reporter)
    if isinstance(job, Plan):
        plan = job
    else:
        plan = plan_unsample(job)
    if sink.streamed and sink.max_memory:  # a cap the run cannot keep is refused before anything is written
        check_memory_cap(plan, sink.max_memory, plan.spec.threads)
    if not isinstance(job, Plan):
        rep.planned(plan)
    try:
        return _drive(plan, rep, sink)
    except torch.cuda.OutOfMemoryError:
        if plan.device.type != "cuda":
            raise
        rep.message("CUDA ran out of memory; running on the CPU instead")
        torch.cuda.empty_cache()
        cpu = plan.on("cpu")
        # the CPU's frames are not the GPU's (another generator): the run starts over, and says so with its
        # new plan, so that a consumer drops the partials it had and takes them again from row 0
        rep.planned(cpu)
        return _drive(cpu, rep, sink)


def _drive(plan: Plan, reporter: Reporter, sink) -> UnsampleResult:
    """The driver for the plan's device."""
    if plan.device.type == "cuda":
        return run_cuda(plan, reporter, sink)
    return run_cpu(plan, reporter, sink)
