"""The sinks: in memory, and streamed to a ``.latent`` (bounded memory, atomic, nothing left when it fails)."""
import pytest
import torch

from unsampler_gui.core import Cancelled, LatentSink, MemorySink, Reporter, plan_unsample, read_latent, run_unsample
from unsampler_gui.core import sink as sink_mod
from unsampler_gui.core.errors import ResourceError
from unsampler_gui.core.export import export_latent


class Cancelling(Reporter):
    def __init__(self, after):
        self.after, self.calls = after, 0

    def is_cancelled(self):
        self.calls += 1
        return self.calls > self.after


@pytest.mark.parametrize("noise", ["independent", "shared", "trajectory"])
@pytest.mark.parametrize("frames", [None, tuple(range(39, -1, -1)), (3, 30, 31, 0, 0)])
def test_streaming_file_equals_in_memory_export(make_spec, tmp_path, noise, frames):
    s = make_spec(shape=(2, 4, 8, 8), steps=40, noise=noise, seed=4, normalize=noise != "shared", frames=frames)
    mem = run_unsample(s)
    a = export_latent(mem, tmp_path / "mem.latent")
    b = run_unsample(s, None, LatentSink(tmp_path / "stream.latent", max_memory=20_000)).path
    assert open(a, "rb").read() == open(b, "rb").read()
    assert torch.equal(read_latent(b).tensor, mem.latent)
    # several chunks in flight, each in its own staging slot, written strictly in order
    for threads, chunk in ((1, 3), (3, 3), (4, 1)):
        c = run_unsample(s.replace(threads=threads, chunk_frames=chunk), None,
                         LatentSink(tmp_path / "c.latent", overwrite=True)).path
        assert open(c, "rb").read() == open(a, "rb").read(), (threads, chunk)


@pytest.mark.parametrize("noise", ["independent", "trajectory"])
def test_cancelled_stream_leaves_nothing(make_spec, tmp_path, noise):
    out = tmp_path / "x.latent"
    with pytest.raises(Cancelled):
        run_unsample(make_spec(steps=100, chunk_frames=5, noise=noise), Cancelling(after=3), LatentSink(out))
    assert list(tmp_path.iterdir()) == []


def test_an_existing_file_is_kept_unless_overwrite(make_spec, tmp_path):
    out = tmp_path / "x.latent"
    out.write_bytes(b"keep")
    with pytest.raises(ResourceError, match="already exists"):
        run_unsample(make_spec(steps=5), None, LatentSink(out))
    assert out.read_bytes() == b"keep"
    run_unsample(make_spec(steps=5), None, LatentSink(out, overwrite=True))
    assert read_latent(out).tensor.shape == (5, 4, 32, 32)


def test_memory_partials_are_views_of_the_result(make_spec):
    """In memory, every partial is the final output's own rows (the app keeps them without a copy)."""
    seen = []

    class Keep(Reporter):
        def partial(self, a, b, frames):
            seen.append((a, frames))

    for noise in ("independent", "trajectory"):
        seen.clear()
        r = run_unsample(make_spec(shape=(2, 4, 8, 8), steps=30, chunk_frames=4, noise=noise,
                                   frames=(29, 3, 4, 5, 17, 0) if noise == "trajectory" else None), Keep())
        for a, f in seen:
            assert f.data_ptr() == r.latent[a * 2:].data_ptr()


def test_a_sink_opens_afresh_for_each_attempt(make_spec, tmp_path):
    """A run that falls back from CUDA to the CPU opens its sink again: a failed attempt leaves no file."""
    plan = plan_unsample(make_spec(steps=6))
    sink = LatentSink(tmp_path / "o.latent")
    with pytest.raises(RuntimeError):
        with sink.open(plan) as out:
            out.put(0, 1, torch.zeros(1, 4, 32, 32))
            raise RuntimeError("the attempt failed")
    assert list(tmp_path.iterdir()) == []
    assert run_unsample(plan, None, sink).path == str(tmp_path / "o.latent")
    assert isinstance(MemorySink().open(plan).rows(1, 3), torch.Tensor)


def test_output_larger_than_memory_is_refused_before_running(make_spec, monkeypatch):
    monkeypatch.setattr(sink_mod, "available_memory", lambda: 100 << 20)
    spec = make_spec(shape=(1, 4, 64, 64), steps=10000)
    assert plan_unsample(spec).out_bytes > (100 << 20)
    with pytest.raises(ResourceError, match="export straight to a file|fewer steps"):
        run_unsample(spec)


def test_run_unsample_refuses_a_cap_it_cannot_keep_before_writing(make_spec, tmp_path):
    """The same check as the command line's --max-memory (``check_memory_cap``), for every caller."""
    from unsampler_gui.core.chunks import stream_memory_floor
    from unsampler_gui.core.errors import BadParameterError

    spec = make_spec(shape=(1, 4, 32, 32), steps=30, threads=2)
    floor = stream_memory_floor(plan_unsample(spec), 2)
    out = tmp_path / "x.latent"
    with pytest.raises(BadParameterError, match="cannot be met.*needs at least"):
        run_unsample(spec, None, LatentSink(out, max_memory=floor - 1))
    assert list(tmp_path.iterdir()) == []
    assert run_unsample(spec, None, LatentSink(out, max_memory=floor)).path == str(out)
    with pytest.raises(BadParameterError, match="cannot be met"):  # the older keyword form too
        run_unsample(spec, output=tmp_path / "y.latent", max_memory=floor // 2)
