"""Benchmark: decoding frames for previews with TAESD and with the full VAE (ms per 512x512 frame), CPU and CUDA.

Real-size networks with random weights (diffusers' AutoencoderTiny in TAESD's 64-wide layout, the SD1.5
AutoencoderKL config), saved in ComfyUI's file layouts in a temporary folder and loaded through
``core.vae`` (so the figures include our path: layout, strict load, crop, stage hooks). Prints:

- TAESD decode: ms per frame, one frame at a time and in batches of 8;
- a screen of thumbnails: the time to decode ``--screen`` frames (a 1280x720 grid shows about 48) with TAESD;
- TAESD encode of a 512x512 picture;
- the full SD1.5 VAE: seconds to decode and to encode one 512x512 frame (``--full-repeats``, default 1 on CPU).

    .venv/bin/python benchmarks/bench_vae.py [--repeats 5] [--screen 48] [--full-repeats 1] [--no-full]
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

import torch  # noqa: E402

from unsampler_gui.core.devices import cuda_available  # noqa: E402


def say(text: str) -> None:
    print(text, flush=True)


def median_seconds(fn, repeats: int, warmup: bool = True) -> float:
    if warmup:
        fn()
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _files(tmp: str, full: bool) -> dict:
    import vae_factory as vf
    from diffusers import AutoencoderKL, AutoencoderTiny

    from unsampler_gui.core.vae import facts

    torch.manual_seed(0)
    enc, dec = vf.taesd_layout(AutoencoderTiny().eval())
    paths = {"taesd_encoder": vf.save_safetensors(os.path.join(tmp, "taesd_encoder.safetensors"), enc),
             "taesd_decoder": vf.save_safetensors(os.path.join(tmp, "taesd_decoder.safetensors"), dec)}
    if not full:
        return paths
    kl = AutoencoderKL(**facts.network_spec("kl")["config"]).eval()
    paths["vae"] = vf.save_safetensors(os.path.join(tmp, "vae-ft-mse-random.safetensors"), vf.ldm_layout(kl))
    return paths


def bench_device(paths: dict, device: str, args) -> None:
    from unsampler_gui.core.vae import load_taesd, load_vae

    tae = load_taesd(encoder=paths["taesd_encoder"], decoder=paths["taesd_decoder"], device=device)
    one = torch.randn(1, 4, 64, 64)
    eight = torch.randn(8, 4, 64, 64)
    t1 = median_seconds(lambda: tae.decode(one), args.repeats)
    t8 = median_seconds(lambda: tae.decode(eight, batch=8), args.repeats)
    screen = torch.randn(args.screen, 4, 64, 64)
    ts = median_seconds(lambda: tae.decode(screen, batch=8), max(1, args.repeats // 2))
    picture = torch.rand(512, 512, 3)
    te = median_seconds(lambda: tae.encode(picture), args.repeats)
    say(f"[{device}] TAESD decode 512x512: {t1 * 1e3:8.1f} ms/frame alone, {t8 / 8 * 1e3:8.1f} ms/frame in "
          f"batches of 8 (median of {args.repeats})")
    say(f"[{device}] TAESD screen of {args.screen} thumbnails (512x512 frames): {ts:6.2f} s")
    say(f"[{device}] TAESD encode 512x512: {te * 1e3:8.1f} ms")
    if args.no_full:
        return
    vae = load_vae(paths["vae"], device=device)
    reps = args.full_repeats if device == "cpu" else max(args.full_repeats, 3)
    td = median_seconds(lambda: vae.decode(one), reps, warmup=device != "cpu")
    tf = median_seconds(lambda: vae.encode(picture), reps, warmup=device != "cpu")
    say(f"[{device}] full SD1.5 VAE (AutoencoderKL, 83.7 M parameters) 512x512: decode {td:6.2f} s/frame, "
          f"encode {tf:6.2f} s (median of {reps})")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--screen", type=int, default=48)
    ap.add_argument("--full-repeats", type=int, default=1)
    ap.add_argument("--no-full", action="store_true", help="skip the full VAE")
    ap.add_argument("--device", choices=("all", "cpu", "cuda"), default="all")
    args = ap.parse_args(argv)
    say(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
          + (f", CUDA {torch.cuda.get_device_name(0)}" if cuda_available() else ", no CUDA"))
    with tempfile.TemporaryDirectory() as tmp:
        paths = _files(tmp, not args.no_full)
        devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
        for device in devices:
            if device == "cuda" and not cuda_available():
                say("[cuda] no CUDA device: skipped")
                continue
            bench_device(paths, device, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
