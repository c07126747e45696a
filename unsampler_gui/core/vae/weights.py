"""One front door for weight files: safetensors or a torch pickle, names and shapes first, tensors on request.

A VAE is found by its key names and shapes (``layouts.py``) before any tensor is read; then only the
VAE's own tensors are read (a full checkpoint's UNet and text encoders stay on disk). Safetensors are
read through ``safetensors`` after ``core.safetensors_io`` has validated the header; torch pickles
through ``torch_weights`` (no code from the file runs).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Iterable

import torch

from ..errors import BadFileError
from ..safetensors_io import open_checked, read_header

#: What ComfyUI's folders accept (folder_paths.supported_pt_extensions), minus the kinds we cannot read.
WEIGHT_EXTENSIONS = (".safetensors", ".sft", ".pth", ".pt", ".ckpt", ".bin")


@dataclass
class WeightFile:
    path: str
    container: str
    shapes: dict  # name -> tuple, in file order
    metadata: dict
    _load: Callable[[list], dict]

    def load(self, names: Iterable[str]) -> dict:
        """The tensors ``names`` as stored (dtype kept); a bad file is a ``BadFileError``."""
        names = list(names)
        missing = [n for n in names if n not in self.shapes]
        if missing:
            raise BadFileError(f"{os.path.basename(self.path)}: no tensor {missing[0]!r}")
        return self._load(names)


def _sniff(path: str) -> bytes:
    with open_checked(path) as f:
        return f.read(8)


def _safetensors(path: str) -> WeightFile:
    header = read_header(path)

    def load(names: list) -> dict:
        from safetensors import safe_open

        try:
            with safe_open(path, framework="pt", device="cpu") as f:
                return {n: f.get_tensor(n) for n in names}
        except Exception as e:  # noqa: BLE001 - the library's own errors become one line
            raise BadFileError(f"{os.path.basename(path)}: cannot read its tensors ({str(e)[:120]})") from None

    return WeightFile(path, "safetensors", {k: t.shape for k, t in header.tensors.items()}, dict(header.metadata),
                      load)


def _torch(path: str) -> WeightFile:
    from .torch_weights import read_torch_weights

    w = read_torch_weights(path)
    return WeightFile(path, w.container, w.shapes(), {}, w.load)


def open_weights(path) -> WeightFile:
    """Open a ``.safetensors``/``.sft`` file or a torch pickle (``.pth``, ``.pt``, ``.ckpt``, ``.bin``)."""
    p = os.fspath(path)
    head = _sniff(p)
    if head[:4] == b"GGUF":
        raise BadFileError(f"{os.path.basename(p)}: a GGUF file; VAEs are read from safetensors or torch files")
    if head[:2] == b"PK" or head[:1] == b"\x80":
        return _torch(p)
    return _safetensors(p)


def as_float32(tensors: dict) -> dict:
    """Every floating tensor as float32 (the VAE runs in float32); other dtypes are kept (BatchNorm counts)."""
    out = {}
    for k, v in tensors.items():
        if not isinstance(v, torch.Tensor):
            raise BadFileError(f"{k!r} is not a tensor")
        out[k] = v.to(torch.float32) if v.is_floating_point() else v
    return out
