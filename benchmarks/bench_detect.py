"""Benchmark: detecting a checkpoint costs about as much as reading its header.

Builds sparse full-size checkpoints in a temporary folder (no weights: a few KB on disk): SDXL base
(UNet, two text encoders, VAE: about 7 GB declared, 1,757 tensors), and the whole networks of
Qwen-Image (about 1,900 tensors) and LTX-2 (about 3,600, the largest), then prints the median time
of ``detect_model`` and of a bare ``read_header`` over several runs, and their ratio.

    .venv/bin/python benchmarks/bench_detect.py [--repeats 21]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

from ckpt_factory import (checkpoint_entries, network_metadata, sdxl_checkpoint_entries,  # noqa: E402
                          write_safetensors)
from unsampler_gui.core.detect import detect_model  # noqa: E402
from unsampler_gui.core.safetensors_io import read_header  # noqa: E402


def median_seconds(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs (after one warm-up run)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=21)
    args = ap.parse_args(argv)
    cases = (("sdxl_base", sdxl_checkpoint_entries(), None),
             ("qwen_image", checkpoint_entries("QwenImage"), None),
             ("ltx2", checkpoint_entries("LTXAV"), network_metadata("LTXAV")))
    with tempfile.TemporaryDirectory() as tmp:
        for name, entries, meta in cases:
            path = os.path.join(tmp, name + "_fake.safetensors")
            size = write_safetensors(path, entries, meta)
            on_disk = os.stat(path).st_blocks * 512
            header = read_header(path)
            t_header = median_seconds(lambda: read_header(path), args.repeats)
            t_detect = median_seconds(lambda: detect_model(path), args.repeats)
            family = detect_model(path).family
            print(f"{name}: {size / 1e9:.2f} GB declared ({on_disk / 1e3:.0f} kB on disk, sparse), "
                  f"{len(header.tensors)} tensors, header {header.header_size / 1e3:.0f} kB")
            print(f"  read_header:  {t_header * 1e3:8.2f} ms (median of {args.repeats})")
            print(f"  detect_model: {t_detect * 1e3:8.2f} ms (median of {args.repeats}) -> {family}")
            print(f"  ratio detect/header: {t_detect / t_header:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
