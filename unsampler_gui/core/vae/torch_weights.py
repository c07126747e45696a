"""Tensor data from PyTorch pickles (``.pth``, ``.pt``, ``.ckpt``, ``.bin``) without running their code.

``core/detect/pickle_reader.py`` reads names and shapes; this module reads the tensors themselves, for
the few files a VAE needs (TAESD ``.pth`` files, a ``.ckpt`` checkpoint's ``first_stage_model.*``).
It unpickles with the detection's own bounded interpreter and allowlist: a tensor is a ``TensorStub``
record (storage, offset, size, stride). Nothing the file names is imported or called; a global off
the list still stops the load ("refusing to load: ...").

The bytes of a tensor are read only when ``materialize`` is asked for it, and only for the names
the caller selects, so a 4 GB checkpoint costs the VAE's 330 MB, not 4 GB. Every storage range is
checked against the storage's declared size before ``torch.as_strided`` sees it.

Formats (as PyTorch's ``torch.save`` writes them): the zip format (``<archive>/data.pkl`` plus
``<archive>/data/<key>`` entries) and the legacy format (a magic number, protocol and system-info
pickles, the object pickle, a pickled list of storage keys, then each storage as a little-endian
u64 element count and its bytes).
"""
from __future__ import annotations

import io
import os
import struct
import zipfile
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
import torch

from ..detect.pickle_reader import LEGACY_MAGIC, MAX_PICKLE_BYTES, RefusedPickle, StorageRef, TensorStub
from ..detect.pickle_reader import _contiguous_strides
from ..detect.pickle_reader import _unpickle as unpickle
from ..detect.pickle_reader import state_dict_of
from ..errors import BadFileError

#: safetensors-style dtype name (what ``StorageRef.dtype`` holds) -> torch dtype
TORCH_DTYPES = {
    "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}


def _unpickle(stream):
    """One pickle through the detection's bounded interpreter (nothing the file names is imported or called)."""
    try:
        return unpickle(stream)
    except BadFileError:
        raise
    except Exception as e:  # noqa: BLE001 - any malformed pickle becomes a clear message
        raise BadFileError(f"corrupt or unsupported pickle ({type(e).__name__}: {str(e)[:80]})") from None


def _lazy_tensors(obj) -> dict:
    state = state_dict_of(obj)
    return {str(k): v for k, v in state.items() if isinstance(v, TensorStub)}


def _build(name: str, t: TensorStub, flat: torch.Tensor) -> torch.Tensor:
    """``torch.as_strided`` over a storage's elements, after checking that it stays inside them."""
    if any(s < 0 for s in t.shape) or t.offset < 0:
        raise BadFileError(f"tensor {name!r}: negative size or offset")
    stride = t.stride if t.stride is not None else _contiguous_strides(t.shape)
    if len(stride) != len(t.shape) or any(s < 0 for s in stride):
        raise BadFileError(f"tensor {name!r}: its stride {stride} does not fit its shape {t.shape}")
    numel = int(np.prod(t.shape, dtype=np.int64)) if t.shape else 1
    last = t.offset + sum((n - 1) * s for n, s in zip(t.shape, stride)) if numel else t.offset - 1
    if last >= flat.numel():
        raise BadFileError(f"tensor {name!r} reaches past the end of its storage (corrupt file)")
    return torch.as_strided(flat, t.shape, stride, t.offset).clone() if numel else torch.empty(t.shape,
                                                                                                 dtype=flat.dtype)


def _storage_tensor(ref: StorageRef, raw: bytes) -> torch.Tensor:
    dtype = TORCH_DTYPES.get(ref.dtype)
    if dtype is None:
        raise BadFileError(f"a storage of type {ref.dtype} is not supported here")
    want = ref.numel * ref.itemsize
    if len(raw) < want:
        raise BadFileError("truncated file (a tensor storage ends early)")
    buf = bytearray(raw[:want])
    if not buf:
        return torch.empty(0, dtype=dtype)
    return torch.frombuffer(buf, dtype=dtype)


def materialize(tensors: dict, read_storage: Callable[[StorageRef], bytes], names: Iterable[str]) -> dict:
    """Real tensors for ``names`` (each a ``TensorStub`` in ``tensors``); each storage is read once."""
    cache: dict = {}
    out = {}
    for name in names:
        t = tensors[name]
        if t.storage is None:
            raise BadFileError(f"tensor {name!r} has no storage (a meta tensor): the file holds no weights for it")
        key = t.storage.key
        if key not in cache:
            cache[key] = _storage_tensor(t.storage, read_storage(t.storage))
        out[name] = _build(name, t, cache[key])
    return out


@dataclass
class TorchWeights:
    """A torch checkpoint's tensors, by name, with their bytes read on request."""

    path: str
    container: str
    tensors: dict  # name -> TensorStub
    read_storage: Callable[[StorageRef], bytes]

    def shapes(self) -> dict:
        return {k: t.shape for k, t in self.tensors.items()}

    def load(self, names: Iterable[str]) -> dict:
        return materialize(self.tensors, self.read_storage, names)


def _zip_weights(path: str) -> TorchWeights:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise BadFileError(f"{os.path.basename(path)}: corrupt zip checkpoint ({e})") from None
    with zf:
        names = zf.namelist()
        if any(n.endswith("constants.pkl") or "/code/" in n for n in names):
            raise BadFileError("a TorchScript archive, not a state dict (not supported)")
        pkls = [n for n in names if n == "data.pkl" or n.endswith("/data.pkl")]
        if not pkls:
            raise BadFileError("a zip file without data.pkl: not a PyTorch checkpoint")
        pkl = min(pkls, key=len)
        if zf.getinfo(pkl).file_size > MAX_PICKLE_BYTES:
            raise BadFileError(f"{pkl} is too large for a checkpoint index")
        try:
            raw = zf.read(pkl)
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise BadFileError(f"cannot read {pkl} ({e})") from None
    tensors = _lazy_tensors(_unpickle(io.BytesIO(raw)))
    root = pkl[: -len("data.pkl")]

    def read_storage(ref: StorageRef) -> bytes:
        try:
            with zipfile.ZipFile(path) as z:
                info = z.getinfo(f"{root}data/{ref.key}")
                if info.file_size < ref.numel * ref.itemsize:
                    raise BadFileError(f"storage {ref.key} is shorter than its tensors need (corrupt file)")
                with z.open(info) as f:
                    return f.read(ref.numel * ref.itemsize)
        except KeyError:
            raise BadFileError(f"storage {ref.key} is missing from the archive (corrupt file)") from None
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise BadFileError(f"cannot read storage {ref.key} ({e})") from None

    return TorchWeights(path, "torch zip pickle", tensors, read_storage)


def _legacy_offsets(f, tensors: dict, file_size: int) -> dict:
    keys = _unpickle(f)
    refs = {t.storage.key: t.storage for t in tensors.values() if t.storage is not None}
    offsets, pos = {}, f.tell()
    for key in keys if isinstance(keys, list) else []:
        key = str(key)
        f.seek(pos)
        head = f.read(8)
        if len(head) < 8 or key not in refs:
            break
        (count,) = struct.unpack("<q", head)
        if count < 0 or pos + 8 + count * refs[key].itemsize > file_size:
            raise BadFileError(f"storage {key} runs past the end of the file (truncated or corrupt)")
        offsets[key] = pos + 8
        pos += 8 + count * refs[key].itemsize
    return offsets


def _legacy_weights(path: str) -> TorchWeights:
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        first = _unpickle(f)
        if first != LEGACY_MAGIC:
            raise BadFileError("a bare pickle without tensor storages: it holds no weights to load")
        _unpickle(f)  # protocol version
        _unpickle(f)  # system info
        tensors = _lazy_tensors(_unpickle(f))
        offsets = _legacy_offsets(f, tensors, size)

    def read_storage(ref: StorageRef) -> bytes:
        if ref.key not in offsets:
            raise BadFileError(f"storage {ref.key} is missing (truncated or corrupt file)")
        with open(path, "rb") as fh:
            fh.seek(offsets[ref.key])
            return fh.read(ref.numel * ref.itemsize)

    return TorchWeights(path, "legacy torch pickle", tensors, read_storage)


def read_torch_weights(path) -> TorchWeights:
    """Open a torch checkpoint for reading tensors, refusing any code it asks to run."""
    p = os.fspath(path)
    try:
        if zipfile.is_zipfile(p):
            return _zip_weights(p)
        return _legacy_weights(p)
    except RefusedPickle as e:
        raise RefusedPickle(f"{os.path.basename(p)}: {e}") from None
    except BadFileError as e:
        msg = str(e)
        name = os.path.basename(p)
        raise BadFileError(msg if msg.startswith(name) else f"{name}: {msg}") from None
    except OSError as e:
        raise BadFileError(f"{os.path.basename(p)}: cannot read ({e.strerror or e})") from None
