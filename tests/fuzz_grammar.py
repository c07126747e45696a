"""Hypothesis strategies that write hostile inputs by their grammar: pickle opcode streams, torch zip
layouts and diffusers folders. Used by ``test_fuzz.py``.

A pickle is drawn as a tree of values (scalars of every encoding, containers built every way the
protocol allows, calls of allowed and forbidden globals, tensors over persistent storage ids with
any shapes, memo puts and gets, BUILD and SETITEMS on whatever is on the stack) and written opcode
by opcode, then sometimes mutated (an opcode dropped, repeated or inserted, the stream cut). A zip
is drawn as members (data.pkl from the pickle grammar or a valid state dict, storages of any size,
TorchScript markers), a compression method, flags, and byte flips in its headers.
"""
from __future__ import annotations

import io
import json
import struct
import zipfile

from hypothesis import strategies as st

import pickle_factory as pf

ALLOWED = [("collections", "OrderedDict"), ("collections", "defaultdict"), ("torch._utils", "_rebuild_tensor_v2"),
           ("torch._utils", "_rebuild_parameter"), ("torch._tensor", "_rebuild_from_type_v2"),
           ("torch", "Size"), ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "bytearray"),
           ("builtins", "list"), ("builtins", "dict"), ("builtins", "int"), ("builtins", "complex"),
           ("builtins", "slice"), ("_codecs", "encode"), ("torch", "FloatStorage"), ("torch", "HalfStorage"),
           ("numpy.core.multiarray", "scalar"), ("numpy", "dtype"), ("argparse", "Namespace"),
           ("pytorch_lightning.callbacks", "ModelCheckpoint")]
FORBIDDEN = [("os", "system"), ("posix", "system"), ("builtins", "eval"), ("builtins", "getattr"),
             ("builtins", "__import__"), ("subprocess", "Popen"), ("torch", "load"), ("copyreg", "_reconstructor"),
             ("builtins", "bytearray\nx"), ("", "")]
INTS = st.one_of(st.integers(-3, 300), st.integers(-2**31, 2**31 - 1), st.integers(-2**70, 2**70),
                 st.sampled_from([2**31 - 1, 2**27, -1, 2**62, 2**63, 2**64 + 1]))
TEXT = st.text(max_size=12) | st.sampled_from(["storage", "cpu", "state_dict", "__init__", "__defaults__",
                                                "\ud800", "\x1b[2J", "model.diffusion_model.x"])


@st.composite
def scalar(draw, ops: pf.Ops) -> None:
    kind = draw(st.sampled_from(["none", "bool", "int", "long1", "long4", "text_int", "float", "text_float",
                                 "str", "short_str", "bytes", "text_long", "unicode8"]))
    if kind == "none":
        ops.none()
    elif kind == "bool":
        ops.true() if draw(st.booleans()) else ops.false()
    elif kind == "int":
        ops.int(draw(INTS))
    elif kind == "long1":
        ops.long1(draw(INTS))
    elif kind == "long4":
        ops.long4(draw(INTS))
    elif kind == "text_int":
        ops.text_int(draw(st.sampled_from(["0", "01", "00", "-5", "x", "9" * 5000, "1" * 999, ""])))
    elif kind == "text_long":
        ops.text_long(draw(st.sampled_from(["12", "-1", "9" * 4400, "z"])))
    elif kind == "float":
        ops.float(draw(st.floats(allow_nan=True)))
    elif kind == "text_float":
        ops.raw(b"F" + draw(st.sampled_from([b"1.5", b"nan", b"inf", b"1e400", b"x", b"9" * 3000])) + b"\n")
    elif kind == "str":
        ops.str(draw(TEXT))
    elif kind == "short_str":
        ops.short_str(draw(st.text(max_size=8)))
    elif kind == "unicode8":
        b = draw(st.binary(max_size=8))
        ops.binunicode8(b, declared=draw(st.one_of(st.none(), st.integers(0, 2**63))))
    else:
        b = draw(st.binary(max_size=16))
        ops.binbytes(b, declared=draw(st.one_of(st.none(), st.integers(0, 2**32 - 1))))


@st.composite
def value(draw, ops: pf.Ops, depth: int = 0) -> None:
    """Push one value (of any kind the grammar knows) onto the pickle's stack."""
    if depth > 3:
        return draw(scalar(ops))
    kind = draw(st.sampled_from(["scalar", "scalar", "tuple", "tuple_n", "list", "dict", "set", "frozenset",
                                 "call", "tensor", "memo", "deep", "build", "setitems_on_global"]))
    if kind == "scalar":
        draw(scalar(ops))
    elif kind in ("tuple", "list", "dict", "set", "frozenset"):
        n = draw(st.integers(0, 3)) * (2 if kind == "dict" else 1)
        built = draw(st.sampled_from(["mark", "empty_then_add"]))
        if built == "mark" or kind in ("tuple", "frozenset"):
            ops.mark()
            for _ in range(n):
                draw(value(ops, depth + 1))
            {"tuple": ops.tuple, "list": ops.list, "dict": ops.dict, "set": ops.frozenset,
             "frozenset": ops.frozenset}[kind]()
        else:
            {"list": ops.empty_list, "dict": ops.empty_dict, "set": ops.empty_set}[kind]()
            ops.mark()
            for _ in range(n):
                draw(value(ops, depth + 1))
            {"list": ops.appends, "dict": ops.setitems, "set": ops.additems}[kind]()
    elif kind == "tuple_n":
        n = draw(st.integers(1, 3))
        for _ in range(n):
            draw(value(ops, depth + 1))
        [ops.tuple1, ops.tuple2, ops.tuple3][n - 1]()
    elif kind == "call":
        module, name = draw(st.sampled_from(ALLOWED + FORBIDDEN))
        ops.stack_global(module, name) if draw(st.booleans()) else ops.global_(module, name)
        ops.mark()
        for _ in range(draw(st.integers(0, 3))):
            draw(value(ops, depth + 1))
        ops.tuple()
        ops.reduce() if draw(st.booleans()) else ops.newobj()
    elif kind == "tensor":
        size = draw(st.lists(st.one_of(st.integers(-2, 5), st.sampled_from([2**40, 2**63, True])), max_size=4))
        numel = draw(st.one_of(st.integers(0, 64), st.sampled_from([-4, 2**62, 2**64])))
        offset = draw(st.one_of(st.integers(0, 4), st.sampled_from([-8, 2**63])))
        stride = draw(st.one_of(st.none(), st.lists(st.integers(-1, 8), max_size=4)))
        storage = draw(st.sampled_from(["HalfStorage", "FloatStorage", "BFloat16Storage", "Float8_e4m3fnStorage"]))
        pf.rebuild_tensor(ops, draw(st.sampled_from(["0", "1", "../x"])), numel, size, stride, offset, storage)
    elif kind == "memo":
        draw(value(ops, depth + 1))
        i = draw(st.one_of(st.integers(0, 3), st.sampled_from([2**27, 2**32 - 1])))
        ops.binput(i) if i < 256 else ops.long_binput(i)
        if draw(st.booleans()):
            ops.pop().binget(draw(st.one_of(st.just(i), st.integers(0, 5))))
    elif kind == "deep":
        n = draw(st.sampled_from([10, 255, 257, 3000]))
        ops.empty_tuple().raw(draw(st.sampled_from([b"\x85", b"]a", b"(t"])) * n)
    elif kind == "build":
        draw(value(ops, depth + 1))
        ops.none().empty_dict().str(draw(TEXT))
        draw(value(ops, depth + 1))
        ops.setitem().tuple2().build()
    else:  # SETITEMS / APPENDS / BUILD on something find_class returned
        ops.global_(*draw(st.sampled_from(ALLOWED)))
        ops.mark().str("k").int(1)
        draw(st.sampled_from([ops.setitems, ops.appends, ops.additems, lambda: ops.tuple().build()]))()


@st.composite
def pickle_stream(draw) -> bytes:
    """A whole pickle (PROTO, a value, STOP), sometimes mutated opcode-wise or cut."""
    ops = pf.Ops().proto(draw(st.sampled_from([0, 1, 2, 4, 5, 6])))
    if draw(st.booleans()):
        ops.frame(draw(st.integers(0, 1 << 20)))
    if draw(st.booleans()):  # a state dict at the top, as checkpoints have
        ops.empty_dict().str("state_dict")
        draw(value(ops))
        ops.setitem()
    else:
        draw(value(ops))
    ops.stop()
    data = bytearray(ops.bytes())
    for _ in range(draw(st.integers(0, 2))):
        op = draw(st.sampled_from(["drop", "repeat", "insert", "cut", "flip"]))
        i = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "drop":
            del data[i:i + 1]
        elif op == "repeat":
            data[i:i] = data[i:i + draw(st.integers(1, 4))]
        elif op == "insert":
            data[i:i] = draw(st.sampled_from([b"(", b"0", b"1", b"2", b"s", b"u", b"a", b"e", b"b", b"R", b"\x81",
                                              b"\x93", b"\x94", b"h\x00", b"t", b"\x85", b"Q", b"\x82\x01", b"."]))
        elif op == "cut":
            del data[i:]
        elif data:
            data[i] = draw(st.integers(0, 255))
    return bytes(data)


def valid_state_pickle(n: int) -> bytes:
    return pf.tensor_pickle({f"model.diffusion_model.b.{i}.weight": (str(i), 4, (2, 2)) for i in range(n)})


@st.composite
def torch_zip_bytes(draw) -> bytes:
    """A torch zip layout with any members, compression, flags and damage."""
    pkl = draw(st.one_of(st.builds(valid_state_pickle, st.integers(0, 4)), pickle_stream()))
    root = draw(st.sampled_from(["archive", "m", "", "a/b"]))
    prefix = f"{root}/" if root else ""
    method = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA]))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as z:
        if draw(st.integers(0, 9)) > 0:  # now and then no data.pkl at all
            z.writestr(f"{prefix}data.pkl", pkl)
        for i in range(draw(st.integers(0, 3))):
            z.writestr(f"{prefix}data/{i}", draw(st.binary(max_size=32)))
        extra = draw(st.sampled_from([None, "constants.pkl", "code/x.py", "version", "data.pkl"]))
        if extra:
            z.writestr(f"{prefix}{extra}" if extra != "data.pkl" else "other/data.pkl", b"x")
    raw = bytearray(buf.getvalue())
    damage = draw(st.sampled_from(["none", "encrypt", "method", "flip", "cut", "count"]))
    if damage == "encrypt":
        for sig, at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
            i = raw.find(sig)
            if i >= 0:
                raw[i + at] |= 1
    elif damage == "method":
        m = draw(st.sampled_from([1, 6, 9, 97, 99, 65535]))
        for sig, at in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
            i = raw.find(sig)
            if i >= 0:
                raw[i + at:i + at + 2] = struct.pack("<H", m)
    elif damage == "flip":
        for _ in range(draw(st.integers(1, 6))):
            raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
    elif damage == "cut":
        del raw[draw(st.integers(4, len(raw))):]
    elif damage == "count":  # the end record claims a huge directory
        i = raw.rfind(b"PK\x05\x06")
        if i >= 0:
            raw[i + 8:i + 12] = struct.pack("<HH", 0xFFFF, 0xFFFF)
    return bytes(raw)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8) | st.sampled_from(["v_prediction", "epsilon", "EDMEulerScheduler"]),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3), max_leaves=6)
CONFIG_KEYS = ["_class_name", "cross_attention_dim", "in_channels", "out_channels", "guidance_embeds", "num_layers",
               "block_out_channels", "image_dim", "added_kv_proj_dim"]
SCHEDULER_KEYS = ["_class_name", "prediction_type", "rescale_betas_zero_snr", "sigma_data", "shift", "flow_shift",
                  "use_dynamic_shifting"]


def _pipelines():
    from unsampler_gui.core.detect.diffusers_folder import COMPONENTS, PIPELINES

    return sorted(PIPELINES), sorted(COMPONENTS)


@st.composite
def diffusers_folder(draw) -> dict:
    """{relative path: bytes} of a diffusers folder: typed-looking JSON with values of any type."""
    pipelines, components = _pipelines()
    files = {}

    def obj(keys, cls_choices):
        d = draw(st.dictionaries(st.sampled_from(keys), JSON_VALUES, max_size=len(keys)))
        if draw(st.booleans()):
            d["_class_name"] = draw(st.sampled_from(cls_choices))
        return d

    def dumped(d):
        if draw(st.integers(0, 9)) == 0:
            return draw(st.sampled_from([b"", b"{", b"[1]", b"\xff\xfe", b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b"}",
                                         b'{"x": ' + b"9" * 5000 + b"}"]))
        return json.dumps(d).encode()

    lone = draw(st.booleans())
    if lone:
        files["config.json"] = dumped(obj(CONFIG_KEYS, components))
    else:
        files["model_index.json"] = dumped(obj(["_class_name"], pipelines))
        comp = draw(st.sampled_from(["unet", "transformer", "prior", "decoder"]))
        files[f"{comp}/config.json"] = dumped(obj(CONFIG_KEYS, components))
    if draw(st.booleans()):
        files["scheduler/scheduler_config.json"] = dumped(obj(SCHEDULER_KEYS, ["FlowMatchEulerDiscreteScheduler",
                                                                                "EDMDPMSolverMultistepScheduler"]))
    return files
