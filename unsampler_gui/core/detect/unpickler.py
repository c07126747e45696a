"""A pickle interpreter that builds inert data only, with every resource a file can ask for bounded.

Python's own unpickler trusts its input in ways a checkpoint reader cannot: BUILD ``setattr``s on
whatever the stream names (so one file could change the reader for later ones), its memo grows to
any index a 9-byte file asks for, nested tuples make ``hash`` recurse in C until the process dies,
and text integers raise Python-internal errors. This interpreter runs the same opcodes (protocols
0 to 5) under these rules:

- globals are resolved only by the caller's ``find_class`` (an allowlist of stand-ins), and only
  what it returned may be called (REDUCE, NEWOBJ, INST, OBJ);
- nothing is ever mutated except containers this load created: SETITEM(S) only on a dict,
  APPEND(S) only on a list, ADDITEMS only on a set, and BUILD only on an object a call of this load
  made (``Record``s keep their state; dicts and tensors ignore it); anything else is refused;
- the memo is a dict (an index costs nothing), the stack, the number of opcodes and objects, the
  nesting depth of every container, text numbers and long integers all have limits (``Limits``);
- a value is never read past the end of the data, and reads from a file never go past ``max_bytes``.

Every failure is a ``BadFileError`` naming the opcode and its byte offset; nothing else escapes.
"""
from __future__ import annotations

import codecs
import struct
from dataclasses import dataclass
from typing import Callable, Optional

from ..errors import BadFileError


class RefusedPickle(BadFileError):
    """The pickle asks for something this reader never does (call unknown code, change shared state)."""


@dataclass(frozen=True)
class Limits:
    """What one pickle may ask for."""

    max_bytes: int = 64 << 20  # of pickle data read
    max_ops: int = 4_000_000  # opcodes run
    max_objects: int = 1_000_000  # containers, strings, calls, memo entries and container items made
    max_depth: int = 256  # nesting of containers (tuples of tuples, ...)
    max_int_bytes: int = 1024  # LONG4 length
    max_text_digits: int = 1000  # INT / LONG / GET / PUT as text
    max_line: int = 1 << 20  # one text argument (UNICODE, STRING, GLOBAL names)


class Record:
    """An inert object a call of this load made: the name asked for, its arguments and its state."""

    __slots__ = ("name", "args", "state", "items", "listitems")

    def __init__(self, name: str, args: tuple = ()):
        self.name, self.args = name, args
        self.state = None
        self.items = []  # SETITEMS on it
        self.listitems = []  # APPENDS on it

    def __repr__(self) -> str:
        return f"<{self.name}>"

    def __call__(self, *args, **kwargs) -> "Record":  # a REDUCE on a record (numpy's scalar(dtype, ...))
        return Record(self.name, args)


_MARK = object()
_OPNAMES = {
    0x80: "PROTO", 0x95: "FRAME", 0x2e: "STOP", 0x28: "MARK", 0x30: "POP", 0x31: "POP_MARK", 0x32: "DUP",
    0x4e: "NONE", 0x88: "NEWTRUE", 0x89: "NEWFALSE", 0x49: "INT", 0x4a: "BININT", 0x4b: "BININT1",
    0x4d: "BININT2", 0x4c: "LONG", 0x8a: "LONG1", 0x8b: "LONG4", 0x46: "FLOAT", 0x47: "BINFLOAT",
    0x53: "STRING", 0x54: "BINSTRING", 0x55: "SHORT_BINSTRING", 0x42: "BINBYTES", 0x43: "SHORT_BINBYTES",
    0x8e: "BINBYTES8", 0x96: "BYTEARRAY8", 0x56: "UNICODE", 0x8c: "SHORT_BINUNICODE", 0x58: "BINUNICODE",
    0x8d: "BINUNICODE8", 0x29: "EMPTY_TUPLE", 0x74: "TUPLE", 0x85: "TUPLE1", 0x86: "TUPLE2", 0x87: "TUPLE3",
    0x5d: "EMPTY_LIST", 0x6c: "LIST", 0x61: "APPEND", 0x65: "APPENDS", 0x7d: "EMPTY_DICT", 0x64: "DICT",
    0x73: "SETITEM", 0x75: "SETITEMS", 0x8f: "EMPTY_SET", 0x90: "ADDITEMS", 0x91: "FROZENSET",
    0x63: "GLOBAL", 0x93: "STACK_GLOBAL", 0x52: "REDUCE", 0x81: "NEWOBJ", 0x92: "NEWOBJ_EX", 0x69: "INST",
    0x6f: "OBJ", 0x62: "BUILD", 0x50: "PERSID", 0x51: "BINPERSID", 0x67: "GET", 0x68: "BINGET",
    0x6a: "LONG_BINGET", 0x70: "PUT", 0x71: "BINPUT", 0x72: "LONG_BINPUT", 0x94: "MEMOIZE",
    0x82: "EXT1", 0x83: "EXT2", 0x84: "EXT4", 0x97: "NEXT_BUFFER", 0x98: "READONLY_BUFFER",
}


class _Corrupt(Exception):
    """Raised inside an opcode; worded with the opcode and offset by ``load``."""


class Unpickler:
    """Run one pickle from ``source`` (bytes, or a binary file positioned at the pickle).

    ``find_class(module, name)`` returns a stand-in or raises ``RefusedPickle``; a stand-in is
    called with the pickle's arguments and must build a fresh value. ``persistent_load(pid)`` does
    the same for persistent ids. After ``load()``, ``end`` is the offset just past the pickle.
    """

    def __init__(self, source, find_class: Callable, persistent_load: Optional[Callable] = None,
                 limits: Limits = Limits()):
        self.find_class = find_class
        self.persistent_load = persistent_load
        self.limits = limits
        if isinstance(source, (bytes, bytearray, memoryview)):
            self._buf, self._file = bytes(source[:limits.max_bytes]), None
            self._complete = len(source) <= limits.max_bytes
        else:
            self._buf, self._file, self._complete = b"", source, False
        self._base = 0 if self._file is None else source.tell()
        self._taken = len(self._buf)  # bytes taken from the source so far
        self.pos = 0  # within _buf
        self.stack: list = []
        self.metastack: list = []
        self.memo: dict = {}
        self._objects = 0
        self._depth: dict = {}  # id -> depth of every container made (kept alive in _alive: ids stay theirs)
        self._alive: list = []
        self._callable: dict = {}  # id -> obj: what find_class returned
        self._fresh: dict = {}  # id -> obj: what a call of this load returned
        self._proto = 0

    @property
    def end(self) -> int:
        return self._base + self.pos

    # ---- reading -------------------------------------------------------------------------------

    def _more(self, need: int) -> None:
        """Make ``need`` bytes available from ``pos``, reading the file in chunks, within max_bytes."""
        have = len(self._buf) - self.pos
        if have >= need:
            return
        if self._file is None or self._complete:
            raise _Corrupt("the data ends in the middle of a value (truncated or corrupt)")
        room = self.limits.max_bytes - self._taken
        if need - have > room:
            raise RefusedPickle(f"refusing to load: the pickle is larger than {self.limits.max_bytes >> 20} MiB")
        want = min(room, max(need - have, 1 << 20))
        chunk = self._file.read(want)
        self._taken += len(chunk)
        if len(chunk) < want:
            self._complete = True
        self._buf = self._buf[self.pos:] + chunk
        self._base += self.pos
        self.pos = 0
        if len(self._buf) < need:
            raise _Corrupt("the data ends in the middle of a value (truncated or corrupt)")

    def _read(self, n: int) -> bytes:
        if n < 0:
            raise _Corrupt("a negative length")
        if n > self.limits.max_bytes:
            raise _Corrupt(f"a value of {n} bytes, more than the whole pickle may hold")
        self._more(n)
        b = self._buf[self.pos:self.pos + n]
        self.pos += n
        return b

    def _line(self) -> bytes:
        while True:
            i = self._buf.find(b"\n", self.pos, self.pos + self.limits.max_line)
            if i >= 0:
                b = self._buf[self.pos:i]
                self.pos = i + 1
                return b
            if len(self._buf) - self.pos >= self.limits.max_line:
                raise _Corrupt(f"a text argument longer than {self.limits.max_line} bytes")
            self._more(len(self._buf) - self.pos + 1)

    def _u(self, fmt: str, n: int):
        return struct.unpack(fmt, self._read(n))[0]

    # ---- bookkeeping ---------------------------------------------------------------------------

    def _count(self, n: int = 1) -> None:
        self._objects += n
        if self._objects > self.limits.max_objects:
            raise RefusedPickle(f"refusing to load: the pickle makes more than {self.limits.max_objects} objects")

    def _nest(self, obj, children) -> None:
        """Record ``obj``'s depth: one more than its deepest child; refuse past max_depth.

        Every object given here stays alive until the load ends, so an id always names its object.
        """
        depth = self._depth
        d = 1
        for c in children:
            cd = depth.get(id(c), 0)
            if cd >= d:
                d = cd + 1
        if d > self.limits.max_depth:
            raise RefusedPickle(f"refusing to load: the pickle's data is nested more than {self.limits.max_depth} deep")
        key = id(obj)
        if key not in depth:
            self._alive.append(obj)
            depth[key] = d
        elif d > depth[key]:
            depth[key] = d

    def _push_container(self, obj, children=()) -> None:
        self._count(1 + len(children))
        self._nest(obj, children)
        self.stack.append(obj)

    def _pop_mark(self) -> list:
        if not self.metastack:
            raise _Corrupt("no MARK before it")
        items = self.stack
        self.stack = self.metastack.pop()
        return items

    def _pop(self):
        if not self.stack:
            raise _Corrupt("the stack is empty")
        return self.stack.pop()

    def _top(self):
        if not self.stack:
            raise _Corrupt("the stack is empty")
        return self.stack[-1]

    # ---- calls ---------------------------------------------------------------------------------

    def _call(self, func, args, kwargs=None):
        if not isinstance(args, tuple):
            raise _Corrupt("call arguments that are not a tuple")
        allowed = self._callable.get(id(func)) is func or (isinstance(func, Record) and self._is_fresh(func))
        if not allowed:
            raise RefusedPickle(f"refusing to load: the pickle calls a {type(func).__name__} value, "
                                "which is not a callable it was allowed")
        try:
            value = func(*args, **(kwargs or {}))
        except BadFileError:
            raise
        except Exception:  # noqa: BLE001 - a stand-in given the wrong arguments
            raise _Corrupt(f"calling {getattr(func, '__qualname__', type(func).__name__)} failed") from None
        self._count(1)
        self._fresh[id(value)] = value
        self._nest(value, args)
        return value

    def _is_fresh(self, obj) -> bool:
        return self._fresh.get(id(obj)) is obj

    def _global(self, module, name):
        if not isinstance(module, str) or not isinstance(name, str):
            raise _Corrupt("a global named by something that is not text")
        obj = self.find_class(module, name)
        self._callable[id(obj)] = obj
        return obj

    # ---- the loop ------------------------------------------------------------------------------

    def load(self):
        ops, limit = 0, self.limits.max_ops
        op, start = None, 0
        dispatch = _TABLE
        try:
            while True:
                pos = self.pos
                if pos >= len(self._buf):
                    self._more(1)
                    pos = self.pos
                start = self._base + pos
                op = self._buf[pos]
                self.pos = pos + 1
                ops += 1
                if ops > limit:
                    raise RefusedPickle(f"refusing to load: the pickle runs more than {limit} opcodes")
                if op == 0x2e:  # STOP
                    return self._pop()
                dispatch[op](self)
        except RefusedPickle:
            raise
        except BadFileError:
            raise
        except _Corrupt as e:
            raise BadFileError(f"corrupt pickle: {_opname(op)} at byte {start}: {e}") from None
        except RecursionError:
            raise RefusedPickle("refusing to load: the pickle's data is nested too deeply") from None
        except MemoryError:
            raise RefusedPickle("refusing to load: the pickle needs more memory than there is") from None
        except (ValueError, TypeError, KeyError, IndexError, OverflowError, UnicodeError, struct.error):
            raise BadFileError(f"corrupt pickle: {_opname(op)} at byte {start} is malformed") from None


def _opname(op) -> str:
    return _OPNAMES.get(op, f"opcode 0x{op:02x}") if op is not None else "the start"


# ---- opcodes (each reads its argument, then changes the stack) -----------------------------------

def _proto(u: Unpickler):
    v = u._read(1)[0]
    if v > 5:
        raise _Corrupt(f"protocol {v} is not supported")
    u._proto = v


def _frame(u: Unpickler):
    u._read(8)  # framing is an optimisation hint; the data that follows is read as usual


def _mark(u: Unpickler):
    u.metastack.append(u.stack)
    u.stack = []
    if len(u.metastack) > u.limits.max_depth:
        raise RefusedPickle(f"refusing to load: the pickle nests MARKs more than {u.limits.max_depth} deep")


def _pop(u: Unpickler):
    if u.stack:
        u.stack.pop()
    else:
        u._pop_mark()


def _dup(u: Unpickler):
    u.stack.append(u._top())


def _const(value):
    def op(u: Unpickler):
        u.stack.append(value)
    return op


def _text_int(u: Unpickler, line: bytes) -> int:
    text = line.strip()
    if len(text) > u.limits.max_text_digits:
        raise RefusedPickle(f"refusing to load: an integer of {len(text)} digits "
                            f"(more than {u.limits.max_text_digits})")
    return int(text)


def _int(u: Unpickler):
    line = u._line()
    if line == b"00":
        u.stack.append(False)
    elif line == b"01":
        u.stack.append(True)
    else:
        u.stack.append(_text_int(u, line))


def _long(u: Unpickler):
    line = u._line()
    u.stack.append(_text_int(u, line[:-1] if line.endswith(b"L") else line))


def _long_n(size_fmt: str, size_n: int):
    def op(u: Unpickler):
        n = u._u(size_fmt, size_n)
        if n < 0:
            raise _Corrupt("a negative length")
        if n > u.limits.max_int_bytes:
            raise RefusedPickle(f"refusing to load: an integer of {n} bytes (more than {u.limits.max_int_bytes})")
        u.stack.append(int.from_bytes(u._read(n), "little", signed=True))
    return op


def _float(u: Unpickler):
    text = u._line()
    if len(text) > u.limits.max_text_digits:
        raise _Corrupt("a float of too many digits")
    u.stack.append(float(text))


def _string(u: Unpickler):
    data = u._line().rstrip()
    if len(data) < 2 or data[0] != data[-1] or data[0] not in b"\"'":
        raise _Corrupt("a STRING argument that is not quoted")
    u._count()
    u.stack.append(codecs.escape_decode(data[1:-1])[0].decode("latin1"))


def _counted(fmt: str, n: int, make):
    def op(u: Unpickler):
        size = u._u(fmt, n)
        u._count()
        u.stack.append(make(u._read(size)))
    return op


def _utf8(b: bytes) -> str:
    return b.decode("utf-8", "surrogatepass")


def _unicode(u: Unpickler):
    u._count()
    u.stack.append(u._line().decode("raw-unicode-escape"))


def _refused(what: str):
    def op(u: Unpickler):
        raise RefusedPickle(f"refusing to load: the pickle uses {what}")
    return op


def _tuple_n(n: int):
    def op(u: Unpickler):
        if len(u.stack) < n:
            raise _Corrupt("the stack is empty")
        items = tuple(u.stack[len(u.stack) - n:]) if n else ()
        del u.stack[len(u.stack) - n:]
        u._push_container(items, items)
    return op


def _tuple(u: Unpickler):
    items = tuple(u._pop_mark())
    u._push_container(items, items)


def _empty(factory):
    def op(u: Unpickler):
        u._push_container(factory())
    return op


def _list(u: Unpickler):
    items = u._pop_mark()
    u._push_container(items, items)


def _append_to(u: Unpickler, target, items: list) -> None:
    if type(target) is list:
        u._count(len(items))
        target.extend(items)
    elif isinstance(target, Record) and u._is_fresh(target):
        u._count(len(items))
        target.listitems.extend(items)
    else:
        raise RefusedPickle(f"refusing to load: the pickle appends to a {type(target).__name__} it did not create")
    u._nest(target, items)


def _append(u: Unpickler):
    value = u._pop()
    _append_to(u, u._top(), [value])


def _appends(u: Unpickler):
    items = u._pop_mark()
    _append_to(u, u._top(), items)


def _dict(u: Unpickler):
    items = u._pop_mark()
    if len(items) % 2:
        raise _Corrupt("an odd number of items for a dict")
    d = {}
    u._push_container(d)
    _set_items(u, d, items)


def _set_items(u: Unpickler, target, items: list) -> None:
    if len(items) % 2:
        raise _Corrupt("an odd number of items for a dict")
    if isinstance(target, dict):  # every dict on the stack was made by this load (find_class never gives one)
        u._count(len(items) // 2)
        for i in range(0, len(items), 2):
            target[items[i]] = items[i + 1]
    elif isinstance(target, Record) and u._is_fresh(target):
        u._count(len(items) // 2)
        target.items.extend(zip(items[::2], items[1::2]))
    else:
        raise RefusedPickle(f"refusing to load: the pickle sets items of a {type(target).__name__} "
                            "it did not create")
    u._nest(target, items)


def _setitem(u: Unpickler):
    value = u._pop()
    key = u._pop()
    _set_items(u, u._top(), [key, value])


def _setitems(u: Unpickler):
    items = u._pop_mark()
    _set_items(u, u._top(), items)


def _additems(u: Unpickler):
    items = u._pop_mark()
    target = u._top()
    if type(target) is not set:
        raise RefusedPickle(f"refusing to load: the pickle adds items to a {type(target).__name__}")
    u._count(len(items))
    target.update(items)
    u._nest(target, items)


def _frozenset(u: Unpickler):
    items = u._pop_mark()
    value = frozenset(items)
    u._push_container(value, items)


def _global(u: Unpickler):
    module = u._line().decode("utf-8")
    name = u._line().decode("utf-8")
    u.stack.append(u._global(module, name))


def _stack_global(u: Unpickler):
    name = u._pop()
    module = u._pop()
    u.stack.append(u._global(module, name))


def _reduce(u: Unpickler):
    args = u._pop()
    func = u._pop()
    u.stack.append(u._call(func, args))


def _newobj(u: Unpickler):
    args = u._pop()
    cls = u._pop()
    u.stack.append(u._call(cls, args))


def _newobj_ex(u: Unpickler):
    kwargs = u._pop()
    args = u._pop()
    cls = u._pop()
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise _Corrupt("keyword arguments that are not a dict of names")
    u.stack.append(u._call(cls, args, kwargs))


def _inst(u: Unpickler):
    module = u._line().decode("utf-8")
    name = u._line().decode("utf-8")
    cls = u._global(module, name)
    u.stack.append(u._call(cls, tuple(u._pop_mark())))


def _obj(u: Unpickler):
    args = u._pop_mark()
    if not args:
        raise _Corrupt("OBJ without a class")
    u.stack.append(u._call(args[0], tuple(args[1:])))


def _build(u: Unpickler):
    state = u._pop()
    inst = u._top()
    if not u._is_fresh(inst):
        raise RefusedPickle(f"refusing to load: the pickle changes a {type(inst).__name__} it did not create "
                            "(BUILD)")
    if isinstance(inst, Record):
        inst.state = state
        u._nest(inst, (state,))
    elif not (isinstance(inst, dict) or getattr(inst, "accepts_state", False)):
        raise RefusedPickle(f"refusing to load: the pickle sets the state of a {type(inst).__name__} (BUILD)")


def _persid(u: Unpickler):
    pid = u._line().decode("ascii")
    _persistent(u, pid)


def _binpersid(u: Unpickler):
    _persistent(u, u._pop())


def _persistent(u: Unpickler, pid) -> None:
    if u.persistent_load is None:
        raise RefusedPickle("refusing to load: the pickle refers to external data (a persistent id)")
    value = u.persistent_load(pid)
    u._count()
    u._fresh[id(value)] = value
    u.stack.append(value)


def _get_n(fmt: Optional[str], n: int):
    def op(u: Unpickler):
        i = _text_int(u, u._line()) if fmt is None else u._u(fmt, n)
        if i not in u.memo:
            raise _Corrupt(f"memo entry {i} was never stored")
        u.stack.append(u.memo[i])
    return op


def _put_n(fmt: Optional[str], n: int):
    def op(u: Unpickler):
        i = _text_int(u, u._line()) if fmt is None else u._u(fmt, n)
        if i < 0:
            raise _Corrupt("a negative memo index")
        u._count()
        u.memo[i] = u._top()
    return op


def _memoize(u: Unpickler):
    u._count()
    u.memo[len(u.memo)] = u._top()


_DISPATCH = {
    0x80: _proto, 0x95: _frame, 0x28: _mark, 0x30: _pop, 0x31: lambda u: u._pop_mark(), 0x32: _dup,
    0x4e: _const(None), 0x88: _const(True), 0x89: _const(False),
    0x49: _int, 0x4a: lambda u: u.stack.append(u._u("<i", 4)), 0x4b: lambda u: u.stack.append(u._read(1)[0]),
    0x4d: lambda u: u.stack.append(u._u("<H", 2)), 0x4c: _long, 0x8a: _long_n("<B", 1), 0x8b: _long_n("<i", 4),
    0x46: _float, 0x47: lambda u: u.stack.append(u._u(">d", 8)),
    0x53: _string, 0x54: _counted("<i", 4, lambda b: b.decode("latin1")),
    0x55: _counted("<B", 1, lambda b: b.decode("latin1")),
    0x42: _counted("<I", 4, bytes), 0x43: _counted("<B", 1, bytes), 0x8e: _counted("<Q", 8, bytes),
    0x96: _counted("<Q", 8, bytearray),
    0x56: _unicode, 0x8c: _counted("<B", 1, _utf8), 0x58: _counted("<I", 4, _utf8), 0x8d: _counted("<Q", 8, _utf8),
    0x29: _tuple_n(0), 0x74: _tuple, 0x85: _tuple_n(1), 0x86: _tuple_n(2), 0x87: _tuple_n(3),
    0x5d: _empty(list), 0x6c: _list, 0x61: _append, 0x65: _appends,
    0x7d: _empty(dict), 0x64: _dict, 0x73: _setitem, 0x75: _setitems,
    0x8f: _empty(set), 0x90: _additems, 0x91: _frozenset,
    0x63: _global, 0x93: _stack_global, 0x52: _reduce, 0x81: _newobj, 0x92: _newobj_ex, 0x69: _inst, 0x6f: _obj,
    0x62: _build, 0x50: _persid, 0x51: _binpersid,
    0x67: _get_n(None, 0), 0x68: _get_n("<B", 1), 0x6a: _get_n("<I", 4),
    0x70: _put_n(None, 0), 0x71: _put_n("<B", 1), 0x72: _put_n("<I", 4), 0x94: _memoize,
    0x82: _refused("the extension registry (EXT1)"), 0x83: _refused("the extension registry (EXT2)"),
    0x84: _refused("the extension registry (EXT4)"), 0x97: _refused("out-of-band buffers"),
    0x98: _refused("out-of-band buffers"),
}




def _unknown(u: Unpickler):
    raise _Corrupt("an unknown opcode")


_TABLE = [_DISPATCH.get(i, _unknown) for i in range(256)]

__all__ = ["Unpickler", "Limits", "Record", "RefusedPickle"]
