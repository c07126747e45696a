"""Where ComfyUI keeps latents: LoadLatent lists the top level of ``<ComfyUI>/input``."""
from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import BadParameterError


def looks_like_comfyui(root) -> bool:
    r = Path(root)
    return (r / "main.py").is_file() and ((r / "comfy").is_dir() or (r / "nodes.py").is_file())


def comfy_input_dir(root) -> Path:
    """The ``input`` folder of a ComfyUI install (created if missing). Accepts the install or its input folder."""
    r = Path(os.path.expanduser(str(root)))
    if r.name == "input" and looks_like_comfyui(r.parent):
        r = r.parent
    if not r.is_dir():
        raise BadParameterError(f"{r} is not a folder")
    if not looks_like_comfyui(r):
        raise BadParameterError(f"{r} does not look like a ComfyUI install (no main.py and comfy/ folder); "
                                "choose the folder that holds ComfyUI's main.py")
    inp = r / "input"
    try:
        inp.mkdir(exist_ok=True)
    except OSError as e:
        raise BadParameterError(f"cannot create {inp}: {e.strerror or e}") from None
    return inp


def safe_stem(stem: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "unsampler"
    return s[:80]


def unique_latent_name(folder, stem: str) -> Path:
    """``<stem>_00001_.latent`` with the next free counter, in SaveLatent's naming style.

    LoadLatent lists only names ending in lowercase ``.latent`` at the top of the input folder.
    """
    folder = Path(folder)
    stem = safe_stem(stem)
    pat = re.compile(re.escape(stem) + r"_(\d+)_?\.", re.IGNORECASE)
    top = 0
    if folder.is_dir():
        for name in os.listdir(folder):
            m = pat.match(name)
            if m:
                top = max(top, int(m.group(1)))
    return folder / f"{stem}_{top + 1:05d}_.latent"
