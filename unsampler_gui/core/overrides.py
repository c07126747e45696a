"""The ranges of the user's sampling overrides, each bound with its reason.

ComfyUI's ModelSampling* nodes (ModelSamplingSD3, ModelSamplingAuraFlow, ModelSamplingStableCascade,
ModelSamplingFlux in ``comfy_extras/nodes_model_advanced.py``) take a shift up to 100.0. A shift must
be above 0 (0 makes every sigma 0). A Flux-style shift is ``mu`` in ``exp(mu) / (exp(mu) + (1/t - 1))``
(``flux_time_shift``): ``exp(mu)`` overflows float32 beyond 88.72, and the sigmas become NaN, in
ComfyUI as here. Used wherever a shift comes in: the command line, the app, a diffusers config.
"""
from __future__ import annotations

import math
from typing import Optional

from .errors import BadParameterError, printable

#: ComfyUI's ModelSampling* nodes: "shift": {"min": 0.0, "max": 100.0}.
SHIFT_MAX = 100.0
#: ``math.exp(shift)`` must stay below float32's largest value (3.4e38): exp(88) is 1.65e38.
FLUX_SHIFT_MAX = 88.0


def shift_limit(kind: Optional[str] = None) -> float:
    """The largest shift for a sampling kind ("flux" is tighter than the others)."""
    return FLUX_SHIFT_MAX if kind == "flux" else SHIFT_MAX


def shift_problem(value, kind: Optional[str] = None) -> Optional[str]:
    """Why ``value`` cannot be a shift (for a sampling ``kind``), or None when it can."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{printable(repr(value), 40)} is not a number"
    try:
        v = float(value)
    except OverflowError:
        return f"{printable(repr(value), 40)} is too large"
    if not math.isfinite(v):
        return f"{v!r} is not a finite number"
    limit = shift_limit(kind)
    if not 0 < v <= limit:
        return f"{v:g} is outside (0, {limit:g}]"
    return None


def shift_rule(kind: Optional[str] = None) -> str:
    """The range and its reason, for messages."""
    if kind == "flux":
        return (f"a Flux shift must be > 0 and at most {FLUX_SHIFT_MAX:g} (exp(shift) overflows float32 "
                "beyond 88.7, which gives NaN sigmas in ComfyUI too)")
    return (f"a shift must be > 0 and at most {SHIFT_MAX:g} (the range of ComfyUI's ModelSampling nodes; "
            "0 makes every sigma 0)")


def check_shift(value, kind: Optional[str] = None) -> float:
    """``value`` as a float, or ``BadParameterError`` naming the range and why."""
    if shift_problem(value, kind) is not None:
        shown = f"{value:g}" if isinstance(value, float) else printable(repr(value), 40)
        raise BadParameterError(f"{shift_rule(kind)}; got {shown}")
    return float(value)


__all__ = ["SHIFT_MAX", "FLUX_SHIFT_MAX", "shift_limit", "shift_problem", "shift_rule", "check_shift"]
