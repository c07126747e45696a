"""The one atomic writer (``core.atomic``): every file Unsampler writes, its mode, its messages, its rename."""
from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from unsampler_gui.core import atomic
from unsampler_gui.core.atomic import AtomicFile, atomic_write, clean_stale_partials, open_regular
from unsampler_gui.core.errors import BadFileError, ResourceError
from unsampler_gui.core.latent_io import LatentWriter, read_latent, write_latent


def _writers(tmp_path):
    """One file of every kind Unsampler writes, by the module that writes it."""
    from unsampler_gui.core import UnsampleSpec, get_family, run_unsample
    from unsampler_gui.core.export import export_sigmas_json, export_sigmas_text
    from unsampler_gui.core.pictures import animation, contact_sheet

    r = run_unsample(UnsampleSpec(family=get_family("SD15"), latent=torch.zeros(1, 4, 8, 8), steps=3))
    frames = r.latent
    return {
        "latent": lambda p: write_latent(p, frames),
        "json": lambda p: export_sigmas_json(r.plan, p),
        "text": lambda p: export_sigmas_text(r.plan, p),
        "png": lambda p: contact_sheet(frames, get_family("SD15"), [0, 1, 2], None, p),
        "webp": lambda p: animation(frames, get_family("SD15"), p, size=16),
        "gif": lambda p: animation(frames, get_family("SD15"), p, size=16),
    }


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_every_writer_gives_the_umask_mode(tmp_path, umask):
    old = os.umask(umask)
    try:
        for kind, write in _writers(tmp_path).items():
            p = tmp_path / f"out.{kind}"
            write(p)
            assert stat.S_IMODE(os.stat(p).st_mode) == 0o666 & ~umask, kind
    finally:
        os.umask(old)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


def test_every_writer_refuses_an_existing_file_with_the_same_message(tmp_path):
    for kind, write in _writers(tmp_path).items():
        p = tmp_path / f"out.{kind}"
        p.write_bytes(b"keep")
        with pytest.raises(ResourceError, match=r"already exists \(choose another name, or allow overwriting\)"):
            write(p)
        assert p.read_bytes() == b"keep", kind


@pytest.mark.parametrize("code,words", [(errno.ENOSPC, "disk full while writing x.bin: nothing was saved"),
                                        (errno.EDQUOT, "disk full"), (errno.EACCES, "permission denied"),
                                        (errno.EROFS, "permission denied"), (errno.ENAMETOOLONG, "too long")])
def test_os_errors_become_one_message_each(tmp_path, monkeypatch, code, words):
    real = os.open

    def failing(path, flags, *a, **kw):
        if str(path).endswith(".partial"):
            raise OSError(code, os.strerror(code), path)
        return real(path, flags, *a, **kw)

    monkeypatch.setattr(atomic.os, "open", failing)
    with pytest.raises(ResourceError, match=words):
        atomic_write(tmp_path / "x.bin", lambda f: f.write(b"1"))
    assert list(tmp_path.iterdir()) == []


def test_a_failing_library_save_leaves_nothing(tmp_path):
    def save(f):
        f.write(b"half")
        raise RuntimeError("encoder failed")

    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "x.png", save)
    assert list(tmp_path.iterdir()) == []


def test_the_rename_never_replaces_a_file_that_appeared_meanwhile(tmp_path):
    p = tmp_path / "x.bin"
    af = AtomicFile(p)
    af.write(b"mine")
    p.write_bytes(b"theirs")  # another run finished first
    with pytest.raises(ResourceError, match="already exists"):
        af.commit()
    assert p.read_bytes() == b"theirs" and sorted(os.listdir(tmp_path)) == ["x.bin"]


@pytest.mark.parametrize("fallback", ["renameat2", "link", "rename"])
def test_no_replace_on_every_path(tmp_path, monkeypatch, fallback):
    """renameat2(RENAME_NOREPLACE), or a hard link + unlink, or (no hard links) a checked rename."""
    if fallback != "renameat2":
        monkeypatch.setattr(atomic, "_renameat2_noreplace", lambda a, b: False)
    if fallback == "rename":
        def no_links(a, b):
            raise OSError(errno.EPERM, "Operation not permitted")
        monkeypatch.setattr(atomic.os, "link", no_links)
    p = tmp_path / "x.bin"
    atomic_write(p, lambda f: f.write(b"first"))
    with pytest.raises(ResourceError, match="already exists"):
        af = AtomicFile(tmp_path / "y.bin")
        af.write(b"second")
        os.rename(p, tmp_path / "y.bin")  # the target appears after the early check
        af.commit()
    assert (tmp_path / "y.bin").read_bytes() == b"first"
    assert sorted(os.listdir(tmp_path)) == ["y.bin"]


def test_concurrent_writers_of_one_new_file(tmp_path):
    """Four processes write one name without --overwrite: exactly one succeeds, the file is whole."""
    code = ("import sys; from unsampler_gui.core.atomic import AtomicFile\n"
            "af = AtomicFile(sys.argv[1]); af.write(sys.argv[2].encode() * 100000)\n"
            "print('ready', flush=True); sys.stdin.read()\n"
            "try:\n    af.commit(); print('ok')\nexcept Exception as e:\n    print('refused', e)\n")
    target = str(tmp_path / "one.bin")
    procs = [subprocess.Popen([sys.executable, "-c", code, target, str(i)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for i in range(4)]
    for p in procs:  # every writer has its temporary file written before any commits
        assert p.stdout.readline().strip() == "ready"
    for p in procs:
        p.stdin.close()
    outs = [p.stdout.read() for p in procs]
    for p in procs:
        p.wait(timeout=120)
    assert sum(o.startswith("ok") for o in outs) == 1, outs
    assert all(o.startswith(("ok", "refused")) for o in outs), outs
    data = open(target, "rb").read()
    assert len(data) == 100000 and len(set(data)) == 1
    assert sorted(os.listdir(tmp_path)) == ["one.bin"]


def test_overwrite_replaces_a_symlink_not_its_target(tmp_path):
    real = tmp_path / "real.bin"
    real.write_bytes(b"keep")
    link = tmp_path / "link.bin"
    link.symlink_to(real)
    atomic_write(link, lambda f: f.write(b"new"), overwrite=True)
    assert real.read_bytes() == b"keep"
    assert not link.is_symlink() and link.read_bytes() == b"new"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_overwrite_refuses_special_files_even_if_they_appear_late(tmp_path):
    p = tmp_path / "x.bin"
    af = AtomicFile(p, overwrite=True)
    af.write(b"data")
    os.mkfifo(p)
    with pytest.raises(ResourceError, match="is a FIFO .*not a regular file: refusing to replace it"):
        af.commit()
    assert stat.S_ISFIFO(os.lstat(p).st_mode) and os.listdir(tmp_path) == ["x.bin"]


def test_a_folder_is_never_a_target(tmp_path):
    (tmp_path / "d").mkdir()
    for overwrite in (False, True):
        with pytest.raises(ResourceError, match="is a folder"):
            AtomicFile(tmp_path / "d", overwrite=overwrite)
    with pytest.raises(ResourceError, match="does not exist"):
        AtomicFile(tmp_path / "nope" / "x.bin")


# ----------------------------------------------------------------------------- stale partial files


def _partial(folder, name, age_s):
    p = folder / name
    p.write_bytes(b"x" * 10)
    t = time.time() - age_s
    os.utime(p, (t, t))
    return p


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid  # reaped: no process has it now (unless the kernel reuses it at once)


def test_stale_partials_are_cleaned_by_their_rules(tmp_path):
    dead, me = _dead_pid(), os.getpid()
    hour, day = 3600, 24 * 3600
    gone = [_partial(tmp_path, f".unsampler-{dead}-abcd1234.partial", hour),
            _partial(tmp_path, ".unsampler-k3j4h5g6.partial", 2 * day),  # old mkstemp name, abandoned
            _partial(tmp_path, f".unsampler-{me}-0000aaaa.partial", 2 * day)]  # even ours, untouched a day
    kept = [_partial(tmp_path, f".unsampler-{dead}-abcd1235.partial", 60),  # dead, but written a minute ago
            _partial(tmp_path, f".unsampler-{me}-abcd1236.partial", hour),  # alive (this process)
            _partial(tmp_path, ".unsampler-k3j4h5g7.partial", hour),  # no pid: only the day rule
            _partial(tmp_path, "unsampler-1-abcd1237.partial", 2 * day),  # not our name
            _partial(tmp_path, f".unsampler-{dead}-abcd1238.partial.bak", 2 * day)]
    (tmp_path / f".unsampler-{dead}-abcd1239.partial").mkdir()  # a folder: never
    removed = clean_stale_partials(tmp_path)
    assert sorted(removed) == sorted(p.name for p in gone)
    assert all(p.exists() for p in kept) and not any(p.exists() for p in gone)


def test_every_write_cleans_its_folder(tmp_path):
    stale = _partial(tmp_path, f".unsampler-{_dead_pid()}-abcd1234.partial", 3600)
    atomic_write(tmp_path / "x.txt", lambda f: f.write(b"1"))
    assert not stale.exists()


# ----------------------------------------------------------------------------- write-behind


class _Recorder:
    def __init__(self):
        self.calls = []

    def __call__(self, fd, offset, nbytes, flags):
        self.calls.append((offset, nbytes, flags))
        return 0


def test_write_behind_starts_each_range_and_waits_a_window_behind(tmp_path):
    af = AtomicFile(tmp_path / "x.bin", write_behind=True)
    rec = _Recorder()
    af._behind._sfr = rec
    af._behind.enabled = True
    block = np.zeros(1 << 20, np.uint8)
    for _ in range(100):
        af.write(block)
    af.commit()
    starts = [(o, n) for o, n, f in rec.calls if f == 2]
    waits = [(o, n) for o, n, f in rec.calls if f == 7]
    assert starts[0][0] == 0 and all(a[0] + a[1] == b[0] for a, b in zip(starts, starts[1:]))
    assert starts[-1][0] + starts[-1][1] >= 96 << 20  # the writeback of nearly all of it began while writing
    assert waits and waits[0][0] == 0 and all(a[0] + a[1] == b[0] for a, b in zip(waits, waits[1:]))
    written = 0
    for o, n, f in rec.calls:  # never more than a window (plus a step) waits for the disk
        if f == 7:
            written = o + n
        if f == 2:
            assert o + n - written <= af._behind.window + 2 * af._behind.step
    assert os.path.getsize(tmp_path / "x.bin") == 100 << 20


def test_write_behind_falls_back_to_fadvise_or_nothing(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(atomic, "_LIBC", None)
    if hasattr(os, "posix_fadvise"):
        monkeypatch.setattr(atomic.os, "posix_fadvise", lambda fd, o, n, advice: seen.append((o, n)))
    af = AtomicFile(tmp_path / "x.bin", write_behind=True)
    for _ in range(20):
        af.write(np.ones(1 << 20, np.uint8))
    af.commit()
    assert open(tmp_path / "x.bin", "rb").read() == b"\x01" * (20 << 20)
    if sys.platform.startswith("linux"):
        assert seen and seen[0][0] == 0


def test_write_behind_on_the_real_system_keeps_the_bytes(tmp_path):
    data = torch.randn(64, 4, 64, 64)
    p = write_latent(tmp_path / "x.latent", data)
    assert torch.equal(read_latent(p).tensor, data)


# ----------------------------------------------------------------------------- reading


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_open_regular_refuses_fifos_without_blocking(tmp_path):
    f = tmp_path / "p"
    os.mkfifo(f)
    with pytest.raises(BadFileError, match="is a FIFO \\(named pipe\\), not a regular file"):
        open_regular(f)


def test_open_regular_refuses_devices_and_folders(tmp_path):
    with pytest.raises(BadFileError, match="character device"):
        open_regular(os.devnull)
    with pytest.raises(BadFileError, match="is a folder"):
        open_regular(tmp_path)
    with pytest.raises(BadFileError, match="no such file"):
        open_regular(tmp_path / "nope")
    with pytest.raises(BadFileError, match="cannot open"):
        open_regular(str(tmp_path) + "/a\0b")


def test_latent_writer_keeps_its_old_interface(tmp_path):
    """How core/unsample.py and core/cuda_pipeline.py use it: construct, write blocks, commit in a with."""
    p = tmp_path / "o.latent"
    with LatentWriter(p, (2, 4, 2, 2), {"unsampler": "{}"}, overwrite=False) as w:
        w.write(torch.ones(1, 4, 2, 2))
        w.write(np.zeros((1, 4, 2, 2), np.float32))
        assert w.tmp.endswith(".partial") and os.path.exists(w.tmp)
        path = w.commit()
    assert path == str(p) and read_latent(p).tensor.sum() == 16
    with pytest.raises(ValueError, match="incomplete"):
        with LatentWriter(tmp_path / "short.latent", (2, 4, 2, 2)) as w:
            w.write(torch.ones(1, 4, 2, 2))
            w.commit()
    assert sorted(os.listdir(tmp_path)) == ["o.latent"]
