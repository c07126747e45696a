"""Render resources/icon.svg to resources/icons/icon-{16,32,48,128,256}.png.

Uses ``rsvg-convert`` (Debian/Ubuntu: ``apt-get install librsvg2-bin``) when it is on PATH, else the
``cairosvg`` Python package. ``--write-svg`` first regenerates icon.svg itself from the recipe below
(deterministic: the noise cells come from a seeded RNG), for when the design is changed here.

    python packaging/render_icons.py [--write-svg]
"""
from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SVG = ROOT / "resources" / "icon.svg"
OUT = ROOT / "resources" / "icons"
SIZES = (16, 32, 48, 128, 256)

FRAME = 160  # side of each frame in the 256 x 256 canvas
FRAMES = (("noise", 88, 8), ("half", 48, 48), ("clean", 8, 88))  # back to front
GRID = 8  # noise cells per side


def _noise_cells(x0: int, y0: int, fraction: float, opacity: float, seed: int) -> list:
    rnd = random.Random(seed)
    cell = FRAME // GRID
    out = []
    for j in range(GRID):
        for i in range(GRID):
            if rnd.random() >= fraction:
                continue
            v = rnd.random()
            g = int(255 * v ** 1.3) if rnd.random() < 0.5 else int(255 - 255 * v ** 1.3)
            tint = rnd.choice([(0, 0, 0), (60, -20, -40), (-40, 10, 70), (-20, 50, -20)])
            r, gg, b = (max(0, min(255, g + t)) for t in tint)
            op = "" if opacity == 1 else f' fill-opacity="{opacity}"'
            out.append(f'<rect x="{x0 + i * cell}" y="{y0 + j * cell}" width="{cell}" height="{cell}" '
                       f'fill="#{r:02x}{gg:02x}{b:02x}"{op}/>')
    return out


def icon_svg() -> str:
    """The icon: three frames, a clean picture in front dissolving into noise towards the back."""
    s = FRAME
    lines = [
        '<svg xmlns="http://www.w3.org/2000/svg" width="256" height="256" viewBox="0 0 256 256">',
        "  <title>Unsampler</title>",
        "  <desc>A stack of three frames: a clean image in front dissolving into noise towards the back.</desc>",
        "  <defs>",
        '    <linearGradient id="sky" x1="0" y1="0" x2="0" y2="1">',
        '      <stop offset="0" stop-color="#3b6cf6"/>',
        '      <stop offset="0.55" stop-color="#b66ee8"/>',
        '      <stop offset="1" stop-color="#ffb45c"/>',
        "    </linearGradient>",
    ]
    for k, (_, x, y) in enumerate(FRAMES):
        lines.append(f'    <clipPath id="clip{k}"><rect x="{x}" y="{y}" width="{s}" height="{s}" rx="20"/></clipPath>')
    lines.append("  </defs>")
    for k, (name, x, y) in enumerate(FRAMES):
        lines += [f'  <g id="frame-{name}">', f'    <g clip-path="url(#clip{k})">']
        if name == "noise":
            lines.append(f'      <rect x="{x}" y="{y}" width="{s}" height="{s}" fill="#6a6a78"/>')
            lines += ["      " + c for c in _noise_cells(x, y, 1.0, 1, 7)]
        else:
            lines += [
                f'      <rect x="{x}" y="{y}" width="{s}" height="{s}" fill="url(#sky)"/>',
                f'      <circle cx="{x + round(s * 0.66)}" cy="{y + round(s * 0.62)}" r="{round(s * 0.18)}" '
                'fill="#fff1b8"/>',
                f'      <path d="M{x} {y + round(s * 0.80)} Q{x + round(s * 0.3)} {y + round(s * 0.62)} '
                f'{x + round(s * 0.6)} {y + round(s * 0.80)} T{x + s} {y + round(s * 0.78)} V{y + s} H{x} Z" '
                'fill="#2b2350"/>',
            ]
            if name == "half":
                lines += ["      " + c for c in _noise_cells(x, y, 0.5, 0.85, 11)]
        lines += [
            "    </g>",
            f'    <rect x="{x + 6}" y="{y + 6}" width="{s - 12}" height="{s - 12}" rx="15" fill="none" '
            'stroke="#15131f" stroke-width="12"/>',
            "  </g>",
        ]
    lines.append("</svg>")
    return "\n".join(lines) + "\n"


def render(svg: Path, png: Path, size: int) -> None:
    exe = shutil.which("rsvg-convert")
    if exe:
        subprocess.run([exe, "-w", str(size), "-h", str(size), "-f", "png", "-o", str(png), str(svg)], check=True)
        return
    try:
        import cairosvg
    except ImportError:
        sys.exit("need rsvg-convert (apt-get install librsvg2-bin) or cairosvg (pip install cairosvg)")
    cairosvg.svg2png(url=str(svg), write_to=str(png), output_width=size, output_height=size)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Render the application icon to PNGs.")
    ap.add_argument("--write-svg", action="store_true", help="regenerate resources/icon.svg from the recipe first")
    args = ap.parse_args(argv)
    if args.write_svg:
        SVG.write_text(icon_svg(), encoding="utf-8")
        print(f"wrote {SVG.relative_to(ROOT)}")
    OUT.mkdir(parents=True, exist_ok=True)
    for size in SIZES:
        png = OUT / f"icon-{size}.png"
        render(SVG, png, size)
        print(f"wrote {png.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
