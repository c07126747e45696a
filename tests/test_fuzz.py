"""Fuzzing every reader of untrusted files: any exception but our own clear errors is a bug.

- safetensors and ``.latent`` (random bytes, mutated valid files, structured headers);
- pickles, by their grammar (``fuzz_grammar.pickle_stream``: opcode streams with every encoding,
  container, call, tensor, memo, BUILD and SETITEMS form, then mutated);
- torch zip checkpoints (``fuzz_grammar.torch_zip_bytes``: members, compression, flags, damage);
- diffusers folders (``fuzz_grammar.diffusers_folder``: configs with values of any JSON type).

Beyond "only ``UnsamplerError``", the pickle targets check that no file changed the reader: the
stand-ins are the same objects with the same attributes, and a legitimate checkpoint still reads.
Runs briefly in ``make test``; ``make fuzz`` sets UNSAMPLER_FUZZ_EXAMPLES for a longer run.
"""
import json
import math
import os
import struct

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fuzz_grammar as fg
from unsampler_gui.core.detect import detect_model
from unsampler_gui.core.detect import pickle_reader
from unsampler_gui.core.errors import UnsamplerError
from unsampler_gui.core.latent_io import latent_summary, read_latent, write_latent
from unsampler_gui.core.overrides import shift_problem
from unsampler_gui.core.safetensors_io import read_header

EXAMPLES = int(os.environ.get("UNSAMPLER_FUZZ_EXAMPLES", "150"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _valid_file(tmp_path) -> bytes:
    p = tmp_path / "seed.latent"
    write_latent(p, torch.randn(1, 4, 3, 5), {"unsampler": "{}"}, overwrite=True)
    return p.read_bytes()


def _read_all(path):
    for read in (read_latent, read_header, latent_summary):
        try:
            read(path)
        except UnsamplerError:
            pass


@SETTINGS
@given(data=st.binary(max_size=2048))
def test_random_bytes(tmp_path, data):
    p = tmp_path / "f.latent"
    p.write_bytes(data)
    _read_all(p)


@SETTINGS
@given(flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=12),
       cut=st.one_of(st.none(), st.integers(0, 10_000)))
def test_mutated_valid_file(tmp_path, flips, cut):
    data = bytearray(_valid_file(tmp_path))
    for pos, val in flips:
        data[pos % len(data)] = val
    if cut is not None:
        data = data[:cut % (len(data) + 1)]
    p = tmp_path / "m.latent"
    p.write_bytes(bytes(data))
    _read_all(p)


json_values = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=8),
                           lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4),
                           max_leaves=12)


@SETTINGS
@given(entry=st.dictionaries(st.sampled_from(["dtype", "shape", "data_offsets", "x"]), json_values, max_size=4),
       name=st.sampled_from(["latent_tensor", "latent_format_version_0", "__metadata__", "other"]),
       payload=st.integers(0, 256))
def test_structured_headers(tmp_path, entry, name, payload):
    head = json.dumps({name: entry}).encode()
    p = tmp_path / "h.latent"
    p.write_bytes(struct.pack("<Q", len(head)) + head + b"\0" * payload)
    _read_all(p)


def test_fuzz_found_nothing_unexpected_on_a_known_bad_case(tmp_path):
    # a case the strategies above produce: shape with a huge dimension and a tiny data region
    head = json.dumps({"latent_tensor": {"dtype": "F32", "shape": [1, 4, 2**40, 2], "data_offsets": [0, 8]}}).encode()
    p = tmp_path / "big.latent"
    p.write_bytes(struct.pack("<Q", len(head)) + head + b"\0" * 8)
    with pytest.raises(UnsamplerError):
        read_latent(p)


# ----------------------------------------------------------------------------- pickles, zips, diffusers


def _fingerprint():
    """Everything a hostile pickle could try to change in the reader."""
    out = {}
    for key, fn in pickle_reader._FUNCTIONS.items():
        out[key] = (id(fn), getattr(fn, "__defaults__", None), getattr(fn, "__kwdefaults__", None),
                    dict(getattr(fn, "__dict__", {}) or {}), getattr(fn, "__code__", None))
    for cls in (pickle_reader.TensorStub, pickle_reader.StorageRef, pickle_reader.StorageType,
                pickle_reader.Record, dict, list, set):
        out[cls.__name__] = sorted(vars(cls))
    return out


FINGERPRINT = _fingerprint()


def _legit(tmp_path) -> str:
    p = tmp_path / "legit.ckpt"
    if not p.exists():
        fg.pf.torch_zip(p, fg.valid_state_pickle(3))
    return str(p)


def _detect(path):
    try:
        return detect_model(path)
    except UnsamplerError:
        return None


def _reader_unchanged(tmp_path):
    assert _fingerprint() == FINGERPRINT
    index = pickle_reader.read_torch_zip(_legit(tmp_path))
    assert sorted(index.shapes) == [f"model.diffusion_model.b.{i}.weight" for i in range(3)]


@SETTINGS
@given(data=fg.pickle_stream(), ext=st.sampled_from([".pt", ".ckpt", ".bin"]))
def test_pickle_grammar(tmp_path, data, ext):
    p = tmp_path / f"f{ext}"
    p.write_bytes(data)
    _detect(p)
    try:
        pickle_reader.read_torch_pickle(str(p))
    except UnsamplerError:
        pass
    _reader_unchanged(tmp_path)


@SETTINGS
@given(data=fg.torch_zip_bytes())
def test_torch_zip_layouts(tmp_path, data):
    p = tmp_path / "z.ckpt"
    p.write_bytes(data)
    _detect(p)
    _reader_unchanged(tmp_path)


@SETTINGS
@given(files=fg.diffusers_folder())
def test_diffusers_folders(tmp_path, files):
    import shutil

    root = tmp_path / "pipe"
    shutil.rmtree(root, ignore_errors=True)
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    det = _detect(root)
    if det is not None and det.shift is not None:
        assert shift_problem(det.shift, det.family_obj.sampling.kind) is None
        assert all(math.isfinite(float(v)) for v in [det.shift])
        json.dumps(det.to_json())


def test_the_grammar_reaches_the_interesting_paths(tmp_path):
    """The pickle strategy makes streams that load, that are refused, and that are corrupt."""
    from hypothesis import find

    def outcome(data):
        p = tmp_path / "o.pt"
        p.write_bytes(data)
        try:
            pickle_reader.read_torch_pickle(str(p))
            return "read"
        except pickle_reader.RefusedPickle:
            return "refused"
        except UnsamplerError as e:
            return "corrupt" if "corrupt" in str(e) else "other"

    for wanted in ("read", "refused", "corrupt"):
        find(fg.pickle_stream(), lambda d: outcome(d) == wanted,
             settings=settings(max_examples=2000, deadline=None, database=None))
