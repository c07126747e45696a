"""Pictures in and out: PNG, JPEG and WebP read as ComfyUI's LoadImage reads them; PNGs written as SaveImage does.

LoadImage (``nodes.py``): Pillow opens the file, ``ImageOps.exif_transpose`` turns it upright,
``convert("RGB")`` drops alpha, and the values become float32 ``value / 255``. An animated picture gives
ComfyUI a batch of its same-sized frames; Unsampler takes the first frame, the picture a user sees.
SaveImage writes ``clip(255 * x, 0, 255)`` truncated to uint8, with the graph in the PNG text chunks
``prompt`` and ``workflow``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ..errors import BadFileError
from ..atomic import atomic_write, open_regular

#: The formats a user may open (Pillow's names); MPO is what some cameras call a JPEG.
FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "MPO": "JPEG", "WEBP": "WebP"}
PICTURE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")
#: Larger pictures are refused before they are decoded (Pillow's own bomb check fires at twice its limit).
MAX_PIXELS = 64_000_000


@dataclass
class Picture:
    path: str
    pixels: np.ndarray  # float32 [H, W, 3] in 0..1, as LoadImage gives it
    format: str  # PNG, JPEG or WebP
    frames: int = 1
    text: dict = field(default_factory=dict)  # PNG text chunks (ComfyUI's prompt / workflow)

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])


def sniff_picture(path) -> bool:
    """True when the file starts like a PNG, JPEG or WebP (whatever its name)."""
    try:
        with open_regular(path) as f:  # a FIFO or a device is not a picture (and must not block)
            head = f.read(12)
    except (OSError, BadFileError):
        return False
    return head.startswith(b"\x89PNG\r\n\x1a\n") or head.startswith(b"\xff\xd8\xff") or (
        head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def _open(path: str):
    from PIL import Image, UnidentifiedImageError

    name = os.path.basename(path)
    if not os.path.isfile(path):
        raise BadFileError(f"{path}: no such file" if not os.path.exists(path) else f"{path}: not a file")
    try:
        img = Image.open(path)
    except UnidentifiedImageError:
        raise BadFileError(f"{name}: not a picture Unsampler can read (PNG, JPEG or WebP)") from None
    except (OSError, ValueError) as e:
        raise BadFileError(f"{name}: cannot read the picture ({e})") from None
    if img.format not in FORMATS:
        img.close()
        raise BadFileError(f"{name}: a {img.format} picture; Unsampler reads PNG, JPEG and WebP")
    w, h = img.size
    if w * h > MAX_PIXELS:
        img.close()
        raise BadFileError(f"{name}: {w}x{h} pixels is more than the {MAX_PIXELS // 1_000_000} megapixels "
                           "Unsampler encodes; scale it down first")
    return img


def _text_chunks(img) -> dict:
    text = getattr(img, "text", None)
    try:
        return {str(k): str(v) for k, v in dict(text or {}).items()}
    except (ValueError, OSError):  # an over-large or corrupt text chunk
        return {}


def read_picture(path) -> Picture:
    """A PNG, JPEG or WebP as LoadImage reads it (first frame), with its PNG text chunks."""
    from PIL import Image, ImageOps

    p = os.fspath(path)
    name = os.path.basename(p)
    img = _open(p)
    try:
        with img:
            text = _text_chunks(img)
            frames = int(getattr(img, "n_frames", 1) or 1)
            upright = ImageOps.exif_transpose(img)
            rgb = np.asarray(upright.convert("RGB"), dtype=np.uint8)
    except Image.DecompressionBombError:
        raise BadFileError(f"{name}: too many pixels to decode safely") from None
    except (OSError, ValueError, SyntaxError) as e:  # truncated or corrupt data
        raise BadFileError(f"{name}: cannot decode the picture ({e})") from None
    if rgb.ndim != 3 or rgb.shape[2] != 3 or 0 in rgb.shape:
        raise BadFileError(f"{name}: the picture has no pixels")
    return Picture(p, rgb.astype(np.float32) / np.float32(255.0), FORMATS[img.format], frames, text)


def read_text_chunks(path) -> dict:
    """Only the PNG text chunks (no pixel decoding): ComfyUI's ``prompt`` and ``workflow``."""
    img = _open(os.fspath(path))
    with img:
        return _text_chunks(img)


def save_png(path, rgb: np.ndarray, text=None, overwrite: bool = False) -> str:
    """Write a uint8 ``[H, W, 3]`` picture as PNG, with ``text`` chunks, through the one atomic writer."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    info = None
    if text:
        info = PngInfo()
        for k, v in text.items():
            info.add_text(k, v)
    image = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8))
    return atomic_write(path, lambda f: image.save(f, format="PNG", pnginfo=info), overwrite)
