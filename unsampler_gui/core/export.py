"""Exports of a finished run: the ``.latent`` batch (all or part), and its sigmas.

All writes go through ``atomic``: a temporary file in the target folder, renamed when complete.
"""
from __future__ import annotations

import json
from typing import Optional, Sequence

from .atomic import atomic_write_text
from .errors import BadParameterError, Cancelled
from .latent_io import LatentWriter
from .sigma_format import manual_sigmas_text
from .sigmas import sigmas_document as schedule_document
from .chunks import check_memory_cap, stream_memory_floor  # noqa: F401 (their old home)
from .job import Plan, Reporter, UnsampleResult, export_metadata


def select_positions(n: int, start: int = 0, stop: Optional[int] = None, every: int = 1,
                     reverse: bool = False, keep_end: bool = False) -> list:
    """Output positions for a step range ``[start, stop)`` taking every ``every``-th, optionally reversed;
    ``keep_end`` adds the range's last step when the stride skips it (a contact sheet ends on the noisiest)."""
    stop = n if stop is None else stop
    if not (0 <= start < stop <= n):
        raise BadParameterError(f"step range {start}..{stop} is outside 0..{n}")
    if every < 1:
        raise BadParameterError("every must be 1 or more")
    pos = list(range(start, stop, every))
    if keep_end and pos[-1] != stop - 1:
        pos.append(stop - 1)
    return pos[::-1] if reverse else pos


def export_latent(result: UnsampleResult, path, positions: Optional[Sequence[int]] = None, reverse: bool = False,
                  overwrite: bool = False, reporter: Optional[Reporter] = None) -> str:
    """Write frames of an in-memory result as a ``.latent`` (step-major rows), with full metadata.

    ``positions`` index the result's steps (0..len-1, node order); ``reverse`` flips their order.
    """
    if result.latent is None:
        raise BadParameterError("this run was streamed to a file; export from that file instead")
    rep = reporter or Reporter()
    plan = result.plan
    n = len(plan.positions)
    pos = list(range(n)) if positions is None else [int(p) for p in positions]
    if any(not 0 <= p < n for p in pos) or not pos:
        raise BadParameterError(f"frames to export must be within 0..{n - 1}")
    if reverse:
        pos = pos[::-1]
    B = plan.batch
    src_steps = [plan.positions[p] for p in pos]
    meta = export_metadata(plan, src_steps)
    lat = result.latent
    with LatentWriter(path, (len(pos) * B, *plan.frame_shape), meta, overwrite=overwrite) as w:
        run_start = 0
        for k in range(1, len(pos) + 1):  # write runs of consecutive positions in one go
            if k == len(pos) or pos[k] != pos[k - 1] + 1:
                if rep.is_cancelled():
                    raise Cancelled("export cancelled: nothing was written")
                a = pos[run_start]
                w.write(lat[a * B:(pos[k - 1] + 1) * B])
                rep.progress(k, len(pos))
                run_start = k
        return w.commit()


def _atomic_text(path, text: str, overwrite: bool) -> str:
    return atomic_write_text(path, text, overwrite)


def sigmas_document(plan: Plan) -> dict:
    spec = plan.spec
    return schedule_document(spec.family, spec.sampler, spec.scheduler, spec.steps, spec.start_at_step,
                             spec.end_at_step, model=spec.model_source)


def export_sigmas_json(plan: Plan, path, overwrite: bool = False) -> str:
    """The schedule, the node's slice (model space) and the raw sigmas, as JSON."""
    return _atomic_text(path, json.dumps(sigmas_document(plan), indent=1) + "\n", overwrite)


def export_sigmas_text(plan: Plan, path, overwrite: bool = False, which: str = "schedule") -> str:
    """ManualSigmas-safe text of the full schedule (high to low, as a sampler wants) or of the slice."""
    values = plan.schedule.tolist() if which == "schedule" else plan.model_sigmas.tolist()
    return _atomic_text(path, manual_sigmas_text(values) + "\n", overwrite)
