"""Tensor names and shapes from PyTorch pickles (.ckpt, .pt, .pth, .bin) without running their code.

A pickle can name any Python callable and have it called while loading; that is how a malicious
checkpoint runs ``os.system``. ``SafeUnpickler`` never imports or calls anything from the file: every
global the pickle names is resolved against an allowlist to *inert stand-ins* defined here (a tensor
becomes a ``TensorStub`` with its shape and dtype, a storage reference a ``StorageRef``, Lightning
or OmegaConf objects an ``Opaque`` record). A global that is not on the list stops the load with
"refusing to load: the pickle wants to call posix.system". Tensor data is never read, except the
bytes of one small tensor when a detection rule asks for its values.

Formats: the torch zip format (``<archive>/data.pkl`` plus ``<archive>/data/<key>`` storages), the
legacy torch format (magic number, then pickles, then storages) and a bare pickle.
"""
from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .state_dict import MAX_VALUE_BYTES, KeyIndex
from ..errors import BadFileError

LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
MAX_PICKLE_BYTES = 256 << 20

#: torch storage class name -> (safetensors dtype name, numpy dtype or None, element size)
STORAGE_DTYPES = {
    "FloatStorage": ("F32", "<f4", 4), "HalfStorage": ("F16", "<f2", 2), "BFloat16Storage": ("BF16", "<u2", 2),
    "DoubleStorage": ("F64", "<f8", 8), "LongStorage": ("I64", "<i8", 8), "IntStorage": ("I32", "<i4", 4),
    "ShortStorage": ("I16", "<i2", 2), "CharStorage": ("I8", "i1", 1), "ByteStorage": ("U8", "u1", 1),
    "BoolStorage": ("BOOL", "?", 1), "UntypedStorage": ("U8", "u1", 1),
    "Float8_e4m3fnStorage": ("F8_E4M3", None, 1), "Float8_e5m2Storage": ("F8_E5M2", None, 1),
    "ComplexFloatStorage": ("C64", None, 8), "ComplexDoubleStorage": ("C128", None, 16),
}


class RefusedPickle(BadFileError):
    """The pickle asks for a callable that is not on the allowlist; nothing was run."""


@dataclass
class StorageRef:
    """A ``persistent_load`` storage reference: where a tensor's bytes are, never the bytes."""

    key: str
    dtype: str
    np_dtype: Optional[str]
    itemsize: int
    numel: int


@dataclass
class TensorStub:
    shape: tuple
    storage: Optional[StorageRef]
    offset: int = 0
    stride: Optional[tuple] = None

    @property
    def dtype(self) -> str:
        return self.storage.dtype if self.storage else "F32"


class Opaque:
    """An inert stand-in for an allowed non-tensor object (Lightning callbacks, OmegaConf, numpy scalars)."""

    def __init__(self, *args, **kwargs):
        self.args = args

    def __setstate__(self, state):
        self.state = state

    def __call__(self, *args, **kwargs):  # a REDUCE on an Opaque (e.g. numpy's scalar()) builds another one
        return Opaque(*args)


class StorageType:
    """Stands for ``torch.HalfStorage`` etc. in a pickle; only its name is used."""

    def __init__(self, name: str):
        self.name = name


def _rebuild_tensor(storage, storage_offset=0, size=(), stride=None, *rest):
    """Stand-in for torch._utils._rebuild_tensor_v2 (and v3): keeps shape, dtype and location."""
    ref = storage if isinstance(storage, StorageRef) else None
    return TensorStub(tuple(int(s) for s in size), ref, int(storage_offset), tuple(stride) if stride else None)


def _rebuild_parameter(data, *rest):
    return data


def _rebuild_from_type(func, new_type, args, state):
    return func(*args)


def _rebuild_no_storage(dtype=None, size=(), *rest):
    return TensorStub(tuple(size), None)


def _codecs_encode(text, encoding="latin1"):
    if not isinstance(text, str) or str(encoding).lower().replace("_", "-") not in ("latin1", "latin-1"):
        raise RefusedPickle("refusing to load: the pickle uses _codecs.encode in an unexpected way")
    return text.encode("latin1")


class _LenientDict(dict):
    def __init__(self, *args, **kwargs):  # defaultdict(factory) -> plain dict, the factory is never called
        super().__init__()


_FUNCTIONS = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor, ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor, ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type,
    ("torch._utils", "_rebuild_meta_tensor_no_storage"): _rebuild_no_storage,
    ("collections", "OrderedDict"): collections.OrderedDict, ("collections", "defaultdict"): _LenientDict,
    ("_codecs", "encode"): _codecs_encode, ("torch", "Size"): tuple,
    ("builtins", "set"): set, ("builtins", "frozenset"): frozenset, ("builtins", "slice"): slice,
    ("builtins", "bytearray"): bytearray, ("builtins", "complex"): complex,
}
#: Modules whose names may appear as inert records (training state saved beside the weights).
_OPAQUE_MODULES = ("pytorch_lightning", "lightning", "lightning_fabric", "omegaconf", "numpy", "typing")
_OPAQUE_EXACT = {("torch", "device"), ("torch", "dtype"), ("torch", "float16"), ("torch", "float32"),
                 ("torch", "bfloat16"), ("torch", "strided"), ("torch", "sparse_coo"), ("torch", "per_tensor_affine"),
                 ("builtins", "object"), ("torch.serialization", "_get_layout"), ("argparse", "Namespace"),
                 ("torch.torch_version", "TorchVersion")}


def _is_opaque(module: str, name: str) -> bool:
    """True for names that may be replaced by an inert record (nothing of theirs ever runs)."""
    return (module, name) in _OPAQUE_EXACT or any(module == m or module.startswith(m + ".") for m in _OPAQUE_MODULES)


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that resolves globals only to the inert stand-ins above and refuses everything else."""

    def find_class(self, module, name):
        module = {"__builtin__": "builtins", "copy_reg": "copyreg"}.get(module, module)  # protocol-2 names
        key = (module, name)
        if key in _FUNCTIONS:
            return _FUNCTIONS[key]
        if module == "torch" and name in STORAGE_DTYPES:
            return StorageType(name)
        if _is_opaque(module, name):
            return type(name, (Opaque,), {"__module__": "unsampler.inert"})
        raise RefusedPickle(f"refusing to load: the pickle wants to call {module}.{name}")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise RefusedPickle(f"refusing to load: unexpected persistent id {str(pid)[:60]}")
        stype = pid[1].name if isinstance(pid[1], StorageType) else "UntypedStorage"
        dtype, np_dtype, itemsize = STORAGE_DTYPES[stype]
        return StorageRef(str(pid[2]), dtype, np_dtype, itemsize, int(pid[4]))


def _unpickle(stream) -> object:
    try:
        return SafeUnpickler(stream).load()
    except BadFileError:
        raise
    except RecursionError:
        raise BadFileError("corrupt pickle (nested too deeply)") from None
    except Exception as e:  # noqa: BLE001 - any malformed pickle becomes a clear message
        raise BadFileError(f"corrupt or unsupported pickle ({type(e).__name__}: {str(e)[:80]})") from None


def state_dict_of(obj) -> dict:
    """ComfyUI's load_torch_file: ``obj["state_dict"]``, or the one value of a one-key dict, or ``obj``."""
    if not isinstance(obj, dict):
        raise BadFileError(f"the pickle holds a {type(obj).__name__}, not a state dict")
    if isinstance(obj.get("state_dict"), dict):
        return obj["state_dict"]
    if len(obj) == 1:
        only = next(iter(obj.values()))
        if isinstance(only, dict):
            return only
    return obj


def _tensors(state: dict) -> dict:
    return {str(k): v for k, v in state.items() if isinstance(v, TensorStub)}


def _values_reader(read_storage, tensors: dict):
    """A reader of one small tensor's values, given ``read_storage(ref, nbytes) -> bytes``."""

    def reader(name: str):
        t = tensors.get(name)
        if t is None or t.storage is None or t.storage.np_dtype is None:
            return None
        numel = int(np.prod(t.shape)) if t.shape else 1
        contiguous = t.stride is None or numel <= 1 or tuple(t.stride) == _contiguous_strides(t.shape)
        nbytes = (t.offset + numel) * t.storage.itemsize
        if not contiguous or nbytes > MAX_VALUE_BYTES:
            return None
        raw = read_storage(t.storage, nbytes)
        if raw is None or len(raw) < nbytes:
            return None
        arr = np.frombuffer(raw, dtype=np.dtype(t.storage.np_dtype), count=numel, offset=t.offset * t.storage.itemsize)
        return arr.reshape(t.shape)

    return reader


def _contiguous_strides(shape) -> tuple:
    strides, acc = [], 1
    for s in reversed(shape):
        strides.append(acc)
        acc *= s
    return tuple(reversed(strides))


def _index(tensors: dict, container: str, reader) -> KeyIndex:
    shapes = {k: t.shape for k, t in tensors.items()}
    dtypes = {k: t.dtype for k, t in tensors.items()}
    return KeyIndex(shapes, dtypes, container, {}, reader)


def _zip_pickle_name(names: list) -> str:
    if any(n.endswith("constants.pkl") or "/code/" in n for n in names):
        raise BadFileError("a TorchScript archive, not a checkpoint state dict (not supported)")
    pkls = [n for n in names if n == "data.pkl" or n.endswith("/data.pkl")]
    if not pkls:
        raise BadFileError("a zip file without data.pkl: not a PyTorch checkpoint")
    return min(pkls, key=len)


def read_torch_zip(path: str) -> KeyIndex:
    """Index a torch zip checkpoint: names and shapes from data.pkl; storages read only on request."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise BadFileError(f"{os.path.basename(path)}: corrupt zip checkpoint ({e})") from None
    with zf:
        pkl = _zip_pickle_name(zf.namelist())
        info = zf.getinfo(pkl)
        if info.file_size > MAX_PICKLE_BYTES:
            raise BadFileError(f"{pkl} is {info.file_size} bytes, too large for a checkpoint index")
        try:
            raw = zf.read(pkl)
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise BadFileError(f"{os.path.basename(path)}: cannot read {pkl} ({e})") from None
    tensors = _tensors(state_dict_of(_unpickle(io.BytesIO(raw))))
    root = pkl[: -len("data.pkl")]

    def read_storage(ref: StorageRef, nbytes: int):
        try:
            with zipfile.ZipFile(path) as z, z.open(f"{root}data/{ref.key}") as f:
                return f.read(nbytes)
        except (KeyError, zipfile.BadZipFile, OSError, EOFError):
            return None

    return _index(tensors, "torch zip pickle", _values_reader(read_storage, tensors))


def _legacy_offsets(f, tensors: dict) -> dict:
    """Byte offsets of the storages that follow a legacy torch pickle (each: u64 count, then bytes)."""
    keys = _unpickle(f)
    refs = {t.storage.key: t.storage for t in tensors.values() if t.storage}
    offsets, pos = {}, f.tell()
    for key in keys if isinstance(keys, list) else []:
        f.seek(pos)
        head = f.read(8)
        if len(head) < 8 or str(key) not in refs:
            break
        (count,) = struct.unpack("<q", head)
        offsets[str(key)] = pos + 8
        pos += 8 + max(count, 0) * refs[str(key)].itemsize
    return offsets


def read_torch_pickle(path: str) -> KeyIndex:
    """Index a legacy torch checkpoint or a bare pickle, with the same refusal of foreign code."""
    with open(path, "rb") as f:
        first = _unpickle(f)
        if first != LEGACY_MAGIC:
            return _index(_tensors(state_dict_of(first)), "pickle", None)
        _unpickle(f)  # protocol version
        _unpickle(f)  # sys info
        tensors = _tensors(state_dict_of(_unpickle(f)))
        offsets = _legacy_offsets(f, tensors)

    def read_storage(ref: StorageRef, nbytes: int):
        if ref.key not in offsets:
            return None
        with open(path, "rb") as fh:
            fh.seek(offsets[ref.key])
            return fh.read(nbytes)

    return _index(tensors, "legacy torch pickle", _values_reader(read_storage, tensors))
