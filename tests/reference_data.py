"""Shared readers for the ComfyUI reference files (../shared/reference) and the host they belong to."""
import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from conftest import REFERENCE


@lru_cache(maxsize=None)
def load(name: str) -> dict:
    return json.loads((Path(REFERENCE) / name).read_text())


def old_families() -> dict:
    return load("families.json")["detected_families"]


def new_families() -> dict:
    return load("families_newest.json")["detected_families"]


def all_reference_families() -> dict:
    return {**old_families(), **new_families()}


@lru_cache(maxsize=None)
def cpu_vendor() -> str:
    """``GenuineIntel``, ``AuthenticAMD`` or ``other``, from /proc/cpuinfo."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("vendor_id"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "other"


def same_host_old_file() -> str:
    """The file of the old 1728 cases computed on a host of this machine's CPU vendor (see the reference README)."""
    return "sigmas_public.json" if cpu_vendor() == "AuthenticAMD" else "sigmas_public_intel.json"


def other_host_old_file() -> str:
    return "sigmas_public_intel.json" if same_host_old_file() == "sigmas_public.json" else "sigmas_public.json"


def newest_is_same_host() -> bool:
    """``sigmas_newest_public.json`` and ``families_newest.json`` were computed on an Intel host."""
    return cpu_vendor() == "GenuineIntel"


def f32(values) -> np.ndarray:
    return np.array([float(v) for v in values], dtype=np.float32)


def ulps(a: np.ndarray, b: np.ndarray) -> int:
    """The largest distance in float32 units in the last place (NaN only matches NaN; shapes must agree)."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    if a.shape != b.shape:
        return 1 << 40
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    if not np.array_equal(nan_a, nan_b):
        return 1 << 40

    def ordered(x):
        i = x[~nan_a].view(np.int32).astype(np.int64)
        return np.where(i < 0, -(i & 0x7FFFFFFF), i)  # monotone over the sign

    ia, ib = ordered(a), ordered(b)
    return int(np.abs(ia - ib).max()) if ia.size else 0
