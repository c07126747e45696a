"""The CUDA driver's logic, run on the CPU: its block noise, its chunks and copies (``HostOps`` does
``CudaOps``'s calls at once), its sinks and its reporting. What needs a GPU is in benchmarks/cuda_check.py."""
import pytest
import torch

from unsampler_gui.core import Cancelled, FrameMaker, LatentSink, MemorySink, Reporter, plan_unsample, read_latent
from unsampler_gui.core import chunks
from unsampler_gui.core.drive_cpu import run_cpu
from unsampler_gui.core.drive_cuda import SLOTS, HostOps, run_cuda
from unsampler_gui.core.frames import BLOCK, BlockNoise

from spec_builder import build_spec


def _blocks(steps=300):
    plan = plan_unsample(_spec(steps=steps))
    return plan, BlockNoise(plan.device, plan.batch, plan.frame_shape, plan.spec.seed, plan.schedule_index.tolist())


def _spec(shape=(2, 4, 4, 4), steps=300, **kw):
    return build_spec("SD15", shape, steps=steps, seed=3, device="cpu", **kw)


def test_block_gather_matches_frame_by_frame():
    plan, blocks = _blocks()
    n = plan.n_steps
    cases = [list(range(n)), list(range(5, 5 + 2 * BLOCK + 7)), [0], list(range(BLOCK - 1, BLOCK + 1)),
             [7, 3, 250, 251, 4, 4, 0]]
    for steps in cases:
        v = torch.empty(len(steps), plan.batch, 4, 4, 4)
        blocks.fill(v, steps)
        fresh = _blocks()[1]
        ref = torch.stack([fresh.get(fresh.schedule_steps[i]).clone() for i in steps])
        assert torch.equal(v, ref), steps[:5]


class Recorder(Reporter):
    def __init__(self, cancel_after=None):
        self.parts, self.prog, self.asked, self.cancel_after = [], [], 0, cancel_after

    def is_cancelled(self):
        self.asked += 1
        return self.cancel_after is not None and self.asked > self.cancel_after

    def progress(self, done, total):
        self.prog.append((done, total))

    def partial(self, a, b, frames):
        self.parts.append((a, b, frames.clone()))


class CountingOps(HostOps):
    def __init__(self):
        self.host_bytes = []

    def host_buffer(self, shape):
        t = super().host_buffer(shape)
        self.host_bytes.append(t.numel() * 4)
        return t


def _cuda(spec, rep=None, sink=None, noise="blocks", ops=None):
    plan = plan_unsample(spec)
    return run_cuda(plan, rep or Reporter(), sink or MemorySink(), ops=ops or HostOps(), maker=FrameMaker(plan, noise))


SUBSETS = [None, (250, 3, 4, 77, 299, 0), tuple(range(299, -1, -1)), tuple(range(290, 10, -7)), (5, 5, 2, 140, 2)]


@pytest.mark.parametrize("noise", ["independent", "shared", "trajectory"])
@pytest.mark.parametrize("frames", SUBSETS)
def test_the_cuda_schedule_over_the_cpu_frame_maker_gives_the_cpu_bits(noise, frames, tmp_path):
    """Both drivers schedule the same frame maker into the same sinks: given the CPU's noise, the CUDA
    driver's chunks, copies and sinks reproduce the CPU driver's output bit for bit."""
    s = _spec(steps=300, noise=noise, normalize=True, frames=frames)
    want = run_cpu(plan_unsample(s), Reporter(), MemorySink()).latent
    for chunk in (0, 1, 7):
        got = _cuda(s.replace(chunk_frames=chunk), noise="frames").latent
        assert torch.equal(got, want), chunk
    path = _cuda(s, sink=LatentSink(tmp_path / "s.latent", max_memory=40_000), noise="frames").path
    assert torch.equal(read_latent(path).tensor, want)


@pytest.mark.parametrize("noise", ["independent", "shared", "trajectory"])
def test_block_noise_is_the_same_whatever_the_chunks_and_the_subset(noise, tmp_path):
    s = _spec(steps=300, noise=noise, normalize=True)
    full = _cuda(s).latent
    for chunk in (1, 7, 65):
        assert torch.equal(_cuda(s.replace(chunk_frames=chunk)).latent, full), chunk
    for pos in SUBSETS[1:]:
        sub = _cuda(s.replace(frames=pos, chunk_frames=2)).latent
        assert torch.equal(sub, torch.cat([full[p * 2:(p + 1) * 2] for p in pos])), pos[:3]
    from unsampler_gui.core.export import export_latent

    mem = _cuda(s)
    a = export_latent(mem, tmp_path / "m.latent")
    b = _cuda(s, sink=LatentSink(tmp_path / "s.latent", max_memory=1 << 16)).path
    assert open(a, "rb").read() == open(b, "rb").read()


def test_a_reversed_trajectory_keeps_cancel_progress_and_the_memory_cap(tmp_path):
    """The defect of the old CUDA path: a trajectory out of step order ran with a fresh Reporter (no cancel,
    no progress until the end, one partial of everything) and all of it in memory, whatever the cap."""
    s = _spec(shape=(2, 4, 8, 8), steps=200, noise="trajectory", frames=tuple(range(199, -1, -1)))
    plan = plan_unsample(s)
    cap = 64 * plan.step_bytes
    chunk = chunks.chunk_steps(plan, chunks.cuda_chunk_bytes(plan), SLOTS, cap)
    assert 1 < chunk < 50
    ops, rep = CountingOps(), Recorder()
    r = run_cuda(plan, rep, LatentSink(tmp_path / "rev.latent", max_memory=cap), ops=ops,
                 maker=FrameMaker(plan, "blocks"))
    # streamed in pieces, in order, as the walk comes back down: progress all along, every piece within a chunk
    assert [(a, b) for a, b, _ in rep.parts] == [(a, min(200, a + chunk)) for a in range(0, 200, chunk)]
    assert rep.prog[-1] == (200, 200) and len(rep.prog) == len(rep.parts)
    assert sum(ops.host_bytes) <= cap * chunks.STAGING_SHARE  # the staging: two chunks of the cap's share
    forward = _cuda(s.replace(frames=None)).latent
    want = torch.cat([forward[p * 2:(p + 1) * 2] for p in plan.positions])
    assert torch.equal(read_latent(r.path).tensor, want)
    assert torch.equal(torch.cat([f for *_, f in rep.parts]), want)
    # cancel is honoured at the next chunk, in the walk and in the way back, and nothing is left on disk
    for after in (1, len(range(0, 200, chunk)) + 2):
        with pytest.raises(Cancelled):
            run_cuda(plan, Recorder(cancel_after=after), LatentSink(tmp_path / "c.latent", max_memory=cap),
                     ops=HostOps(), maker=FrameMaker(plan, "blocks"))
        assert not (tmp_path / "c.latent").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rev.latent"]


def test_the_device_is_free_for_the_next_chunk_only_after_its_copy(tmp_path):
    """Copies are asynchronous on a GPU: a slot's buffers are reused only once the copy that read them is
    done, walk-only chunks (a trajectory's way back) included. Slow copies must not change a bit."""
    class LateOps(HostOps):
        """A copy reads its source only when its event is waited on: as late as the driver allows."""

        def copy_to_host(self, dst, src):
            class Late:
                def synchronize(self):
                    dst.copy_(src)

            return Late()

    for noise in ("independent", "trajectory"):
        for frames in (None, tuple(range(99, -1, -1)), (3, 90, 4, 50, 51)):
            s = _spec(steps=100, noise=noise, frames=frames, chunk_frames=3)
            assert torch.equal(_cuda(s, ops=LateOps()).latent, _cuda(s).latent), (noise, frames)


def test_a_cuda_out_of_memory_fall_back_starts_the_consumer_over_on_the_cpu_plan(tmp_path, monkeypatch):
    """The CUDA attempt (its block logic on the CPU) fails part way; the CPU run that follows announces its
    plan again, and every partial after that announcement is the CPU run's, from row 0, in order."""
    from unsampler_gui.core import unsample

    events = []

    class Consumer(Recorder):
        def planned(self, plan):
            events.append(("planned", plan.device.type))
            self.parts.clear()  # what a consumer does on a (new) plan: start over

        def message(self, text):
            events.append(("message", text))

        def partial(self, a, b, frames):
            events.append(("partial", a))
            super().partial(a, b, frames)

    def failing_cuda(plan, reporter, sink):
        host = plan.on("cpu")

        class Failing(HostOps):
            copies = 0

            def copy_to_host(self, dst, src):
                Failing.copies += 1
                if Failing.copies == 3:
                    raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
                return super().copy_to_host(dst, src)

        return run_cuda(host, reporter, sink, ops=Failing(), maker=FrameMaker(host, "blocks"))

    monkeypatch.setattr(unsample, "run_cuda", failing_cuda)
    spec = _spec(steps=40, chunk_frames=4)
    cpu_plan = plan_unsample(spec)
    cuda_plan = cpu_plan.on("cuda")
    for sink in (MemorySink(), LatentSink(tmp_path / "o.latent")):
        events.clear()
        rep = Consumer()
        res = unsample.run_unsample(cuda_plan, rep, sink)
        assert res.device == "cpu"
        kinds = [e[0] for e in events]
        assert kinds.count("partial") > len(rep.parts)  # the CUDA attempt sent some before it failed
        i = kinds.index("planned")
        assert events[i - 1][0] == "message" and "CPU" in events[i - 1][1] and events[i][1] == "cpu"
        after = [a for kind, a in events[i + 1:] if kind == "partial"]
        assert after == [p[0] for p in rep.parts] and after[0] == 0
        assert [(a, b) for a, b, _ in rep.parts] == [(a, min(a + 4, 40)) for a in range(0, 40, 4)]
        want = run_cpu(cpu_plan, Reporter(), MemorySink()).latent
        got = torch.cat([f for _, _, f in rep.parts])
        assert torch.equal(got, want)
        assert torch.equal(res.latent if res.latent is not None else read_latent(res.path).tensor, want)
