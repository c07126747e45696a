"""CPU thread scaling of the unsampling job (for many-core machines): SD1.5 x 10000 with 1..N threads.

    python benchmarks/cpu_threads.py
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from unsampler_gui.core import UnsampleSpec, get_family, run_unsample  # noqa: E402


def main() -> None:
    x = torch.randn(1, 4, 64, 64)
    spec = UnsampleSpec(family=get_family("SD15"), latent=x, steps=10000, device="cpu")
    run_unsample(spec.replace(frames=(0,)))
    n = os.cpu_count() or 1
    ref = None
    for threads in sorted({1, 2, 4, 6, 8, 12, 16, n} & set(range(1, n + 1))):
        times = []
        for _ in range(3):
            t = time.perf_counter()
            r = run_unsample(spec.replace(threads=threads))
            times.append(time.perf_counter() - t)
        same = ref is None or torch.equal(ref, r.latent)
        ref = r.latent if ref is None else ref
        print(f"threads {threads:2d}: {sorted(times)[1]:.3f} s  (bit-identical to 1 thread: {same})", flush=True)
        del r


if __name__ == "__main__":
    main()
