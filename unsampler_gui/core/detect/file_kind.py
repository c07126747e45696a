"""The one answer to "is this file a latent or a model?", for the CLI, ``latent_io`` and the app.

A latent is what ComfyUI's LoadLatent reads: a ``.latent`` file, or a safetensors file with a
``latent_tensor``. A plain safetensors file with a single 4-D or 5-D float tensor (beside at most
the empty ``latent_format_version_0`` marker) also counts, unless that tensor is one that a model
detection rule tests for (a diffusion-model-only file can hold a single key). Anything else,
including a safetensors file with several tensors and no ``latent_tensor``, is a model: its
detection then says what it is. Only the header is read.
"""
from __future__ import annotations

import os

from .unet_config import BRANCHES
from ..errors import BadFileError
from ..safetensors_io import SafetensorsHeader, read_header

LATENT_KEY = "latent_tensor"
MARKER_KEY = "latent_format_version_0"
LATENT_SUFFIXES = (".latent",)
_MODEL_MARKERS = tuple(sorted({m for b in BRANCHES for m in b.markers}))
_PREFIXES = ("model.diffusion_model.", "model.model.", "diffusion_model.", "model.", "net.")


def _is_model_key(name: str) -> bool:
    """True when ``name`` (with or without a model prefix) is a key a detection rule tests for."""
    bases = [name] + [name[len(p):] for p in _PREFIXES if name.startswith(p)]
    return any(b == m or (m.endswith(".") and b.startswith(m)) for b in bases for m in _MODEL_MARKERS)


def latent_tensor_name(header: SafetensorsHeader):
    """The tensor a latent file keeps its latent in, or None when the header is not a latent's."""
    if LATENT_KEY in header.tensors:
        return LATENT_KEY
    others = [t for t in header.tensors.values() if t.name != MARKER_KEY]
    if len(others) == 1 and len(others[0].shape) in (4, 5) and not _is_model_key(others[0].name):
        return others[0].name
    return None


def classify_file(path) -> str:
    """``"latent"`` or ``"model"`` for a file or folder (folders and unreadable headers are models)."""
    p = os.fspath(path)
    if os.path.isdir(p):
        return "model"
    if p.lower().endswith(LATENT_SUFFIXES):
        return "latent"
    try:
        header = read_header(p)
    except BadFileError:
        return "model"
    return "latent" if latent_tensor_name(header) is not None else "model"
