"""A strict, dependency-free reader for the safetensors container (header and byte ranges).

Reads only what it is asked for: the header, or one tensor's byte range. Every malformed input
raises ``BadFileError`` with a one-line reason (``errors.reading`` words whatever a check did not
foresee); nothing is ever executed or unpickled. Only regular files are opened (a FIFO would block).
Format: u64 little-endian header length N, N bytes of UTF-8 JSON, then the data region.
"""
from __future__ import annotations

import math
import json
import os
import struct
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .atomic import open_regular
from .errors import BadFileError, ResourceError, reading

#: Headers larger than this are refused (safetensors' own limit is 100 MB).
MAX_HEADER_BYTES = 100_000_000
#: Most dimensions a tensor may declare (torch's own limit is 64).
MAX_DIMS = 64

#: safetensors dtype name -> (numpy dtype or None, itemsize). BF16 has no numpy dtype; it is read as uint16.
DTYPES = {
    "F64": (np.dtype("<f8"), 8), "F32": (np.dtype("<f4"), 4), "F16": (np.dtype("<f2"), 2),
    "BF16": (np.dtype("<u2"), 2), "I64": (np.dtype("<i8"), 8), "I32": (np.dtype("<i4"), 4),
    "I16": (np.dtype("<i2"), 2), "I8": (np.dtype("i1"), 1), "U8": (np.dtype("u1"), 1),
    "BOOL": (np.dtype("?"), 1), "U16": (np.dtype("<u2"), 2), "U32": (np.dtype("<u4"), 4),
    "U64": (np.dtype("<u8"), 8), "F8_E4M3": (None, 1), "F8_E5M2": (None, 1),
}


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str
    shape: tuple
    start: int  # absolute file offsets of the data
    end: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class SafetensorsHeader:
    path: str
    file_size: int
    header_size: int
    tensors: dict  # name -> TensorInfo, in header order
    metadata: dict  # __metadata__ (str -> str), {} when absent

    @property
    def data_start(self) -> int:
        return 8 + self.header_size


#: What a file is, by its first bytes, for the message when it is not safetensors.
_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "a PNG picture"), (b"\xff\xd8\xff", "a JPEG picture"),
               (b"GIF87a", "a GIF picture"), (b"GIF89a", "a GIF picture"), (b"BM", "a BMP picture"),
               (b"II*\x00", "a TIFF picture"), (b"MM\x00*", "a TIFF picture"),
               (b"PK\x03\x04", "a zip archive (a PyTorch .pt/.ckpt file is one)"),
               (b"\x80\x02", "a Python pickle (an old PyTorch file)"), (b"GGUF", "a GGUF model file"),
               (b"\x1f\x8b", "a gzip archive"), (b"%PDF", "a PDF document"), (b"{", "JSON text"))


def looks_like(head: bytes) -> str:
    """What the first bytes say the file is ("a PNG picture", ...), or "" when they say nothing."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "a WebP picture"
    for magic, what in _SIGNATURES:
        if head.startswith(magic):
            return what
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return ""
    return "a text file" if text.isprintable() or text.strip("\t\r\n ").isprintable() else ""


def _fail(path, why) -> BadFileError:
    return BadFileError(f"{os.path.basename(str(path))}: {why}")


def open_checked(path):
    """Open a regular file for binary reading, turning OS errors into clear messages (never blocks)."""
    return open_regular(path)


def read_header(path, max_header: int = MAX_HEADER_BYTES) -> SafetensorsHeader:
    """Parse and validate a safetensors header. Reads 8 + N bytes, never the data."""
    with reading(path, "the safetensors header"):
        return _read_header(path, max_header)


def _read_header(path, max_header: int) -> SafetensorsHeader:
    with open_checked(path) as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            raise _fail(path, "the file is empty")
        head = f.read(16)
        if len(head) < 8:
            raise _fail(path, f"too short to be a safetensors file ({size} bytes)")
        f.seek(8)
        (n,) = struct.unpack("<Q", head[:8])
        looks = looks_like(head)
        if n == 0:
            raise _fail(path, "not a safetensors file (header length is 0)")
        if looks and (n > max_header or 8 + n > size or head[8:9] != b"{"):
            raise _fail(path, f"not a safetensors file: it looks like {looks}")
        if n > max_header:
            raise _fail(path, f"not a safetensors file (the header length its first 8 bytes give is over the "
                              f"{max_header} byte limit)")
        if 8 + n > size:
            raise _fail(path, f"truncated or not a safetensors file (header of {n} bytes runs past the end "
                              f"of the {size} byte file)")
        raw = f.read(n)
    return parse_header(path, raw, size)


def parse_header(path, raw: bytes, file_size: int) -> SafetensorsHeader:
    n = len(raw)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _fail(path, "corrupt safetensors header (not UTF-8 text)") from None
    try:
        obj = json.loads(text)
    except RecursionError:
        raise _fail(path, "corrupt safetensors header (nested too deeply)") from None
    except ValueError:  # not JSON, or a number with more digits than Python converts
        raise _fail(path, "corrupt safetensors header (not valid JSON)") from None
    if not isinstance(obj, dict):
        raise _fail(path, "corrupt safetensors header (not a JSON object)")
    meta = obj.pop("__metadata__", None) or {}
    if not isinstance(meta, dict):
        raise _fail(path, "corrupt safetensors header (__metadata__ is not an object)")
    meta = {str(k): (v if isinstance(v, str) else json.dumps(v)) for k, v in meta.items()}
    data_start = 8 + n
    data_len = file_size - data_start
    tensors = {}
    spans = []
    for name, t in obj.items():
        if not isinstance(t, dict):
            raise _fail(path, f"corrupt safetensors header (entry {name!r} is not an object)")
        dtype, shape, offs = t.get("dtype"), t.get("shape"), t.get("data_offsets")
        if not isinstance(dtype, str) or dtype not in DTYPES:
            raise _fail(path, f"tensor {name!r} has an unknown dtype {dtype!r}")
        if (not isinstance(shape, list) or len(shape) > MAX_DIMS
                or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)):
            raise _fail(path, f"tensor {name!r} has an invalid shape {_short(shape)}")
        if (not isinstance(offs, list) or len(offs) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offs)
                or not 0 <= offs[0] <= offs[1]):
            raise _fail(path, f"tensor {name!r} has invalid data offsets {_short(offs)}")
        numel = 1
        for s in shape:
            numel *= s
        if offs[1] - offs[0] != numel * DTYPES[dtype][1]:
            raise _fail(path, f"tensor {name!r}: its byte range does not match its shape {shape} and dtype {dtype}")
        if offs[1] > data_len:
            raise _fail(path, f"truncated file: tensor {name!r} runs past the end of the file")
        tensors[name] = TensorInfo(name, dtype, tuple(shape), data_start + offs[0], data_start + offs[1])
        if offs[1] > offs[0]:
            spans.append((offs[0], offs[1], name))
    spans.sort()
    for (a0, a1, an), (b0, b1, bn) in zip(spans, spans[1:]):
        if b0 < a1:
            raise _fail(path, f"corrupt safetensors header (tensors {an!r} and {bn!r} overlap)")
    return SafetensorsHeader(str(path), file_size, n, tensors, meta)


def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "...]"


def check_memory(path, nbytes: int, what: str) -> None:
    """Refuse to allocate ``nbytes`` for ``what`` when the machine does not have them free."""
    from .devices import available_memory, human_bytes  # devices imports torch; this module does not

    avail = available_memory()
    if avail is not None and nbytes > avail * 0.9:
        raise ResourceError(f"{os.path.basename(str(path))}: {what} needs {human_bytes(nbytes)} of memory but only "
                            f"{human_bytes(avail)} is free")


def read_tensor_array(header: SafetensorsHeader, name: str, max_bytes: Optional[int] = None) -> np.ndarray:
    """Read one tensor's bytes into a numpy array of its storage dtype (BF16 as uint16 bits)."""
    with reading(header.path, f"tensor {name!r}"):
        return _read_tensor_array(header, name, max_bytes)


def _read_tensor_array(header: SafetensorsHeader, name: str, max_bytes: Optional[int]) -> np.ndarray:
    info = header.tensors[name]
    nbytes = info.end - info.start
    if max_bytes is not None and nbytes > max_bytes:
        raise _fail(header.path, f"tensor {name!r} is {nbytes} bytes, more than the {max_bytes} allowed here")
    np_dtype, _ = DTYPES[info.dtype]
    if np_dtype is None:
        raise _fail(header.path, f"tensor {name!r}: dtype {info.dtype} is not supported here")
    check_memory(header.path, nbytes, f"tensor {name!r} {list(info.shape)}")
    with open_checked(header.path) as f:
        f.seek(info.start)
        buf = bytearray(nbytes)
        view = memoryview(buf)
        got = 0
        while got < nbytes:
            k = f.readinto(view[got:])
            if not k:
                raise _fail(header.path, "truncated file (the tensor data ends early)")
            got += k
    return np.frombuffer(buf, dtype=np_dtype).reshape(info.shape)
