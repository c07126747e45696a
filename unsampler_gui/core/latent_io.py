"""ComfyUI ``.latent`` files (and single-tensor ``.safetensors``): read, and write atomically.

The format is described in ``shared/reference/latent_io.md``: a safetensors file with ``latent_tensor``
and the empty ``latent_format_version_0`` marker. LoadLatent multiplies files without the marker by
``1/0.18215``; we do the same. Writes stream through a temporary file in the target folder that is
renamed into place only when complete, so a failed or cancelled write never leaves a file that
looks finished.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

from .errors import BadFileError, ResourceError
from .safetensors_io import SafetensorsHeader, open_checked, read_header, read_tensor_array

LATENT_KEY = "latent_tensor"
MARKER_KEY = "latent_format_version_0"
#: LoadLatent's multiplier for files without the marker (legacy SD1.x-scaled latents).
LEGACY_MULTIPLIER = 1.0 / 0.18215
METADATA_KEY = "unsampler"
FLOAT_DTYPES = ("F32", "F16", "BF16", "F64")


class NonFiniteLatentError(BadFileError):
    """The latent holds NaN or Inf values."""


@dataclass
class LatentFile:
    """A latent read from disk, as LoadLatent would see it (float32, multiplier applied)."""

    path: str
    tensor: torch.Tensor
    kind: str  # "latent" (ComfyUI, with marker), "legacy latent" (no marker) or "safetensors"
    tensor_name: str
    stored_dtype: str
    multiplier: float
    sha256: str
    metadata: dict = field(default_factory=dict)
    unsampler: Optional[dict] = None  # our export's parameters, when the file is one of ours
    nonfinite: int = 0

    @property
    def shape(self) -> tuple:
        return tuple(self.tensor.shape)

    @property
    def has_marker(self) -> bool:
        return self.kind == "latent"

    def summary(self) -> dict:
        t = self.tensor
        finite = t[torch.isfinite(t)] if self.nonfinite else t
        return {
            "kind": self.kind, "path": self.path, "shape": list(self.shape), "stored_dtype": self.stored_dtype,
            "marker": self.has_marker, "multiplier": self.multiplier, "sha256": self.sha256,
            "min": float(finite.min()) if finite.numel() else None,
            "max": float(finite.max()) if finite.numel() else None,
            "mean": float(finite.double().mean()) if finite.numel() else None,
            "std": float(finite.double().std()) if finite.numel() > 1 else None,
            "nonfinite": self.nonfinite, "unsampler": self.unsampler,
        }


def file_sha256(path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open_checked(path) as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def _pick_tensor(header: SafetensorsHeader) -> str:
    name = os.path.basename(header.path)
    if LATENT_KEY in header.tensors:
        return LATENT_KEY
    candidates = [t for t in header.tensors.values() if t.name != MARKER_KEY]
    if header.path.lower().endswith(".latent") or not candidates:
        raise BadFileError(f"{name}: no '{LATENT_KEY}' tensor in the file (ComfyUI's LoadLatent would fail too)")
    if len(candidates) == 1:
        return candidates[0].name
    raise BadFileError(f"{name}: holds {len(candidates)} tensors and none is called '{LATENT_KEY}'; "
                       "this looks like a model file, not a latent")


def _to_float32(arr: np.ndarray, dtype: str) -> torch.Tensor:
    if dtype == "BF16":
        return torch.from_numpy(arr.view(np.int16).copy()).view(torch.bfloat16).float()
    return torch.from_numpy(arr).to(torch.float32)


def validate_latent_shape(shape, name: str = "latent") -> None:
    """A LATENT batch is [B, C, H, W] (images) or [B, C, T, H, W] (video), with no empty dimension."""
    if len(shape) not in (4, 5):
        raise BadFileError(f"{name}: a latent must have 4 dimensions [B, C, H, W] or 5 [B, C, T, H, W]; "
                           f"this one has {len(shape)} {list(shape)}")
    if shape[1] == 0:
        raise BadFileError(f"{name}: the latent has 0 channels {list(shape)}")
    if any(s == 0 for s in shape):
        raise BadFileError(f"{name}: the latent is empty {list(shape)}")


def read_latent(path, allow_nonfinite: bool = False) -> LatentFile:
    """Read a ``.latent`` (or single-tensor ``.safetensors``) exactly as ComfyUI's LoadLatent does."""
    path = os.fspath(path)
    name = os.path.basename(path)
    header = read_header(path)
    tname = _pick_tensor(header)
    info = header.tensors[tname]
    if info.dtype not in FLOAT_DTYPES:
        raise BadFileError(f"{name}: the latent is {info.dtype}; expected a float tensor (F32, F16, BF16)")
    validate_latent_shape(info.shape, name)
    arr = read_tensor_array(header, tname)
    tensor = _to_float32(arr, info.dtype)
    if tname == LATENT_KEY:
        if MARKER_KEY in header.tensors:
            kind, multiplier = "latent", 1.0
        else:
            kind, multiplier = "legacy latent", LEGACY_MULTIPLIER
            tensor = tensor * multiplier  # float32 multiply by float32(1/0.18215), as LoadLatent
    else:
        kind, multiplier = "safetensors", 1.0
    bad = int((~torch.isfinite(tensor)).sum())
    if bad and not allow_nonfinite:
        raise NonFiniteLatentError(f"{name}: the latent holds {bad} NaN/Inf values; refusing to use it "
                                   "(allow it explicitly to go on anyway)")
    unsampler = None
    if METADATA_KEY in header.metadata:
        try:
            unsampler = json.loads(header.metadata[METADATA_KEY])
        except json.JSONDecodeError:
            unsampler = None
    return LatentFile(path=path, tensor=tensor.contiguous(), kind=kind, tensor_name=tname, stored_dtype=info.dtype,
                      multiplier=multiplier, sha256=file_sha256(path), metadata=dict(header.metadata),
                      unsampler=unsampler, nonfinite=bad)


def latent_header_bytes(shape, metadata: Optional[dict] = None) -> bytes:
    """The safetensors header of a ``.latent`` holding one float32 tensor of ``shape`` and the marker."""
    nbytes = 4
    for s in shape:
        nbytes *= int(s)
    head = {}
    if metadata:
        head["__metadata__"] = {str(k): (v if isinstance(v, str) else json.dumps(v)) for k, v in metadata.items()}
    head[MARKER_KEY] = {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}
    head[LATENT_KEY] = {"dtype": "F32", "shape": [int(s) for s in shape], "data_offsets": [0, nbytes]}
    raw = json.dumps(head, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    return len(raw).to_bytes(8, "little") + raw


def _default_mode() -> int:
    """0666 less the umask: what a plain open() would give (mkstemp's 0600 would hide exports from ComfyUI
    running as another user)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _disk_error(path, e: OSError) -> ResourceError:
    if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return ResourceError(f"disk full while writing {os.path.basename(path)}: nothing was saved; "
                             "free some space or export fewer frames")
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return ResourceError(f"cannot write {path}: permission denied")
    return ResourceError(f"cannot write {os.path.basename(path)}: {e.strerror or e}")


class LatentWriter:
    """Stream a ``.latent`` to disk: header first, then frames in order, then an atomic rename.

    Use as a context manager; leaving the block by an exception removes the temporary file.
    """

    def __init__(self, path, shape, metadata: Optional[dict] = None, overwrite: bool = False):
        self.path = os.path.abspath(os.fspath(path))
        self.shape = tuple(int(s) for s in shape)
        self.total = 4
        for s in self.shape:
            self.total *= s
        self.written = 0
        folder = os.path.dirname(self.path)
        if os.path.isdir(self.path):
            raise ResourceError(f"{self.path} is a folder")
        if os.path.exists(self.path) and not overwrite:
            raise ResourceError(f"{self.path} already exists (choose another name, or allow overwriting)")
        if not os.path.isdir(folder):
            raise ResourceError(f"cannot write {self.path}: the folder {folder} does not exist")
        header = latent_header_bytes(self.shape, metadata)
        try:
            fd, self.tmp = tempfile.mkstemp(prefix=".unsampler-", suffix=".partial", dir=folder)
        except OSError as e:
            raise _disk_error(self.path, e) from None
        self._f = os.fdopen(fd, "wb", buffering=0)
        self._closed = False
        try:
            self._write_all(header)
        except BaseException:
            self.abort()
            raise

    def _write_all(self, data) -> None:
        mv = memoryview(data).cast("B")
        try:
            while mv:
                n = self._f.write(mv)
                mv = mv[n:]
        except OSError as e:
            raise _disk_error(self.path, e) from None

    def write(self, frames) -> None:
        """Append float32 data (a tensor or array, any shape; C order) to the tensor region."""
        if isinstance(frames, torch.Tensor):
            frames = frames.detach().to("cpu", torch.float32).contiguous().numpy()
        arr = np.ascontiguousarray(frames, dtype="<f4")
        if self.written + arr.nbytes > self.total:
            raise ValueError("more data than the declared shape")
        self._write_all(arr)
        self.written += arr.nbytes

    def commit(self) -> str:
        if self.written != self.total:
            self.abort()
            raise ValueError(f"incomplete latent: wrote {self.written} of {self.total} bytes")
        try:
            os.fsync(self._f.fileno())
            os.chmod(self.tmp, _default_mode())
            self._f.close()
            self._closed = True
            os.replace(self.tmp, self.path)
        except OSError as e:
            self.abort()
            raise _disk_error(self.path, e) from None
        return self.path

    def abort(self) -> None:
        if not self._closed:
            try:
                self._f.close()
            except OSError:
                pass
            self._closed = True
        try:
            os.unlink(self.tmp)
        except FileNotFoundError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.abort()
        return False


def write_latent(path, tensor: torch.Tensor, metadata: Optional[dict] = None, overwrite: bool = False,
                 chunk_bytes: int = 64 << 20) -> str:
    """Write ``tensor`` as a ComfyUI ``.latent`` (float32, contiguous, marker, metadata), atomically."""
    t = tensor.detach().to("cpu", torch.float32).contiguous()
    flat = t.reshape(-1)
    per = max(1, chunk_bytes // 4)
    with LatentWriter(path, t.shape, metadata, overwrite=overwrite) as w:
        for i in range(0, flat.numel(), per):
            w.write(flat[i:i + per])
        return w.commit()
