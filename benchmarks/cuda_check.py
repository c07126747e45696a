"""CUDA checks and timings, for a machine with a GPU (run once there; prints a table).

    python benchmarks/cuda_check.py [--quick]

Correctness: the CUDA path's output is the same whatever the chunk size and subset, streams to the
same bytes as the in-memory export, and has the right statistics; a reversed trajectory streams under a
memory cap in pieces, with progress and cancel; ``Frames`` on CUDA gives a run's bits; the app's frames
(``core.sequence.Sequence`` on CUDA, any order, trajectory keyframes included, and the statistics the views
show) equal the frames of a streamed export, and so does that export browsed from the file
(``core.batch_file``: ``app_frames_match_export``, which tests/test_batch_file.py runs on the CPU). Timing: the
node's algorithm on the GPU, Unsampler on the CPU and on CUDA, and the pinned device-to-host copy
bandwidth, in one run.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

from unsampler_gui.core import (Cancelled, Frames, LatentSink, Reporter, UnsampleSpec, get_family,  # noqa: E402
                                node_sigmas, plan_unsample, read_latent, run_unsample)
from unsampler_gui.core.batch_file import BatchSequence, choose_family, open_batch  # noqa: E402
from unsampler_gui.core.export import export_latent  # noqa: E402
from unsampler_gui.core.sequence import Sequence  # noqa: E402
from unsampler_gui.core.stats import StepStats, frame_stats  # noqa: E402

CASES = [("SD1.5 x 10000", "SD15", (1, 4, 64, 64), 10000), ("SDXL x 1000", "SDXL", (1, 4, 128, 128), 1000),
         ("Flux x 1000", "Flux", (1, 16, 128, 128), 1000), ("SDXL x 10000", "SDXL", (1, 4, 128, 128), 10000)]


def check(name, ok, detail=""):
    print(f"[{'ok' if ok else 'FAIL'}] {name} {detail}", flush=True)
    return ok


def correctness() -> bool:
    fam = get_family("SD15")
    x = torch.randn(2, 4, 16, 16)
    good = True
    for noise in ("independent", "shared", "trajectory"):
        s = UnsampleSpec(family=fam, latent=x, steps=300, seed=3, noise=noise, device="cuda", normalize=True)
        a = run_unsample(s)
        b = run_unsample(s.replace(chunk_frames=1))
        c = run_unsample(s.replace(chunk_frames=7))
        good &= check(f"{noise}: chunk-size invariant", torch.equal(a.latent, b.latent) and torch.equal(a.latent, c.latent))
        pos = (250, 3, 4, 77, 299, 0)
        sub = run_unsample(s.replace(frames=pos, chunk_frames=2))
        want = torch.cat([a.latent[p * 2:(p + 1) * 2] for p in pos])
        good &= check(f"{noise}: subset identical", torch.equal(sub.latent, want))
        with tempfile.TemporaryDirectory() as d:
            p1 = export_latent(a, os.path.join(d, "m.latent"))
            p2 = run_unsample(s, output=os.path.join(d, "s.latent"), max_memory=1 << 20).path
            good &= check(f"{noise}: stream == in-memory export", open(p1, "rb").read() == open(p2, "rb").read())
        cpu = run_unsample(s.replace(device="cpu"))
        print(f"      CPU vs CUDA same bits: {torch.equal(cpu.latent, a.latent)} (different generators, expected False)")
    s = UnsampleSpec(family=fam, latent=torch.zeros(1, 4, 64, 64), steps=20, device="cuda")
    r = run_unsample(s)
    raw = node_sigmas("SD15", "euler", "simple", 20)
    rel = max(abs(r.latent[i].std().item() / raw[i].item() - 1) for i in range(20))
    good &= check("std(z_i - x) == raw sigma", rel < 0.03, f"(max rel err {rel:.4f})")
    w = UnsampleSpec(family=get_family("WAN21_T2V"), latent=torch.randn(2, 16, 3, 8, 8), steps=10, device="cuda")
    good &= check("5-D video, B=2", run_unsample(w).latent.shape == (20, 16, 3, 8, 8))
    good &= reversed_trajectory(fam, x)
    for noise in ("independent", "shared", "trajectory"):
        s = UnsampleSpec(family=fam, latent=x, steps=300, seed=3, noise=noise, device="cuda", normalize=True)
        full = run_unsample(s).latent
        fr = Frames(plan_unsample(s))
        rows = [299, 0, 64, 63, 150]
        want = torch.cat([full[i * 2:(i + 1) * 2] for i in rows])
        good &= check(f"{noise}: Frames on CUDA == run", torch.equal(fr.frames(rows).cpu(), want))
    for name, ok, detail in app_frames_match_export("cuda"):
        good &= check(name, ok, detail)
    return good


def app_frames_match_export(device: str = "cuda") -> list:
    """``[(name, ok, detail)]``: the frames the app shows (``Sequence`` of a plan on ``device``, in a shuffled
    order, with small cache and keyframe budgets so that trajectory frames walk from keyframes), and the
    statistics it shows, equal a streamed export's frames bit for bit; and the export browsed from the file
    gives the same frames. Every noise mode, B = 2, and a 5-D video latent."""
    import random

    def bits(t):
        return t.contiguous().view(torch.int32)

    out = []
    cases = [(noise, "SD15", (2, 4, 16, 16), 120) for noise in ("independent", "shared", "trajectory")]
    cases.append(("trajectory", "WAN21_T2V", (2, 16, 3, 8, 8), 40))
    for noise, family, shape, steps in cases:
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(5))
        spec = UnsampleSpec(family=get_family(family), latent=x, steps=steps, seed=9, noise=noise, device=device,
                            normalize=True, start_at_step=2)
        plan = plan_unsample(spec)
        name = f"{family} {list(shape)} {noise} on {device}"
        with tempfile.TemporaryDirectory() as d:
            path = run_unsample(spec, output=os.path.join(d, "e.latent"), max_memory=64 << 20).path
            stored = read_latent(path).tensor
            B = plan.batch
            seq = Sequence(plan, cache_bytes=3 * plan.step_bytes, keyframe_bytes=6 * plan.step_bytes)
            order = list(range(seq.n_frames))
            random.Random(2).shuffle(order)
            bad = [i for i in order if not torch.equal(bits(seq.frame(i)), bits(stored[i * B:(i + 1) * B]))]
            out.append((f"{name}: app frames == export", not bad, f"({len(order)} frames; differ: {bad[:5]})"))
            stats = StepStats(seq.n_frames, B)
            for rows, fs in seq.stats_chunks():
                stats.add_rows(rows, fs)
            ref = frame_stats(stored)
            same = all((stats.series(k, b) == getattr(ref, k)[b::B]).all() for k in ("mean", "std") for b in range(B))
            out.append((f"{name}: app statistics == export's", bool(same and stats.count == seq.n_frames), ""))
            bf = open_batch(path)
            browsed = BatchSequence(bf, choose_family(bf), cache_bytes=2 * plan.step_bytes)
            bad = [i for i in order if not torch.equal(bits(browsed.frame(i)), bits(seq.frame(i)))]
            out.append((f"{name}: the export browsed == app frames", not bad and browsed.batch == B,
                        f"(differ: {bad[:5]})"))
    return out


class _Rec(Reporter):
    def __init__(self, cancel_after=None):
        self.parts, self.prog, self.asked, self.cancel_after = [], [], 0, cancel_after

    def is_cancelled(self):
        self.asked += 1
        return self.cancel_after is not None and self.asked > self.cancel_after

    def progress(self, done, total):
        self.prog.append(done)

    def partial(self, a, b, frames):
        self.parts.append((a, b))


def reversed_trajectory(fam, x) -> bool:
    """The old CUDA path ran a reversed trajectory with a fresh Reporter, all in memory, whatever the cap."""
    s = UnsampleSpec(family=fam, latent=x, steps=2000, seed=3, noise="trajectory", device="cuda", normalize=True)
    full = run_unsample(s).latent
    rev = s.replace(frames=tuple(range(1999, -1, -1)))
    cap = 200 * 2 * x[0].numel() * 4  # a quarter of it: 50 steps of staging
    good = True
    with tempfile.TemporaryDirectory() as d:
        rep = _Rec()
        path = run_unsample(rev, rep, LatentSink(os.path.join(d, "r.latent"), max_memory=cap)).path
        want = torch.cat([full[p * 2:(p + 1) * 2] for p in range(1999, -1, -1)])
        good &= check("trajectory reversed, streamed under a cap == reversed run",
                      torch.equal(read_latent(path).tensor, want))
        good &= check("  ... in pieces, with progress", len(rep.parts) > 10 and rep.prog[-1] == 2000,
                      f"({len(rep.parts)} pieces)")
        try:
            run_unsample(rev, _Rec(cancel_after=3), LatentSink(os.path.join(d, "c.latent"), max_memory=cap))
            good &= check("  ... cancel honoured", False)
        except Cancelled:
            good &= check("  ... cancel honoured, nothing left", not os.path.exists(os.path.join(d, "c.latent")))
    return good


def _sync():
    torch.cuda.synchronize()


def node_gpu(x, sig):
    latents = x.repeat(len(sig), *([1] * (x.dim() - 1)))
    noise = torch.randn_like(latents)
    return latents + noise * sig.view(-1, *([1] * (x.dim() - 1)))


def timings(quick: bool) -> None:
    rows = []
    for name, fam, shape, steps in CASES[: 2 if quick else None]:
        x = torch.randn(*shape)
        sig = node_sigmas(fam, "euler", "simple", steps)
        out_bytes = x.numel() * 4 * len(sig)
        spec = UnsampleSpec(family=get_family(fam), latent=x, steps=steps, seed=1)
        run_unsample(spec.replace(device="cuda", frames=(0,)))
        # node on the GPU, and its peak GPU memory
        xg, sg = x.cuda(), sig.cuda()
        node_gpu(xg, sg)
        _sync()
        torch.cuda.reset_peak_memory_stats()
        base_mem = torch.cuda.memory_allocated()
        t = time.perf_counter()
        o = node_gpu(xg, sg)
        _sync()
        t_node = time.perf_counter() - t
        node_peak = torch.cuda.max_memory_allocated() - base_mem
        # pinned copy bandwidth of the same bytes (host buffer allocated before timing)
        host = torch.empty(o.shape, pin_memory=True)
        host.copy_(o, non_blocking=True)
        _sync()
        t = time.perf_counter()
        host.copy_(o, non_blocking=True)
        _sync()
        t_copy = time.perf_counter() - t
        del o, host
        torch.cuda.empty_cache()
        # Unsampler on CUDA (total, pinned host output allocation included) and its peak GPU memory
        torch.cuda.reset_peak_memory_stats()
        base_mem = torch.cuda.memory_allocated()
        times = []
        for _ in range(9):  # the median of 9: the host has occasional 2x outliers
            t = time.perf_counter()
            r = run_unsample(spec.replace(device="cuda"))
            times.append(time.perf_counter() - t)
            del r
        t_cuda = sorted(times)[len(times) // 2]
        print(f"  {name}: CUDA runs {' '.join(f'{v * 1e3:.1f}' for v in times)} ms", flush=True)
        ours_peak = torch.cuda.max_memory_allocated() - base_mem
        t0 = time.perf_counter()
        torch.empty((len(sig) * shape[0], *shape[1:]), pin_memory=True)
        t_pin = time.perf_counter() - t0
        t = time.perf_counter()
        run_unsample(spec.replace(device="cpu"))
        t_cpu = time.perf_counter() - t
        rows.append((name, out_bytes, t_node, node_peak, t_copy, t_cuda, t_pin, ours_peak, t_cpu))
    print()
    print("| case | output | node on GPU | node GPU mem | pinned D2H copy | Unsampler CUDA | of which pinned alloc "
          "| copy-bound efficiency | Unsampler GPU mem | Unsampler CPU |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, ob, tn, npk, tc, tu, tp, opk, tcpu in rows:
        eff = tc / max(1e-9, tu - tp)
        print(f"| {name} | {ob / 1e9:.2f} GB | {tn * 1e3:.1f} ms | {npk / 1e9:.2f} GB | {tc * 1e3:.1f} ms "
              f"({ob / tc / 1e9:.1f} GB/s) | {tu * 1e3:.1f} ms | {tp * 1e3:.1f} ms | {eff:.2f} | {opk / 1e6:.0f} MB "
              f"| {tcpu * 1e3:.0f} ms |")


def main() -> int:
    print(f"torch {torch.__version__}, device {torch.cuda.get_device_name(0)}, CPU threads {os.cpu_count()}")
    ok = correctness()
    timings("--quick" in sys.argv)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
