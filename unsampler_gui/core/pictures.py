"""Pictures of a sequence: a contact sheet (PNG) and an animation (animated WebP or GIF).

Qt-free (Pillow). Frames are single latents ``[C, H, W]`` or ``[C, T, H, W]``, given as an iterable
or as a tensor ``[n, C, ...]`` (one row per picture). Files are written by ``atomic.atomic_write``:
a temporary file in the same folder, renamed into place when complete, with the mode a plain
``open()`` gives; an existing file is kept unless ``overwrite`` is true. A reporter (``is_cancelled()``, ``progress(done, total)``, as ``core.Reporter``)
can follow and stop the work; a cancel raises ``Cancelled`` and leaves nothing on disk.
"""
from __future__ import annotations

import math
import os
from typing import Iterable, Optional, Sequence

import numpy as np

from .atomic import atomic_write, check_target
from .errors import BadParameterError, Cancelled
from .preview import RGB, thumbnail

#: Largest contact sheet side, in pixels (PNG viewers and Pillow's bomb check cope with this).
MAX_SHEET_SIDE = 16384
#: Largest amount of decoded frames an animation may hold in memory (Pillow keeps every frame).
MAX_ANIMATION_BYTES = 1 << 30
ANIMATION_FORMATS = {".webp": "WEBP", ".gif": "GIF"}


#: Fonts tried for captions, in order; they hold the Greek sigma. Pillow's own font is the fallback.
CAPTION_FONTS = ("DejaVuSans.ttf", "Arial.ttf", "segoeui.ttf", "Helvetica.ttc")


def _font(px: int):
    """(font, sigma symbol): a system font with a Greek sigma, or Pillow's default with "s"."""
    from PIL import ImageFont

    for name in CAPTION_FONTS:
        try:
            return ImageFont.truetype(name, px), "\u03c3"
        except OSError:
            continue
    try:
        return ImageFont.load_default(size=px), "s"
    except TypeError:  # Pillow without FreeType
        return ImageFont.load_default(), "s"


def format_sigma(sigma: float) -> str:
    """A short sigma label: 4 significant digits, never exponent notation for ordinary values; "n/a" for NaN
    (a browsed batch file that stores no sigmas)."""
    s = float(sigma)
    if math.isnan(s):
        return "n/a"
    if s == 0:
        return "0"
    if 1e-3 <= abs(s) < 1e5:
        return f"{s:.4g}" if "e" not in f"{s:.4g}" else f"{s:.1f}"
    return f"{s:.3g}"


def caption(position: int, sigma: Optional[float], symbol: str = "\u03c3") -> str:
    """"12  σ 0.4089": a frame's step and sigma."""
    return f"{position}" if sigma is None else f"{position}  {symbol} {format_sigma(sigma)}"


def _target(path, overwrite: bool) -> str:
    """The target, checked before any picture is made (it is checked again when the file is placed)."""
    return check_target(path, overwrite)


def _frames(frames) -> Iterable:
    try:
        import torch

        if isinstance(frames, torch.Tensor):
            return (frames[i] for i in range(frames.shape[0]))
    except ImportError:  # pragma: no cover
        pass
    if isinstance(frames, np.ndarray):
        return (frames[i] for i in range(frames.shape[0]))
    return iter(frames)


def _count(frames, positions) -> Optional[int]:
    if positions is not None:
        return len(positions)
    try:
        return len(frames)
    except TypeError:
        return None


def _tick(reporter, done: int, total: Optional[int]) -> None:
    if reporter is None:
        return
    if reporter.is_cancelled():
        raise Cancelled("cancelled: nothing was saved")
    if total:
        reporter.progress(done, total)


def contact_sheet(frames, family, positions: Sequence[int], sigmas: Optional[Sequence[float]], path,
                  columns: Optional[int] = None, cell: int = 128, overwrite: bool = False, reporter=None,
                  mode=RGB, contrast="fixed", time_index: int = 0, background=(24, 24, 24),
                  title: Optional[str] = None, metadata: Optional[dict] = None) -> str:
    """Write a PNG grid of frames, each captioned with its step and sigma. Returns the path.

    ``positions`` labels the frames (and sets their number); ``sigmas`` (same length, or None) adds
    the sigma to each caption. ``columns`` defaults to a near-square grid. ``title`` is a line above the grid;
    ``metadata`` (text keys and values) goes into the PNG's text chunks, as ComfyUI writes its ``prompt``.
    """
    from PIL import Image, ImageDraw

    path = _target(path, overwrite)
    n = len(positions)
    if n == 0:
        raise BadParameterError("a contact sheet needs at least one frame")
    if sigmas is not None and len(sigmas) != n:
        raise BadParameterError(f"{n} positions but {len(sigmas)} sigmas")
    cell = int(cell)
    if cell < 8:
        raise BadParameterError(f"cell size must be at least 8 pixels, got {cell}")
    cols = int(columns) if columns else max(1, math.ceil(math.sqrt(n)))
    cols = max(1, min(cols, n))
    rows = math.ceil(n / cols)
    font_px = max(8, min(14, cell // 9))
    cap_h = font_px + 6
    pad = 2
    cw, ch = cell + 2 * pad, cell + cap_h + 2 * pad
    title_px = max(10, min(16, cell // 8)) if title else 0
    top = title_px + 10 if title else 0
    width, height = cols * cw, rows * ch + top
    if max(width, height) > MAX_SHEET_SIDE:
        raise BadParameterError(
            f"a {cols} x {rows} sheet of {cell}-pixel cells is {width} x {height} pixels, over the "
            f"{MAX_SHEET_SIDE}-pixel limit; choose fewer frames or smaller cells")
    sheet = Image.new("RGB", (width, height), tuple(background))
    draw = ImageDraw.Draw(sheet)
    font, symbol = _font(font_px)
    if title:
        title_font = _font(title_px)[0]
        draw.text((pad + 2, 4), _fit_text(draw, title, title_font, width - 2 * pad - 4), fill=(240, 240, 240),
                  font=title_font)
    it = _frames(frames)
    for k in range(n):
        _tick(reporter, k, n)
        try:
            frame = next(it)
        except StopIteration:
            raise BadParameterError(f"{n} positions but only {k} frames") from None
        img = thumbnail(frame, family, cell, mode=mode, contrast=contrast, time_index=time_index)
        h, w = img.shape[:2]
        x0, y0 = (k % cols) * cw + pad, (k // cols) * ch + pad + top
        sheet.paste(Image.fromarray(img), (x0 + (cell - w) // 2, y0 + (cell - h) // 2))
        text = caption(int(positions[k]), None if sigmas is None else float(sigmas[k]), symbol)
        draw.text((x0 + 2, y0 + cell + 2), text, fill=(230, 230, 230), font=font)
    _tick(reporter, n, n)
    info = _png_text(metadata)
    return atomic_write(path, lambda f: sheet.save(f, format="PNG", optimize=False, pnginfo=info), overwrite)


def _fit_text(draw, text: str, font, width: int) -> str:
    """``text``, cut with an ellipsis to fit ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def _png_text(metadata: Optional[dict]):
    """PNG text chunks (iTXt, so any Unicode) of ``metadata``, or None."""
    if not metadata:
        return None
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for k, v in metadata.items():
        info.add_itxt(str(k)[:79], v if isinstance(v, str) else str(v))
    return info


def animation(frames, family, path, fps: float = 12, overwrite: bool = False, reporter=None, size: int = 256,
              mode=RGB, contrast="fixed", time_index: int = 0, positions: Optional[Sequence[int]] = None,
              sigmas: Optional[Sequence[float]] = None, loop: int = 0) -> str:
    """Write an animated WebP or GIF (chosen by the file extension) of the frames. Returns the path.

    Each frame is scaled so that its longer side is ``size``. With ``positions`` (and ``sigmas``) each
    frame carries its caption. WebP is lossless; a GIF is quantised to 256 colours per frame.
    """
    from PIL import Image, ImageDraw

    path = _target(path, overwrite)
    ext = os.path.splitext(path)[1].lower()
    fmt = ANIMATION_FORMATS.get(ext)
    if fmt is None:
        raise BadParameterError(f"an animation is saved as .webp or .gif, not {ext or 'a file without extension'}")
    if not fps > 0:
        raise BadParameterError(f"fps must be > 0, got {fps}")
    if sigmas is not None and positions is not None and len(sigmas) != len(positions):
        raise BadParameterError(f"{len(positions)} positions but {len(sigmas)} sigmas")
    total = _count(frames, positions)
    size = int(size)
    if total is not None and total * size * size * 3 > MAX_ANIMATION_BYTES:
        raise BadParameterError(
            f"{total} frames of {size} pixels need {total * size * size * 3 >> 20} MiB; choose fewer frames "
            "or a smaller size")
    font, symbol = _font(max(8, min(14, size // 12)))
    images = []
    for k, frame in enumerate(_frames(frames)):
        if positions is not None and k >= len(positions):
            break
        _tick(reporter, k, total)
        im = Image.fromarray(thumbnail(frame, family, size, mode=mode, contrast=contrast, time_index=time_index))
        if positions is not None:
            draw = ImageDraw.Draw(im)
            text = caption(int(positions[k]), None if sigmas is None else float(sigmas[k]), symbol)
            draw.text((3, 2), text, fill=(255, 255, 255), font=font, stroke_width=1, stroke_fill=(0, 0, 0))
        if fmt == "GIF":
            im = im.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        images.append(im)
    if not images:
        raise BadParameterError("an animation needs at least one frame")
    _tick(reporter, len(images), total or len(images))
    duration = max(1, round(1000.0 / float(fps)))
    options = {"save_all": True, "append_images": images[1:], "duration": duration, "loop": int(loop)}
    if fmt == "WEBP":
        options.update(lossless=True, method=4)
    else:
        options.update(optimize=False, disposal=1)
    return atomic_write(path, lambda f: images[0].save(f, format=fmt, **options), overwrite)


__all__ = ["contact_sheet", "animation", "caption", "format_sigma", "MAX_SHEET_SIDE", "MAX_ANIMATION_BYTES"]
