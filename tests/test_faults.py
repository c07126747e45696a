"""Faults from the outside world: a full disk, a pickle in a .latent, a huge output."""
import os
import pickle
import subprocess
import sys
import textwrap

import pytest
import torch

from unsampler_gui.core import UnsampleSpec, get_family, run_unsample
from unsampler_gui.core.errors import BadFileError
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


def test_streaming_is_allowed_when_memory_is_short(tmp_path, monkeypatch):
    import unsampler_gui.core.sink as sink

    monkeypatch.setattr(sink, "available_memory", lambda: 1 << 20)
    spec = UnsampleSpec(family=get_family("SD15"), latent=torch.zeros(1, 4, 16, 16), steps=100)
    r = run_unsample(spec, output=str(tmp_path / "s.latent"), max_memory=1 << 20)
    assert read_latent(r.path).tensor.shape == (100, 4, 16, 16)


BAD_FILES = {
    "empty.latent": b"",
    "random.latent": bytes(range(256)) * 7,
    "zero_header.latent": b"\0" * 16,
    "past_end.latent": (5000).to_bytes(8, "little") + b"{}",
    "huge_header.latent": (200_000_000).to_bytes(8, "little") + b"{}" + b" " * 64,
    "not_json.latent": (9).to_bytes(8, "little") + b"{not json",
    "not_utf8.latent": (4).to_bytes(8, "little") + b"\xff\xfe\xfd{",
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
@pytest.mark.parametrize("command", ["info", "run"])
def test_cli_bad_files_are_one_line_exit_2(tmp_path, capsys, name, command):
    from unsampler_gui.cli import main

    p = tmp_path / name
    p.write_bytes(BAD_FILES[name])
    args = ["info", str(p)] if command == "info" else ["run", "--model", "SD15", "--latent", str(p), "--steps", "3",
                                                       "-o", str(tmp_path / "out.latent")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("unsampler: error:") and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "out.latent").exists()


@pytest.mark.parametrize("case", ["folder", "missing"])
def test_cli_folder_and_missing_file(tmp_path, capsys, case):
    from unsampler_gui.cli import main

    target = tmp_path if case == "folder" else tmp_path / "nope.latent"
    assert main(["run", "--model", "SD15", "--latent", str(target), "--steps", "3", "-o",
                 str(tmp_path / "o.latent")]) == 2
    err = capsys.readouterr().err
    assert ("folder" in err or "no such file" in err) and "Traceback" not in err


@pytest.mark.parametrize("streamed", [False, True])
def test_cuda_out_of_memory_retries_on_the_cpu(monkeypatch, tmp_path, streamed):
    import unsampler_gui.core.job as job
    import unsampler_gui.core.unsample as u
    from unsampler_gui.core import LatentSink, Reporter

    monkeypatch.setattr(job, "resolve_device", lambda name: torch.device("cuda" if name == "cuda" else "cpu"))

    def run_cuda(plan, rep, sink):
        with sink.open(plan) as out:  # the attempt had opened its output when the GPU ran out
            out.put(0, 1, torch.zeros(1, 4, 8, 8))
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(u, "run_cuda", run_cuda)
    said = []

    class Rep(Reporter):
        def message(self, text):
            said.append(text)

    spec = UnsampleSpec(family=get_family("SD15"), latent=torch.zeros(1, 4, 8, 8), steps=5, device="cuda")
    r = run_unsample(spec, Rep(), LatentSink(tmp_path / "o.latent") if streamed else None)
    assert r.device == "cpu" and r.plan.device.type == "cpu"
    got = read_latent(r.path).tensor if streamed else r.latent
    assert got.shape == (5, 4, 8, 8)
    assert said and "CPU" in said[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == (["o.latent"] if streamed else [])


def test_cancelled_export_leaves_nothing(tmp_path):
    from unsampler_gui.core import Cancelled, Reporter
    from unsampler_gui.core.export import export_latent

    r = run_unsample(UnsampleSpec(family=get_family("SD15"), latent=torch.zeros(1, 4, 8, 8), steps=30))

    class Stop(Reporter):
        def is_cancelled(self):
            return True

    with pytest.raises(Cancelled):
        export_latent(r, tmp_path / "x.latent", positions=list(range(0, 30, 2)), reporter=Stop())
    assert list(tmp_path.iterdir()) == []
