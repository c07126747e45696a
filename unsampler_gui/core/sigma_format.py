"""Printing sigmas so that they read back exactly.

- ``json_floats`` gives JSON numbers that ``numpy.float32`` parses back to the same float32.
- ``manual_sigmas_text`` gives ComfyUI's ManualSigmas node a comma-separated list of plain decimals
  (never ``1e-3`` exponent notation, which its parser does not take).
"""
from __future__ import annotations

import math

import numpy as np


def plain_decimal(x) -> str:
    """Shortest round-tripping float32 decimal, positional (no exponent)."""
    v = np.float32(x)
    if not math.isfinite(float(v)):
        return str(float(v))
    return np.format_float_positional(v, unique=True, trim="-")


def manual_sigmas_text(values) -> str:
    """ManualSigmas-safe text: '14.614642, 10.74 , ...' style, plain decimals separated by ', '."""
    vals = [float(v) for v in values]
    bad = [v for v in vals if not math.isfinite(v)]
    if bad:
        raise ValueError("the sigmas hold NaN/Inf, which ManualSigmas cannot take")
    return ", ".join(plain_decimal(v) for v in vals)


def json_floats(values) -> list:
    """float32 values as JSON numbers (NaN/Inf become None)."""
    out = []
    for v in values:
        f = float(np.float32(v))
        out.append(f if math.isfinite(f) else None)
    return out
