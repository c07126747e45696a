"""Pickles and torch zip checkpoints written opcode by opcode, for the hostile-file tests and the fuzzers.

``Ops`` assembles a pickle from named opcodes (``Ops().proto(2).empty_dict().stop()``), so a test can
write exactly the stream an attacker would, including ones ``pickle.dumps`` never makes. ``tensor_pickle``
writes a torch-style state dict (``_rebuild_tensor_v2`` over persistent storage ids) with any shapes,
offsets and strides; ``torch_zip`` packs a ``data.pkl`` and its storages the way ``torch.save`` does.
"""
from __future__ import annotations

import io
import struct
import zipfile


class Ops:
    """A pickle byte stream, built one opcode at a time."""

    def __init__(self):
        self.buf = bytearray()

    def raw(self, b: bytes) -> "Ops":
        self.buf += b
        return self

    def bytes(self) -> bytes:
        return bytes(self.buf)

    # structure
    def proto(self, n=2): return self.raw(b"\x80" + bytes([n]))
    def stop(self): return self.raw(b".")
    def mark(self): return self.raw(b"(")
    def pop(self): return self.raw(b"0")
    def pop_mark(self): return self.raw(b"1")
    def dup(self): return self.raw(b"2")
    def frame(self, n): return self.raw(b"\x95" + struct.pack("<Q", n))

    # scalars
    def none(self): return self.raw(b"N")
    def true(self): return self.raw(b"\x88")
    def false(self): return self.raw(b"\x89")

    def int(self, v: int) -> "Ops":
        if 0 <= v < 256:
            return self.raw(b"K" + bytes([v]))
        if 0 <= v < 65536:
            return self.raw(b"M" + struct.pack("<H", v))
        if -2**31 <= v < 2**31:
            return self.raw(b"J" + struct.pack("<i", v))
        return self.long1(v)

    def long1(self, v: int) -> "Ops":
        n = (v.bit_length() + 8) // 8
        return self.raw(b"\x8a" + bytes([n]) + v.to_bytes(n, "little", signed=True))

    def long4(self, v: int) -> "Ops":
        n = (v.bit_length() + 8) // 8
        return self.raw(b"\x8b" + struct.pack("<i", n) + v.to_bytes(n, "little", signed=True))

    def text_int(self, digits: str): return self.raw(b"I" + digits.encode() + b"\n")
    def text_long(self, digits: str): return self.raw(b"L" + digits.encode() + b"L\n")
    def float(self, v: float): return self.raw(b"G" + struct.pack(">d", v))

    def str(self, s: str) -> "Ops":
        b = s.encode("utf-8", "surrogatepass")
        return self.raw(b"X" + struct.pack("<I", len(b)) + b)

    def short_str(self, s: str) -> "Ops":
        b = s.encode("utf-8", "surrogatepass")
        return self.raw(b"\x8c" + bytes([len(b)]) + b)

    def binunicode(self, b: bytes, declared=None):
        return self.raw(b"X" + struct.pack("<I", len(b) if declared is None else declared) + b)

    def binunicode8(self, b: bytes, declared=None):
        return self.raw(b"\x8d" + struct.pack("<Q", len(b) if declared is None else declared) + b)

    def binbytes(self, b: bytes, declared=None):
        return self.raw(b"B" + struct.pack("<I", len(b) if declared is None else declared) + b)

    # containers
    def empty_tuple(self): return self.raw(b")")
    def tuple(self): return self.raw(b"t")
    def tuple1(self): return self.raw(b"\x85")
    def tuple2(self): return self.raw(b"\x86")
    def tuple3(self): return self.raw(b"\x87")
    def empty_list(self): return self.raw(b"]")
    def append(self): return self.raw(b"a")
    def appends(self): return self.raw(b"e")
    def list(self): return self.raw(b"l")
    def empty_dict(self): return self.raw(b"}")
    def dict(self): return self.raw(b"d")
    def setitem(self): return self.raw(b"s")
    def setitems(self): return self.raw(b"u")
    def empty_set(self): return self.raw(b"\x8f")
    def additems(self): return self.raw(b"\x90")
    def frozenset(self): return self.raw(b"\x91")

    # memo
    def binput(self, i): return self.raw(b"q" + bytes([i])) if i < 256 else self.long_binput(i)
    def long_binput(self, i): return self.raw(b"r" + struct.pack("<I", i))
    def binget(self, i): return self.raw(b"h" + bytes([i])) if i < 256 else self.long_binget(i)
    def long_binget(self, i): return self.raw(b"j" + struct.pack("<I", i))
    def memoize(self): return self.raw(b"\x94")

    # calls
    def global_(self, module: str, name: str): return self.raw(b"c" + f"{module}\n{name}\n".encode())
    def stack_global(self, module: str, name: str): return self.short_str(module).short_str(name).raw(b"\x93")
    def reduce(self): return self.raw(b"R")
    def build(self): return self.raw(b"b")
    def newobj(self): return self.raw(b"\x81")
    def binpersid(self): return self.raw(b"Q")


def storage_pid(ops: Ops, key: str, numel: int, storage: str = "HalfStorage") -> Ops:
    """Push torch's persistent id ``("storage", torch.<storage>, key, "cpu", numel)`` and load it."""
    ops.mark().str("storage").global_("torch", storage).str(key).str("cpu").int(numel).tuple()
    return ops.binpersid()


def rebuild_tensor(ops: Ops, key: str, numel: int, size, stride=None, offset=0, storage="HalfStorage") -> Ops:
    """Push ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())``."""
    if stride is None:
        stride, acc = [], 1
        for s in reversed(size):
            stride.append(acc)
            acc *= max(int(s), 1) if isinstance(s, int) else 1
        stride = stride[::-1]
    ops.global_("torch._utils", "_rebuild_tensor_v2").mark()
    storage_pid(ops, key, numel, storage)
    ops.int(offset)
    _tuple_of(ops, size)
    _tuple_of(ops, stride)
    ops.false().global_("collections", "OrderedDict").empty_tuple().reduce().tuple().reduce()
    return ops


def _tuple_of(ops: Ops, values) -> None:
    ops.mark()
    for v in values:
        ops.int(v) if isinstance(v, int) else ops.str(str(v))
    ops.tuple()


def tensor_pickle(tensors: dict, wrap_state_dict: bool = True) -> bytes:
    """A protocol-2 pickle of ``{name: tensor}``; each value is ``(key, numel, size[, stride, offset, storage])``."""
    ops = Ops().proto(2)
    if wrap_state_dict:
        ops.empty_dict().str("state_dict")
    ops.global_("collections", "OrderedDict").empty_tuple().reduce().mark()
    for name, spec in tensors.items():
        key, numel, size, *rest = spec
        stride = rest[0] if len(rest) > 0 else None
        offset = rest[1] if len(rest) > 1 else 0
        storage = rest[2] if len(rest) > 2 else "HalfStorage"
        ops.str(name)
        rebuild_tensor(ops, key, numel, size, stride, offset, storage)
    ops.setitems()
    if wrap_state_dict:
        ops.setitem()
    return ops.stop().bytes()


def torch_zip(path, data_pkl: bytes, storages: dict | None = None, root: str = "archive",
              compression=zipfile.ZIP_STORED, member_flags: int = 0, method: int | None = None) -> None:
    """Write a torch-style zip: ``<root>/data.pkl``, ``<root>/data/<key>`` and ``<root>/version``.

    ``method`` overrides the compression method recorded for data.pkl (e.g. 9, deflate64, which
    Python cannot read); ``member_flags`` sets data.pkl's general-purpose flags (bit 0: encrypted).
    """
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as z:
        z.writestr(f"{root}/data.pkl", data_pkl)
        z.writestr(f"{root}/version", b"3\n")
        for key, data in (storages or {}).items():
            z.writestr(f"{root}/data/{key}", data)
    raw = bytearray(buf.getvalue())
    if member_flags or method is not None:
        name = f"{root}/data.pkl".encode()
        for sig, flag_at, method_at, name_at in ((b"PK\x03\x04", 6, 8, 30), (b"PK\x01\x02", 8, 10, 46)):
            i = raw.find(sig)
            while i != -1:
                if raw[i + name_at:i + name_at + len(name)] == name:
                    if member_flags:
                        raw[i + flag_at:i + flag_at + 2] = struct.pack("<H", member_flags)
                    if method is not None:
                        raw[i + method_at:i + method_at + 2] = struct.pack("<H", method)
                i = raw.find(sig, i + 4)
    with open(path, "wb") as f:
        f.write(bytes(raw))
