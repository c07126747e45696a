"""CUDA checks and timings, for a machine with a GPU (run once there; prints a table).

    python benchmarks/cuda_check.py [--quick]

Correctness: the CUDA path's output is the same whatever the chunk size and subset, streams to the
same bytes as the in-memory export, and has the right statistics. Timing: the node's algorithm on the
GPU, Unsampler on the CPU and on CUDA, and the pinned device-to-host copy bandwidth, in one run.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

from unsampler_gui.core import UnsampleSpec, get_family, node_sigmas, run_unsample  # noqa: E402
from unsampler_gui.core.export import export_latent  # noqa: E402

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
