"""ComfyUI .latent files: LoadLatent's rule, our exports, atomic writes and bad files."""
import json
import os
import struct

import numpy as np
import pytest
import safetensors.torch as st
import torch

from unsampler_gui.core import UnsampleSpec, get_family, run_unsample
from unsampler_gui.core.errors import BadFileError, ResourceError
from unsampler_gui.core.export import export_latent, export_sigmas_json, export_sigmas_text, select_positions
from unsampler_gui.core.latent_io import LEGACY_MULTIPLIER, NonFiniteLatentError, read_latent, write_latent


def load_latent_like_comfyui(path):
    """ComfyUI's LoadLatent: load_file, marker rule, float() * multiplier."""
    sd = st.load_file(str(path), device="cpu")
    multiplier = 1.0 if "latent_format_version_0" in sd else 1.0 / 0.18215
    return sd["latent_tensor"].float() * multiplier


def test_export_reads_back_exactly_with_loadlatent_rule(tmp_path):
    x = torch.randn(2, 4, 8, 8)
    r = run_unsample(UnsampleSpec(family=get_family("SD15"), latent=x, steps=12, seed=1))
    p = export_latent(r, tmp_path / "out.latent")
    back = load_latent_like_comfyui(p)
    assert back.dtype == torch.float32 and torch.equal(back, r.latent)
    from safetensors import safe_open

    with safe_open(p, "pt") as f:
        meta = json.loads(f.metadata()["unsampler"])
    assert meta["family"] == "SD15" and meta["steps"] == 12 and meta["seed"] == 1
    assert meta["sigmas"] == [float(v) for v in r.raw_sigmas.tolist()]
    assert set(meta) >= {"sampler", "scheduler", "start_at_step", "end_at_step", "normalize", "noise", "formula",
                         "source"}


def test_subset_and_reverse_export(tmp_path):
    x = torch.randn(2, 4, 4, 4)
    r = run_unsample(UnsampleSpec(family=get_family("SD15"), latent=x, steps=20))
    pos = select_positions(20, 2, 12, every=3, reverse=True)
    assert pos == [11, 8, 5, 2]
    p = export_latent(r, tmp_path / "sub.latent", positions=pos)
    back = load_latent_like_comfyui(p)
    want = torch.cat([r.latent[i * 2:(i + 1) * 2] for i in pos])
    assert torch.equal(back, want)
    lf = read_latent(p)
    assert lf.unsampler["frames"] == pos and len(lf.unsampler["sigmas"]) == 4


def test_legacy_file_gets_multiplier(tmp_path):
    x = torch.randn(1, 4, 8, 8)
    st.save_file({"latent_tensor": x}, str(tmp_path / "old.latent"))
    lf = read_latent(tmp_path / "old.latent")
    assert lf.kind == "legacy latent" and lf.multiplier == LEGACY_MULTIPLIER
    assert torch.equal(lf.tensor, load_latent_like_comfyui(tmp_path / "old.latent"))


def test_plain_safetensors_with_one_tensor(tmp_path):
    x = torch.randn(1, 16, 8, 8)
    st.save_file({"samples": x}, str(tmp_path / "one.safetensors"))
    lf = read_latent(tmp_path / "one.safetensors")
    assert lf.kind == "safetensors" and torch.equal(lf.tensor, x)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_half_and_bf16_are_converted(tmp_path, dtype):
    x = torch.randn(1, 4, 8, 8).to(dtype)
    st.save_file({"latent_tensor": x, "latent_format_version_0": torch.tensor([])}, str(tmp_path / "h.latent"))
    lf = read_latent(tmp_path / "h.latent")
    assert lf.tensor.dtype == torch.float32 and torch.equal(lf.tensor, x.float())


def test_nonfinite_refused_unless_allowed(tmp_path):
    x = torch.randn(1, 4, 8, 8)
    x[0, 0, 0, 0] = float("nan")
    write_latent(tmp_path / "n.latent", x)
    with pytest.raises(NonFiniteLatentError, match="NaN"):
        read_latent(tmp_path / "n.latent")
    assert read_latent(tmp_path / "n.latent", allow_nonfinite=True).nonfinite == 1


def _raw(path, header: bytes, data: bytes = b"", n=None):
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header) if n is None else n) + header + data)
    return path


@pytest.mark.parametrize("make,match", [
    (lambda p: p.write_bytes(b""), "empty"),
    (lambda p: p.write_bytes(os.urandom(3)), "too short"),
    (lambda p: p.write_bytes(os.urandom(4096)), "not a safetensors|truncated|header"),
    (lambda p: _raw(p, b"", n=0), "header length is 0"),
    (lambda p: _raw(p, b"{}", n=10_000), "runs past the end"),
    (lambda p: _raw(p, b"{}", n=200_000_000), "over the"),
    (lambda p: _raw(p, b"\xff\xfe{]"), "UTF-8"),
    (lambda p: _raw(p, b"{not json"), "JSON"),
    (lambda p: _raw(p, json.dumps({"latent_tensor": {"dtype": "F32", "shape": [1, 4, 2, 2],
                                                     "data_offsets": [0, 64]}}).encode()), "truncated"),
    (lambda p: _raw(p, json.dumps({"latent_tensor": {"dtype": "Q7", "shape": [1], "data_offsets": [0, 4]}}).encode(),
                    b"\0" * 4), "unknown dtype"),
    (lambda p: _raw(p, json.dumps({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                                   "latent_tensor": {"dtype": "F32", "shape": [1, 1, 2, 2],
                                                     "data_offsets": [8, 24]}}).encode(), b"\0" * 24), "overlap"),
    (lambda p: _raw(p, json.dumps({"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode(),
                    b"\0" * 4), "no 'latent_tensor'"),
])
def test_bad_files_give_clear_errors(tmp_path, make, match):
    p = tmp_path / "bad.latent"
    make(p)
    with pytest.raises(BadFileError, match=match):
        read_latent(p)


@pytest.mark.parametrize("shape", [(4,), (4, 8), (1, 1, 1, 1, 1, 1), (1, 0, 8, 8)])
def test_bad_shapes(tmp_path, shape):
    st.save_file({"latent_tensor": torch.zeros(shape)}, str(tmp_path / "s.latent"))
    with pytest.raises(BadFileError, match="dimensions|channels|empty"):
        read_latent(tmp_path / "s.latent")


def test_missing_directory_and_permission(tmp_path):
    with pytest.raises(BadFileError, match="no such file"):
        read_latent(tmp_path / "nope.latent")
    with pytest.raises(BadFileError, match="folder"):
        read_latent(tmp_path)
    p = tmp_path / "locked.latent"
    write_latent(p, torch.zeros(1, 4, 2, 2))
    os.chmod(p, 0)
    if os.access(p, os.R_OK):
        pytest.skip("running as a user that ignores file permissions")
    with pytest.raises(BadFileError, match="permission"):
        read_latent(p)


def test_no_overwrite_without_permission(tmp_path):
    p = tmp_path / "a.latent"
    write_latent(p, torch.zeros(1, 4, 2, 2))
    with pytest.raises(ResourceError, match="already exists"):
        write_latent(p, torch.ones(1, 4, 2, 2))
    write_latent(p, torch.ones(1, 4, 2, 2), overwrite=True)
    assert read_latent(p).tensor.sum() == 16


@pytest.mark.parametrize("fail_at", ["write", "fsync"])
def test_failed_write_leaves_nothing(tmp_path, monkeypatch, fail_at):
    """The disk fills on the third write (or at the final fsync): a clear message, and nothing left."""
    import errno

    import unsampler_gui.core.atomic as atomic

    calls = {"n": 0}
    real_write, real_fsync = os.write, os.fsync

    def failing_write(fd, data):
        calls["n"] += 1
        if calls["n"] > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    def failing_fsync(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    if fail_at == "write":
        monkeypatch.setattr(atomic.os, "write", failing_write)
    else:
        monkeypatch.setattr(atomic.os, "fsync", failing_fsync)
    with pytest.raises(ResourceError, match="disk full while writing big.latent: nothing was saved"):
        write_latent(tmp_path / "big.latent", torch.zeros(10, 4, 64, 64), chunk_bytes=4096)
    monkeypatch.setattr(atomic.os, "write", real_write)
    monkeypatch.setattr(atomic.os, "fsync", real_fsync)
    assert list(tmp_path.iterdir()) == []


def test_sigma_exports(tmp_path):
    r = run_unsample(UnsampleSpec(family=get_family("SD15"), latent=torch.zeros(1, 4, 2, 2), steps=10000,
                                  scheduler="karras", frames=(0,)))
    p = export_sigmas_text(r.plan, tmp_path / "s.txt")
    text = open(p).read()
    assert "e-" not in text and "e+" not in text
    vals = [np.float32(v) for v in text.split(",")]
    assert np.array_equal(np.array(vals, dtype=np.float32), r.plan.schedule.numpy())
    j = json.load(open(export_sigmas_json(r.plan, tmp_path / "s.json")))
    assert np.array_equal(np.array(j["raw_sigmas"], dtype=np.float32), r.plan.raw_sigmas.numpy())


@pytest.mark.parametrize("head,what", [
    (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + b"\0" * 64, "a PNG picture"),
    (b"\xff\xd8\xff\xe0\0\x10JFIF" + b"\0" * 64, "a JPEG picture"),
    (b"RIFF\0\0\0\0WEBPVP8 " + b"\0" * 64, "a WebP picture"),
    (b"PK\x03\x04" + b"\0" * 64, "a zip archive"),
    (b"hello, this is a plain text file\n" * 3, "a text file"),
])
def test_not_safetensors_says_what_the_file_looks_like(tmp_path, head, what):
    """A PNG or other known file opened as a latent: what it looks like, never an 18-digit 'header length'."""
    p = tmp_path / "photo.latent"
    p.write_bytes(head)
    with pytest.raises(BadFileError) as e:
        read_latent(p)
    msg = str(e.value)
    assert f"not a safetensors file: it looks like {what}" in msg
    assert not any(len(tok) > 12 and tok.isdigit() for tok in msg.replace("(", " ").split())


def test_random_bytes_give_no_huge_number(tmp_path):
    p = tmp_path / "noise.latent"
    p.write_bytes(b"\xf3\x9a\x11\xc7\x02\x8e\x77\xd4" + bytes(range(256)) * 4)
    with pytest.raises(BadFileError, match="not a safetensors file") as e:
        read_latent(p)
    assert "header length" in str(e.value)
    assert not any(len(tok) > 12 and tok.isdigit() for tok in str(e.value).split())
