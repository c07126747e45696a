"""Direct writes (``core.direct_io``): the same bytes as a plain write, for any header length and any buffer
sizes, on a filesystem that takes them and on one that refuses them; a streamed run made in the writer's
own buffers gives the same file as the in-memory export."""
import errno
import os

import numpy as np
import pytest
import torch

from unsampler_gui.core import LatentSink, read_latent, run_unsample
from unsampler_gui.core import direct_io
from unsampler_gui.core.direct_io import ALIGN, DirectStream
from unsampler_gui.core.errors import ResourceError
from unsampler_gui.core.export import export_latent


def _stream(path, head: bytes, pieces, capacity: int, refuse: bool = False, monkeypatch=None) -> DirectStream:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        ds = DirectStream(fd, head, capacity)
        for k, data in pieces:
            if k == "lent":
                region = ds.lend(ds.end, len(data))
                assert not data or region.data_ptr() % ALIGN == ds.end % ALIGN  # placed for one aligned write
                region.numpy()[:] = np.frombuffer(data, dtype=np.uint8)
                ds.put(region)
            else:
                ds.write(data)
        ds.close()
        return ds
    finally:
        os.close(fd)


@pytest.mark.parametrize("head_len", [0, 8, 4095, 4096, 4097, 3 * 4096 + 24, 559464])
def test_any_header_and_pieces_give_the_plain_bytes(tmp_path, head_len):
    rng = np.random.default_rng(head_len)
    head = rng.integers(0, 256, head_len, dtype=np.uint8).tobytes()
    sizes = [65536, 4, 12288, 4096 * 5 + 12, 1, 40000, 70000, 0, 8192, 39999]  # "write" pieces may exceed a buffer
    pieces = [("lent" if i % 3 else "write", rng.integers(0, 256, n, dtype=np.uint8).tobytes())
              for i, n in enumerate(sizes)]
    ds = _stream(tmp_path / "d.bin", head, pieces, capacity=40000)
    want = head + b"".join(d for _, d in pieces)
    assert (tmp_path / "d.bin").read_bytes() == want
    assert ds.end == len(want)


def test_a_filesystem_that_refuses_direct_writes_gets_plain_ones(tmp_path, monkeypatch):
    real = os.pwrite
    calls = {"direct": 0}

    def pwrite(fd, data, offset):
        import fcntl
        if fcntl.fcntl(fd, fcntl.F_GETFL) & getattr(os, "O_DIRECT", 0):
            calls["direct"] += 1
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", pwrite)
    head = bytes(range(256)) * 40  # 10240 bytes: the first write is a direct one
    pieces = [("lent", bytes([i % 251]) * 9000) for i in range(5)] + [("write", b"tail!")]
    ds = _stream(tmp_path / "d.bin", head, pieces, capacity=9000)
    assert calls["direct"] == 1 and not ds.direct
    assert (tmp_path / "d.bin").read_bytes() == head + b"".join(d for _, d in pieces)


def test_regions_go_in_file_order(tmp_path):
    fd = os.open(tmp_path / "d.bin", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        ds = DirectStream(fd, b"h" * 100, 8192)
        first, second = ds.lend(100, 4096, slot=0), ds.lend(4196, 4096, slot=1)
        with pytest.raises(ValueError, match="file order"):
            ds.put(second)
        ds.put(first)
        ds.put(second)
        with pytest.raises(ValueError, match="not a region"):
            ds.put(torch.empty(16, dtype=torch.uint8))
    finally:
        os.close(fd)


@pytest.mark.parametrize("family,shape,frames", [("SD15", (2, 4, 8, 8), None),
                                                 ("ZImagePixelSpace", (1, 3, 5, 7), (30, 2, 2, 17, 0, 39)),
                                                 ("Flux", (1, 16, 16, 16), tuple(range(39, -1, -1)))])
def test_streamed_run_in_the_writers_buffers_equals_the_memory_export(make_spec, tmp_path, monkeypatch,
                                                                      family, shape, frames):
    monkeypatch.setattr(direct_io, "DIRECT_MIN_BYTES", 0)
    streams = []

    class Recorded(DirectStream):
        def __init__(self, *a):
            super().__init__(*a)
            streams.append(self)

    monkeypatch.setattr(direct_io, "DirectStream", Recorded)
    s = make_spec(family, shape, steps=40, seed=3, normalize=True, frames=frames)
    want = open(export_latent(run_unsample(s), tmp_path / "mem.latent"), "rb").read()
    for threads, chunk in ((1, 3), (2, 7), (3, 1), (2, 0)):
        seen = []

        class Keep:
            background = False

            def planned(self, plan):
                pass

            def progress(self, done, total):
                pass

            def message(self, text):
                pass

            def is_cancelled(self):
                return False

            def partial(self, a, b, rows):
                seen.append((a, b, rows.clone()))

        out = run_unsample(s.replace(threads=threads, chunk_frames=chunk), Keep(),
                           LatentSink(tmp_path / "d.latent", overwrite=True)).path
        assert open(out, "rb").read() == want, (threads, chunk)
        assert streams.pop().direct  # this filesystem took the direct writes
        lat = read_latent(out).tensor
        B = shape[0]
        for a, b, rows in seen:  # what a viewer was shown is what was written
            assert torch.equal(rows, lat[a * B:b * B])


def test_a_failed_direct_write_leaves_no_file(make_spec, tmp_path, monkeypatch):
    monkeypatch.setattr(direct_io, "DIRECT_MIN_BYTES", 0)
    real, n = os.pwrite, {"calls": 0}

    def pwrite(fd, data, offset):
        n["calls"] += 1
        if n["calls"] > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", pwrite)
    with pytest.raises(ResourceError, match="disk full"):
        run_unsample(make_spec(shape=(1, 4, 32, 32), steps=60, chunk_frames=4), None, LatentSink(tmp_path / "x.latent"))
    assert list(tmp_path.iterdir()) == []
