"""Tensor names and shapes from PyTorch pickles (.ckpt, .pt, .pth, .bin) without running their code.

A pickle can name any Python callable and have it called while loading; that is how a malicious
checkpoint runs ``os.system``. The pickle is run by ``unpickler.Unpickler``, which never imports or
calls anything from the file and bounds what a file can ask for (memory, depth, opcodes). Every
global the pickle names is resolved against an allowlist to *inert stand-ins* defined here, each
making a fresh value (a tensor becomes a ``TensorStub`` with its shape and dtype, a storage
reference a ``StorageRef``, Lightning or OmegaConf objects a ``Record``). A global that is not on
the list stops the load with "refusing to load: the pickle wants to call posix.system". Shapes,
offsets and storage sizes are checked before any arithmetic. Tensor data is never read, except the
bytes of one small tensor when a detection rule asks for its values.

Formats: the torch zip format (``<archive>/data.pkl`` plus ``<archive>/data/<key>`` storages), the
legacy torch format (magic number, then pickles, then storages) and a bare pickle. Every failure
leaves ``read_torch_zip`` / ``read_torch_pickle`` as one ``BadFileError`` (``errors.reading``).
"""
from __future__ import annotations

import math
import collections
import os
import struct
import zipfile
import zlib
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .state_dict import MAX_VALUE_BYTES, KeyIndex
from .unpickler import Limits, Record, RefusedPickle, Unpickler
from ..atomic import open_regular
from ..errors import BadFileError, printable, reading

LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
#: The largest data.pkl read (the pickle of a checkpoint with 10,000 tensors is about 1 MB).
MAX_PICKLE_BYTES = 64 << 20
#: A compressed data.pkl may unpack to at most this many times its stored size (beyond 1 MiB): a
#: checkpoint's pickle compresses about 10:1, a zip bomb 1000:1. torch itself stores it uncompressed.
MAX_PICKLE_RATIO = 100
#: Storage keys, dimensions and element counts beyond these are not a checkpoint's.
MAX_KEY_CHARS = 256
MAX_DIMS = 64
MAX_NUMEL = 1 << 62

#: torch storage class name -> (safetensors dtype name, numpy dtype or None, element size)
STORAGE_DTYPES = {
    "FloatStorage": ("F32", "<f4", 4), "HalfStorage": ("F16", "<f2", 2), "BFloat16Storage": ("BF16", "<u2", 2),
    "DoubleStorage": ("F64", "<f8", 8), "LongStorage": ("I64", "<i8", 8), "IntStorage": ("I32", "<i4", 4),
    "ShortStorage": ("I16", "<i2", 2), "CharStorage": ("I8", "i1", 1), "ByteStorage": ("U8", "u1", 1),
    "BoolStorage": ("BOOL", "?", 1), "UntypedStorage": ("U8", "u1", 1),
    "Float8_e4m3fnStorage": ("F8_E4M3", None, 1), "Float8_e5m2Storage": ("F8_E5M2", None, 1),
    "ComplexFloatStorage": ("C64", None, 8), "ComplexDoubleStorage": ("C128", None, 16),
}

__all__ = ["RefusedPickle", "read_torch_zip", "read_torch_pickle", "state_dict_of", "TensorStub", "StorageRef"]


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

    #: A BUILD on a tensor (its Python attributes) is accepted and ignored.
    accepts_state = True

    @property
    def dtype(self) -> str:
        return self.storage.dtype if self.storage else "F32"

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class StorageType:
    """Stands for ``torch.HalfStorage`` etc. in a pickle; only its name is used."""

    name: str


# ---- checks of what a pickle says about a tensor ---------------------------------------------------

def _bad(what: str, value) -> BadFileError:
    return BadFileError(f"a tensor with an invalid {what} {printable(repr(value), 60)}")


def _count(value, what: str) -> int:
    """A non-negative int below 2**62 (a size, offset or element count)."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < MAX_NUMEL:
        raise _bad(what, value)
    return value


def tensor_shape(value, what: str = "shape") -> tuple:
    """A shape (or stride): at most 64 non-negative ints whose product stays below 2**62."""
    if not isinstance(value, (tuple, list)) or len(value) > MAX_DIMS:
        raise _bad(what, value)
    out, n = [], 1
    for s in value:
        out.append(_count(s, what))
        n *= max(s, 1)
        if n >= MAX_NUMEL:
            raise _bad(what, value)
    return tuple(out)


# ---- the stand-ins: each makes a fresh, inert value ------------------------------------------------

def _rebuild_tensor(storage, storage_offset=0, size=(), stride=None, *rest):
    """Stand-in for torch._utils._rebuild_tensor_v2 (and v3): keeps shape, dtype and location."""
    ref = storage if isinstance(storage, StorageRef) else None
    shape = tensor_shape(size, "shape")
    strides = tensor_shape(stride, "stride") if stride is not None else None
    return TensorStub(shape, ref, _count(storage_offset, "storage offset"), strides)


def _rebuild_parameter(data, *rest):
    return data


def _rebuild_from_type(func, new_type, args, state=None):
    if func not in _REBUILDERS or not isinstance(args, tuple):
        raise RefusedPickle("refusing to load: _rebuild_from_type_v2 asked to call something that does not "
                            "rebuild a tensor")
    return func(*args)


def _rebuild_no_storage(dtype=None, size=(), *rest):
    return TensorStub(tensor_shape(size), None)


def _codecs_encode(text, encoding="latin1"):
    if not isinstance(text, str) or str(encoding).lower().replace("_", "-") not in ("latin1", "latin-1"):
        raise RefusedPickle("refusing to load: the pickle uses _codecs.encode in an unexpected way")
    return text.encode("latin1")


def _bytearray(source=b"", *rest):
    """bytearray(bytes) as protocol 2 pickles one; never bytearray(n), which would allocate n bytes."""
    if isinstance(source, (bytes, bytearray)):
        return bytearray(source)
    if isinstance(source, str) and rest and str(rest[0]).lower().replace("_", "-") in ("latin1", "latin-1"):
        return bytearray(source.encode("latin1"))
    raise RefusedPickle(f"refusing to load: the pickle asks for bytearray({printable(repr(source), 30)})")


def _ordered_dict(*args):
    d = collections.OrderedDict()
    if args:
        d.update(args[0])
    return d


def _plain_dict(*args):
    """defaultdict(factory) -> a plain dict: the factory is never called."""
    return {}


_CONTAINERS = (list, tuple, dict, set, frozenset)
_SCALARS = (int, float, bool, str)


def _builtin(kind: type):
    """A builtin type (a defaultdict factory, say) that builds only from values the pickle already holds."""
    def make(*args):
        if not args:
            return kind()
        (value,) = args
        ok = (isinstance(value, _CONTAINERS) if kind in _CONTAINERS
              else isinstance(value, _SCALARS) and not (isinstance(value, str) and len(value) > 1000))
        if not ok:
            raise RefusedPickle(f"refusing to load: the pickle asks for {kind.__name__}() of a "
                                f"{type(value).__name__}")
        return kind(value)
    make.__qualname__ = kind.__name__
    return make


_REBUILDERS = (_rebuild_tensor, _rebuild_parameter, _rebuild_no_storage)
_FUNCTIONS = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor, ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor, ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type,
    ("torch._utils", "_rebuild_meta_tensor_no_storage"): _rebuild_no_storage,
    ("collections", "OrderedDict"): _ordered_dict, ("collections", "defaultdict"): _plain_dict,
    ("_codecs", "encode"): _codecs_encode, ("torch", "Size"): _builtin(tuple),
    ("builtins", "slice"): slice, ("builtins", "bytearray"): _bytearray, ("builtins", "complex"): complex,
    **{("builtins", t.__name__): _builtin(t) for t in _CONTAINERS + _SCALARS},
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


def _record_maker(name: str):
    def make(*args, **kwargs):
        return Record(name, args)
    return make


def find_class(module: str, name: str):
    """The stand-in for a global the pickle names; ``RefusedPickle`` for anything not on the allowlist."""
    module = {"__builtin__": "builtins", "copy_reg": "copyreg"}.get(module, module)  # protocol-2 names
    key = (module, name)
    if key in _FUNCTIONS:
        return _FUNCTIONS[key]
    if module == "torch" and name in STORAGE_DTYPES:
        return StorageType(name)
    if _is_opaque(module, name):
        return _record_maker(f"{module}.{name}")
    raise RefusedPickle(f"refusing to load: the pickle wants to call {printable(module, 80)}.{printable(name, 80)}")


def persistent_load(pid) -> StorageRef:
    """torch's ``("storage", torch.<Type>Storage, key, location, numel)``, checked."""
    if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
        raise RefusedPickle(f"refusing to load: unexpected persistent id {printable(repr(pid), 60)}")
    stype = pid[1].name if isinstance(pid[1], StorageType) else "UntypedStorage"
    key = pid[2]
    if not isinstance(key, (str, int)) or isinstance(key, bool) or len(str(key)) > MAX_KEY_CHARS:
        raise BadFileError(f"a storage with an invalid key {printable(repr(key), 60)}")
    dtype, np_dtype, itemsize = STORAGE_DTYPES[stype]
    return StorageRef(str(key), dtype, np_dtype, itemsize, _count(pid[4], "storage size"))


def _unpickle(source, max_bytes: int = MAX_PICKLE_BYTES) -> object:
    """Run one pickle from bytes or a file; a file is left just past the pickle (the next one starts there)."""
    u = Unpickler(source, find_class, persistent_load, Limits(max_bytes=max_bytes))
    value = u.load()
    if not isinstance(source, (bytes, bytearray, memoryview)):
        source.seek(u.end)
    return value


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
        numel = t.numel  # shape, offset and storage size were checked when the pickle was read
        contiguous = t.stride is None or numel <= 1 or tuple(t.stride) == _contiguous_strides(t.shape)
        nbytes = (t.offset + numel) * t.storage.itemsize
        if not contiguous or nbytes > MAX_VALUE_BYTES or t.offset + numel > t.storage.numel:
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
    with reading(path, "the checkpoint"):
        return _read_torch_zip(path)


_READABLE_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate", zipfile.ZIP_BZIP2: "bzip2",
                     zipfile.ZIP_LZMA: "lzma"}


def _member_bytes(zf: zipfile.ZipFile, member: str, limit: int) -> bytes:
    """One zip member's bytes, after checking what it declares (size, ratio, method, encryption)."""
    info = zf.getinfo(member)
    if info.flag_bits & 0x1:
        raise BadFileError(f"{member} is encrypted (a checkpoint never is)")
    if info.compress_type not in _READABLE_METHODS:
        raise BadFileError(f"{member} is compressed with zip method {info.compress_type}, which cannot be read "
                           "(torch stores it uncompressed)")
    if info.file_size > limit:
        raise BadFileError(f"{member} is {info.file_size} bytes, too large for a checkpoint index "
                           f"(at most {limit >> 20} MiB)")
    if info.compress_type != zipfile.ZIP_STORED and info.file_size > max(1 << 20, MAX_PICKLE_RATIO * info.compress_size):
        raise BadFileError(f"{member} would unpack {info.compress_size} bytes into {info.file_size}: a zip bomb, "
                           "not a checkpoint")
    try:
        with zf.open(info) as f:
            raw = f.read(info.file_size + 1)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as e:
        raise BadFileError(f"{member} is corrupt (its compressed data does not unpack: "
                           f"{type(e).__name__})") from None
    if len(raw) != info.file_size:
        raise BadFileError(f"{member} is corrupt (it unpacks to {len(raw)} bytes, not {info.file_size})")
    return raw


#: A torch zip holds one member per storage plus a few; more than this is not a checkpoint's directory.
MAX_ZIP_MEMBERS = 1_000_000


def _check_directory(fh, name: str) -> None:
    """Refuse a zip whose directory declares more members than any checkpoint has, before it is read."""
    end_record = getattr(zipfile, "_EndRecData", None)  # the reader zipfile itself uses
    if end_record is None:
        return
    rec = end_record(fh)
    if rec and rec[4] > MAX_ZIP_MEMBERS:  # _ECD_ENTRIES_TOTAL
        raise BadFileError(f"{name}: the zip directory lists {rec[4]} members; not a checkpoint")
    fh.seek(0)


def _read_torch_zip(path: str) -> KeyIndex:
    name = os.path.basename(path)
    with open_regular(path) as fh:
        _check_directory(fh, name)
        try:
            zf = zipfile.ZipFile(fh)
        except zipfile.BadZipFile as e:
            raise BadFileError(f"{name}: corrupt zip checkpoint ({printable(e, 80)})") from None
        with zf:
            pkl = _zip_pickle_name(zf.namelist())
            raw = _member_bytes(zf, pkl, MAX_PICKLE_BYTES)
    tensors = _tensors(state_dict_of(_unpickle(raw, max(1, len(raw)))))
    root = pkl[: -len("data.pkl")]

    def read_storage(ref: StorageRef, nbytes: int):
        try:
            with open_regular(path) as fh, zipfile.ZipFile(fh) as z:
                member = f"{root}data/{ref.key}"
                if member not in z.NameToInfo:
                    return None
                info = z.getinfo(member)
                if info.flag_bits & 0x1 or info.compress_type not in _READABLE_METHODS:
                    return None
                with z.open(info) as f:
                    return f.read(nbytes)
        except (BadFileError, KeyError, zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError,
                RuntimeError):
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
    with reading(path, "the checkpoint"):
        return _read_torch_pickle(path)


def _read_torch_pickle(path: str) -> KeyIndex:
    with open_regular(path) as f:
        first = _unpickle(f)
        if type(first) is not int or first != LEGACY_MAGIC:
            return _index(_tensors(state_dict_of(first)), "pickle", None)
        _unpickle(f)  # protocol version
        _unpickle(f)  # sys info
        tensors = _tensors(state_dict_of(_unpickle(f)))
        offsets = _legacy_offsets(f, tensors)

    def read_storage(ref: StorageRef, nbytes: int):
        if ref.key not in offsets:
            return None
        try:
            with open_regular(path) as fh:
                fh.seek(offsets[ref.key])
                return fh.read(nbytes)
        except (BadFileError, OSError):
            return None

    return _index(tensors, "legacy torch pickle", _values_reader(read_storage, tensors))
