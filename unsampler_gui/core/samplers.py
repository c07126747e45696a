"""ComfyUI's sampler names. Only their effect on the schedule matters here: the discard-penultimate rule."""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources


@lru_cache(maxsize=None)
def _lists() -> dict:
    return json.loads(resources.files(__package__).joinpath("data").joinpath("comfy_lists.json")
                      .read_text(encoding="utf-8"))


def sampler_names() -> list:
    """``KSampler.SAMPLERS`` of current ComfyUI, in its order (the node's combo box)."""
    return list(_lists()["samplers"])


def scheduler_names() -> list:
    return list(_lists()["schedulers"])


def discards_penultimate(sampler: str) -> bool:
    """dpm_2, dpm_2_ancestral, uni_pc and uni_pc_bh2 compute steps+1 sigmas and drop the second to last."""
    return sampler in _lists()["discard_penultimate_sigma_samplers"]
