"""Faults from the outside world: a full disk, a pickle in a .latent, a huge output."""
import os
import pickle
import subprocess
import sys
import textwrap

import pytest
import torch

from unsampler_gui.core import UnsampleSpec, get_family, plan_unsample, run_unsample
from unsampler_gui.core.errors import BadFileError, ResourceError
from unsampler_gui.core.latent_io import read_latent, write_latent


def test_disk_full_during_export_leaves_nothing(tmp_path):
    """The file size limit (RLIMIT_FSIZE) makes the kernel refuse writes past 256 KB, as a full disk would."""
    src = tmp_path / "in.latent"
    write_latent(src, torch.randn(1, 4, 32, 32))
    out = tmp_path / "out" / "big.latent"
    out.parent.mkdir()
    code = textwrap.dedent(f"""
        import resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))
        from unsampler_gui.cli import main
        sys.exit(main(["run", "--model", "SD15", "--latent", {str(src)!r}, "--steps", "200", "-o", {str(out)!r}]))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr
    assert "disk full" in r.stderr and "nothing was saved" in r.stderr and "Traceback" not in r.stderr
    assert list(out.parent.iterdir()) == []


def test_pickle_named_latent_is_never_unpickled(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    p = tmp_path / "evil.latent"
    p.write_bytes(pickle.dumps({"latent_tensor": Payload()}))
    with pytest.raises(BadFileError):
        read_latent(p)
    assert not marker.exists()


def test_output_larger_than_memory_is_refused_before_running(monkeypatch):
    import unsampler_gui.core.unsample as u

    monkeypatch.setattr(u, "available_memory", lambda: 100 << 20)
    spec = UnsampleSpec(family=get_family("SD15"), latent=torch.zeros(1, 4, 64, 64), steps=10000)
    assert plan_unsample(spec).out_bytes > (100 << 20)
    with pytest.raises(ResourceError, match="export straight to a file|fewer steps"):
        run_unsample(spec)


def test_streaming_is_allowed_when_memory_is_short(tmp_path, monkeypatch):
    import unsampler_gui.core.unsample as u

    monkeypatch.setattr(u, "available_memory", lambda: 1 << 20)
    spec = UnsampleSpec(family=get_family("SD15"), latent=torch.zeros(1, 4, 16, 16), steps=100)
    r = run_unsample(spec, output=str(tmp_path / "s.latent"), max_memory=1 << 20)
    assert read_latent(r.path).tensor.shape == (100, 4, 16, 16)
