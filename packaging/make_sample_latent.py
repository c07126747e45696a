"""Build resources/sample.latent, the latent the app opens with when no file is given.

Source: scikit-image's test image ``data.astronaut()`` (Eileen Collins, NASA, public domain).
scikit-image is needed only to run this script; it is not a runtime dependency.

There are no VAE weights here, so this is NOT a VAE encoding. It is the least-squares inverse of
ComfyUI's latent preview for the SD1.5 family. ComfyUI's Latent2RGBPreviewer shows a model-space
latent ``z`` (channels last) as ``rgb = z @ F (+ bias)``, displayed as ``(rgb + 1) / 2``, where ``F``
is the family's ``latent_rgb_factors`` (4x3). Per pixel we solve ``z @ F = rgb`` for ``z`` with the
minimum-norm least-squares solution ``z = rgb @ pinv(F)``, with ``rgb`` the picture mapped to
[-1, 1] at 1/8 size (64x64, mean of 8x8 blocks). Then model space -> raw latent space (what .latent
files hold, ComfyUI's ``process_out``): ``raw = z / scale_factor``.

Everything is computed in float64 and rounded once to float32, so the output is the same on every
run. Usage:

    .venv/bin/pip install scikit-image
    .venv/bin/python packaging/make_sample_latent.py [--out resources/sample.latent] [--preview x.png]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from unsampler_gui.core import families  # noqa: E402
from unsampler_gui.core.latent_io import write_latent  # noqa: E402

FAMILY = "SD15"
DOWNSCALE = 8
CREDIT = "Eileen Collins, NASA, public domain, via scikit-image data.astronaut()"
METHOD = "least-squares inverse of SD1.5 latent_rgb_factors, not a VAE encoding"


def load_picture() -> np.ndarray:
    try:
        from skimage import data
    except ImportError:
        sys.exit("scikit-image is needed to build the sample: .venv/bin/pip install scikit-image")
    img = data.astronaut()
    if img.shape != (512, 512, 3) or img.dtype != np.uint8:
        sys.exit(f"unexpected astronaut image: {img.shape} {img.dtype}")
    return img


def block_mean(img: np.ndarray, k: int) -> np.ndarray:
    """Downscale an [H, W, C] uint8 picture by k with the mean of each k x k block (area filter), in float64."""
    h, w, c = img.shape
    return img.astype(np.float64).reshape(h // k, k, w // k, k, c).mean(axis=(1, 3))


def rgb_factors(family) -> tuple[np.ndarray, np.ndarray]:
    lat = family.latent
    f = np.asarray(lat.rgb_factors, dtype=np.float64)  # [channels, 3]
    bias = np.zeros(3) if lat.rgb_factors_bias is None else np.asarray(lat.rgb_factors_bias, dtype=np.float64)
    return f, bias


def invert_preview(rgb01: np.ndarray, f: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """[H, W, 3] picture in [0, 1] -> [H, W, C] model-space latent: minimum-norm least squares of z @ F = rgb."""
    target = rgb01 * 2.0 - 1.0 - bias  # the preview shows (z @ F + bias + 1) / 2
    return target @ np.linalg.pinv(f)  # pinv(F) is [3, C]: z = target @ pinv(F) solves z @ F = target


def preview(z_model: np.ndarray, f: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """ComfyUI's Latent2RGBPreviewer on an [H, W, C] model-space latent: uint8 [H, W, 3]."""
    rgb = ((z_model @ f + bias + 1.0) / 2.0).clip(0.0, 1.0)
    return np.round(rgb * 255.0).astype(np.uint8)


def build() -> tuple[np.ndarray, dict]:
    fam = families.get_family(FAMILY)
    f, bias = rgb_factors(fam)
    small = block_mean(load_picture(), DOWNSCALE) / 255.0  # [64, 64, 3] in [0, 1]
    z_model = invert_preview(small, f, bias)
    raw = z_model / fam.latent.scale_factor  # process_out: model space -> .latent space
    latent = np.ascontiguousarray(raw.transpose(2, 0, 1)[None], dtype=np.float32)  # [1, 4, 64, 64]
    info = {
        "source": "scikit-image data.astronaut() (512x512 RGB)",
        "credit": CREDIT,
        "license": "public domain",
        "method": METHOD,
        "family": FAMILY,
        "steps": [
            "downscale 512x512 -> 64x64 by the mean of 8x8 blocks (sRGB values)",
            "rgb = 2 * value/255 - 1 (ComfyUI's preview shows (rgb + 1) / 2)",
            "z = rgb @ pinv(latent_rgb_factors): minimum-norm least squares per pixel, model space",
            f"raw = z / scale_factor ({fam.latent.scale_factor}): the raw space that .latent files hold",
        ],
        "shape": list(latent.shape),
        "generator": "packaging/make_sample_latent.py",
    }
    return latent, info


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "resources" / "sample.latent"))
    ap.add_argument("--preview", help="also write the round-trip preview (raw -> model -> RGB) as a PNG")
    args = ap.parse_args(argv)

    import torch

    latent, info = build()
    path = write_latent(args.out, torch.from_numpy(latent), metadata={"unsampler_sample": json.dumps(info)},
                        overwrite=True)
    os.chmod(path, 0o644)  # a shipped resource: readable by everyone (the temporary file was 0600)
    fam = families.get_family(FAMILY)
    f, bias = rgb_factors(fam)
    z_back = latent[0].transpose(1, 2, 0).astype(np.float64) * fam.latent.scale_factor
    picture = preview(z_back, f, bias)
    target = np.round(block_mean(load_picture(), DOWNSCALE)).astype(np.int16)
    err = np.abs(picture.astype(np.int16) - target).max()
    print(f"wrote {path}: shape {list(latent.shape)} float32, raw mean {latent.mean():.4f} std {latent.std():.4f} "
          f"min {latent.min():.4f} max {latent.max():.4f}; preview round trip max error {err}/255")
    if args.preview:
        from PIL import Image

        Image.fromarray(picture).save(args.preview)
        print(f"wrote {args.preview}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
