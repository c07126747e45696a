"""Fuzzing the safetensors and .latent readers: any exception but our own clear errors is a bug.

Runs briefly in ``make test``; ``make fuzz`` sets UNSAMPLER_FUZZ_EXAMPLES for a longer run.
"""
import json
import os
import struct

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unsampler_gui.core.errors import UnsamplerError
from unsampler_gui.core.latent_io import read_latent, write_latent
from unsampler_gui.core.safetensors_io import read_header

EXAMPLES = int(os.environ.get("UNSAMPLER_FUZZ_EXAMPLES", "150"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _valid_file(tmp_path) -> bytes:
    p = tmp_path / "seed.latent"
    write_latent(p, torch.randn(1, 4, 3, 5), {"unsampler": "{}"}, overwrite=True)
    return p.read_bytes()


def _read_all(path):
    try:
        read_latent(path)
    except UnsamplerError:
        pass
    try:
        read_header(path)
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
