"""ComfyUI ``.latent`` files (and single-tensor ``.safetensors``): read, summarise, and write atomically.

The format is described in ``shared/reference/latent_io.md``: a safetensors file with ``latent_tensor``
and the empty ``latent_format_version_0`` marker. LoadLatent multiplies files without the marker by
``1/0.18215``; we do the same. Reading checks the memory a latent needs before allocating it;
``latent_summary`` describes a file of any size with one chunk in memory. Our ``unsampler`` metadata
is parsed as untrusted input (``parse_unsampler_metadata``). Writes stream through
``atomic.AtomicFile``: a temporary file in the target folder, handed to the disk as it is written,
fsynced and renamed into place only when complete, so a failed or cancelled write never leaves a
file that looks finished.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import sys
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

from . import direct_io
from .atomic import AtomicFile, disk_error
from .devices import human_bytes
from .errors import BadFileError, printable, reading
from .safetensors_io import DTYPES, SafetensorsHeader, check_memory, open_checked, read_header, read_tensor_array
from .stats import SUMMARY_CHUNK, ValueSummary, value_summary

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
    unsampler: Optional[dict] = None  # our export's parameters, when the file is one of ours (checked)
    nonfinite: int = 0
    notes: list = field(default_factory=list)  # what was ignored in the file's metadata

    @property
    def shape(self) -> tuple:
        return tuple(self.tensor.shape)

    @property
    def has_marker(self) -> bool:
        return self.kind == "latent"

    def summary(self) -> dict:
        """Kind, shape, sha256 and the finite values' min, max, mean and std (computed in chunks)."""
        values = value_summary(self.tensor)
        return {
            "kind": self.kind, "path": self.path, "shape": list(self.shape), "stored_dtype": self.stored_dtype,
            "marker": self.has_marker, "multiplier": self.multiplier, "sha256": self.sha256,
            "min": values["min"], "max": values["max"], "mean": values["mean"], "std": values["std"],
            "nonfinite": self.nonfinite, "unsampler": self.unsampler, "notes": list(self.notes),
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


@dataclass
class LatentHead:
    """A latent file's header, checked, before any of its values are read."""

    header: SafetensorsHeader
    tensor_name: str
    kind: str
    multiplier: float
    unsampler: Optional[dict]
    notes: list

    @property
    def info(self):
        return self.header.tensors[self.tensor_name]

    @property
    def float32_bytes(self) -> int:
        return self.info.numel * 4


def open_latent(path) -> LatentHead:
    """Read and check a latent's header: which tensor, its kind and multiplier, our metadata. No values."""
    path = os.fspath(path)
    name = os.path.basename(path)
    header = read_header(path)
    tname = _pick_tensor(header)
    info = header.tensors[tname]
    if info.dtype not in FLOAT_DTYPES:
        raise BadFileError(f"{name}: the latent is {info.dtype}; expected a float tensor (F32, F16, BF16)")
    validate_latent_shape(info.shape, name)
    if tname == LATENT_KEY:
        kind, multiplier = ("latent", 1.0) if MARKER_KEY in header.tensors else ("legacy latent", LEGACY_MULTIPLIER)
    else:
        kind, multiplier = "safetensors", 1.0
    unsampler, notes = parse_unsampler_metadata(header.metadata.get(METADATA_KEY))
    return LatentHead(header, tname, kind, multiplier, unsampler, notes)


def read_latent(path, allow_nonfinite: bool = False) -> LatentFile:
    """Read a ``.latent`` (or single-tensor ``.safetensors``) exactly as ComfyUI's LoadLatent does."""
    path = os.fspath(path)
    with reading(path, "the latent"):
        return _read_latent(path, allow_nonfinite)


def _read_latent(path: str, allow_nonfinite: bool) -> LatentFile:
    name = os.path.basename(path)
    head = open_latent(path)
    info = head.info
    stored = info.end - info.start
    check_memory(path, head.float32_bytes + (stored if info.dtype != "F32" else 0),
                 f"the latent {list(info.shape)}")
    arr = read_tensor_array(head.header, head.tensor_name)
    tensor = _to_float32(arr, info.dtype)
    del arr
    if head.multiplier != 1.0:
        tensor.mul_(head.multiplier)  # float32 multiply by float32(1/0.18215), as LoadLatent
    bad = count_nonfinite(tensor)
    if bad and not allow_nonfinite:
        raise NonFiniteLatentError(f"{name}: the latent holds {bad} NaN/Inf values; refusing to use it "
                                   "(allow it explicitly to go on anyway)")
    return LatentFile(path=path, tensor=tensor.contiguous(), kind=head.kind, tensor_name=head.tensor_name,
                      stored_dtype=info.dtype, multiplier=head.multiplier, sha256=file_sha256(path),
                      metadata=dict(head.header.metadata), unsampler=head.unsampler, nonfinite=bad, notes=head.notes)


def count_nonfinite(tensor: torch.Tensor, chunk: int = SUMMARY_CHUNK) -> int:
    """How many NaN/Inf values, counted a chunk at a time (no full-size mask)."""
    flat = tensor.reshape(-1)
    return sum(int((~torch.isfinite(flat[i:i + chunk])).sum()) for i in range(0, flat.numel(), chunk))


#: ``latent_summary`` reads at most this much of a tensor's data; beyond it the values are not computed.
SCAN_MAX_BYTES = 16 << 30
_SCAN_CHUNK = 8 << 20


def latent_summary(path, max_bytes: int = SCAN_MAX_BYTES) -> dict:
    """What ``LatentFile.summary()`` gives, streamed from the file: memory stays one chunk's.

    The values are read once, in chunks, for the statistics and the file's sha256 together. A tensor
    over ``max_bytes`` (a sparse file can declare terabytes) is described but not read: ``min``,
    ``max``, ``mean``, ``std`` and ``sha256`` are None and ``values_skipped`` says why.
    """
    path = os.fspath(path)
    with reading(path, "the latent"):
        head = open_latent(path)
        info = head.info
        doc = {"kind": head.kind, "path": path, "shape": list(info.shape), "stored_dtype": info.dtype,
               "marker": head.kind == "latent", "multiplier": head.multiplier, "sha256": None,
               "min": None, "max": None, "mean": None, "std": None, "nonfinite": 0, "unsampler": head.unsampler,
               "notes": list(head.notes)}
        nbytes = info.end - info.start
        if nbytes > max_bytes:
            doc["values_skipped"] = (f"not computed: the tensor holds {human_bytes(nbytes)}, more than the "
                                     f"{human_bytes(max_bytes)} read for a summary")
            return doc
        acc = ValueSummary()
        digest = _scan(path, head, acc)
        doc.update(acc.result())
        doc["sha256"] = digest
        return doc


def _scan(path: str, head: LatentHead, acc: ValueSummary) -> str:
    """sha256 of the whole file, feeding the tensor's values to ``acc`` as they pass."""
    info = head.info
    np_dtype = DTYPES[info.dtype][0]
    item = np_dtype.itemsize
    h = hashlib.sha256()
    carry = bytearray()
    pos = 0
    with open_checked(path) as f:
        while True:
            b = f.read(_SCAN_CHUNK)
            if not b:
                break
            h.update(b)
            a, z = max(pos, info.start), min(pos + len(b), info.end)
            if a < z:
                part = carry + b[a - pos:z - pos]  # a bytearray: writable, as torch.from_numpy wants
                usable = len(part) - len(part) % item
                if usable:
                    vals = _to_float32(np.frombuffer(part, dtype=np_dtype, count=usable // item), info.dtype)
                    if head.multiplier != 1.0:
                        vals = vals * head.multiplier
                    acc.add(vals)
                carry = part[usable:]
            pos += len(b)
    if pos < info.end:
        raise BadFileError(f"{os.path.basename(path)}: truncated file (the tensor data ends early)")
    return h.hexdigest()


#: The fields of an Unsampler export's metadata, and the type each must have (see ``export_metadata``).
_META_STR = ("family", "model", "sampler", "scheduler", "noise", "formula", "prediction", "version", "layout")
_META_INT = ("steps", "start_at_step", "end_at_step", "seed", "batch")
_META_FLOAT = ("shift", "scale_factor", "shift_factor")
_META_FLOAT_LISTS = ("schedule", "model_sigmas", "sigmas")
_MAX_META_STR = 1024
_MAX_INT = 2 ** 63


def parse_unsampler_metadata(text) -> tuple:
    """(dict or None, notes): an export's ``unsampler`` metadata, with every field of the wrong type dropped.

    The text comes from a file, so nothing in it is trusted: it must be a JSON object; each known
    field must have its type (a string, an int within 64 bits, a finite float, lists of those); an
    unknown field is kept only when it is a plain scalar. What was dropped is said in the notes.
    """
    if text is None:
        return None, []
    try:
        obj = json.loads(text)
    except RecursionError:
        return None, ["unsampler metadata is nested too deeply; ignored"]
    except ValueError:
        return None, ["unsampler metadata is not valid JSON; ignored"]
    if not isinstance(obj, dict):
        return None, [f"unsampler metadata is a {_json_type(obj)}, not an object; ignored"]
    out, dropped = {}, []
    for key, value in obj.items():
        ok, clean = _meta_field(key, value)
        if ok:
            out[key] = clean
        else:
            dropped.append(printable(key, 40))
    notes = [f"unsampler metadata: ignored {', '.join(dropped)} (wrong type)"] if dropped else []
    return out, notes


def _meta_field(key: str, v) -> tuple:
    def is_int(x):
        return isinstance(x, int) and not isinstance(x, bool) and -_MAX_INT < x < _MAX_INT

    def is_float(x):
        return (is_int(x) or isinstance(x, float)) and math.isfinite(x)

    if key in _META_STR:
        return isinstance(v, str) and len(v) <= _MAX_META_STR, v
    if key in _META_INT:
        return is_int(v), v
    if key == "normalize":
        return isinstance(v, bool), v
    if key in _META_FLOAT:
        return v is None or is_float(v), v
    if key in _META_FLOAT_LISTS:
        return isinstance(v, list) and all(is_int(x) or isinstance(x, float) for x in v), v
    if key == "frame_shape":
        return isinstance(v, list) and all(is_int(x) for x in v), v
    if key == "frames":
        return v == "all" or (isinstance(v, list) and all(is_int(x) for x in v)), v
    if key == "source":
        ok = isinstance(v, dict) and all(isinstance(v.get(k), (str, type(None))) and len(v.get(k) or "") <= _MAX_META_STR
                                         for k in ("name", "sha256"))
        return ok, {"name": v.get("name"), "sha256": v.get("sha256")} if ok else None
    scalar = v is None or isinstance(v, bool) or is_float(v) or (isinstance(v, str) and len(v) <= _MAX_META_STR)
    return scalar, v


def _json_type(v) -> str:
    return {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}.get(type(v), "value")


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


class LatentWriter:
    """Stream a ``.latent`` to disk: header first, then frames in order, then an atomic rename.

    Use as a context manager; leaving the block by an exception removes the temporary file. The
    frames are handed to the disk as they are written (``atomic.WriteBehind``), so ``commit()``'s
    fsync finds little left to do. Without ``overwrite``, ``commit()`` refuses to replace a file that
    appeared meanwhile (another run writing the same name).
    """

    def __init__(self, path, shape, metadata: Optional[dict] = None, overwrite: bool = False,
                 direct_buffers: int = 0):
        self.shape = tuple(int(s) for s in shape)
        self.total = 4
        for s in self.shape:
            self.total *= s
        self.written = 0
        header = latent_header_bytes(self.shape, metadata)
        self.data_offset = len(header)
        self._file = AtomicFile(path, overwrite=overwrite, write_behind=True)
        self._direct = None
        try:
            self.path, self.tmp = self._file.path, self._file.tmp
            if direct_buffers and self.total >= direct_io.DIRECT_MIN_BYTES and sys.byteorder == "little":
                self._direct = direct_io.DirectStream(self._file.fd, header, direct_buffers)
            else:
                self._file.write(header)
        except OSError as e:
            self._file.abort()
            raise disk_error(self._file.path, e) from None
        except BaseException:
            self._file.abort()
            raise

    @property
    def direct(self) -> bool:
        """True when the frames go to the disk without the page cache (``direct_io``): see ``lend``."""
        return self._direct is not None

    def lend(self, start: int, nbytes: int, slot: int = 0) -> Optional[torch.Tensor]:
        """A float32 buffer (the one of ``slot``) for the tensor region's bytes ``[start, start + nbytes)``, to
        make frames in and hand to ``put``; None when this writer is not direct (then ``write`` them)."""
        if self._direct is None:
            return None
        return self._direct.lend(self.data_offset + start, nbytes, slot).view(torch.float32)

    def put(self, region: torch.Tensor) -> None:
        """Write a buffer from ``lend``, in order."""
        nbytes = region.numel() * 4
        if self.written + nbytes > self.total:
            raise ValueError("more data than the declared shape")
        self._guarded(self._direct.put, region)
        self.written += nbytes

    def write(self, frames) -> None:
        """Append float32 data (a tensor or array, any shape; C order) to the tensor region."""
        if isinstance(frames, torch.Tensor):
            frames = frames.detach().to("cpu", torch.float32).contiguous().numpy()
        arr = np.ascontiguousarray(frames, dtype="<f4")
        if self.written + arr.nbytes > self.total:
            raise ValueError("more data than the declared shape")
        if self._direct is not None:
            self._guarded(self._direct.write, arr)
        else:
            self._file.write(arr)
        self.written += arr.nbytes

    def commit(self) -> str:
        if self.written != self.total:
            self.abort()
            raise ValueError(f"incomplete latent: wrote {self.written} of {self.total} bytes")
        if self._direct is not None:
            self._guarded(self._direct.close)
        return self._file.commit()

    def _guarded(self, fn, *args) -> None:
        """A direct write: an OS error removes the file and becomes the one disk message."""
        try:
            fn(*args)
        except OSError as e:
            self.abort()
            raise disk_error(self.path, e) from None

    def abort(self) -> None:
        self._file.abort()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.abort()
        return False


#: The old private name of ``atomic.disk_error``.
_disk_error = disk_error


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
